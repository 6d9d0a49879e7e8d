// embedding.wgsl — token (+ position) embedding: x[t, :] = wte[ids[t], :] + wpe[pos0 + t, :] (GPT-2),
// or x[t, :] = wte[ids[t], :] alone (POSITIONS false: the Llama family rotates q and k instead).
// Layout: wte holds rows [ROW0, ROW0 + ROWS) of the token table (the table may be split across
//   buffers when it exceeds one binding; each split gets its own dispatch and writes only the rows
//   whose id falls inside it), wpe is [n_positions, C]; both in the weight format of the module's
//   snippet (C/4 packs per row; a block format's rows are C / 32 blocks, read through the snippet's
//   block interface, weights_f32.wgsl: the block's scale and the pack's word). x is f32 [rows, C].
// Workgroup: 64 invocations along the C/4 packs of a row; dispatch (ceil(C4 / 64), R, 1) with
//   R <= rows: workgroup row r handles rows r, r + R, ... (R = rows on a GPU, a few on a CPU).
// A decode step whose id is CHAIN_ID (0xFFFFFFFF) takes the token chosen by the step before it,
// chain[0] (topk.wgsl's output: its first word is that choice), so decode steps can be queued
// back to back without waiting for Python (app/model.py submit_decode).
// Constants:
//   C4: u32    C / 4 (C a multiple of 32 for the block formats, 256 for the k-quants)
//   ROW0: u32  first token row held by this split of the table
//   ROWS: u32  rows in this split
//   POSITIONS: bool  add the position table wpe
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py -k embedding and tests/test_kernels_quant.py -k embedding
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> wte: array<WPack>;
@group(0) @binding(2) var<storage, read> wpe: array<WPack>;
@group(0) @binding(3) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> chain: array<u32>;

fn table_pack(positions: bool, i: u32) -> WPack {
  if (positions) { return wpe[i]; }
  return wte[i];
}

// Pack c of a row of the token table (or, positions, of the position table).
fn table4(positions: bool, row: u32, c: u32) -> vec4<f32> {
  let g = row * (C4 / WBlockPacks) + c / WBlockPacks;
  let i = c % WBlockPacks;
  let w0 = table_pack(positions, w_pack_word(g, i, 0u));
  var w1 = w0;
  var w2 = w0;
  var w3 = w0;
  var w4 = w0;
  var w5 = w0;
  if (WPackWords > 1u) { w1 = table_pack(positions, w_pack_word(g, i, 1u)); }
  if (WPackWords > 2u) { w2 = table_pack(positions, w_pack_word(g, i, 2u)); }
  if (WPackWords > 3u) { w3 = table_pack(positions, w_pack_word(g, i, 3u)); }
  if (WPackWords > 4u) { w4 = table_pack(positions, w_pack_word(g, i, 4u)); }
  if (WPackWords > 5u) { w5 = table_pack(positions, w_pack_word(g, i, 5u)); }
  return w_unpack(g, i, array<WPack, 6>(w0, w1, w2, w3, w4, w5));
}

@compute @workgroup_size(64)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let c = gid.x;
  if (c >= C4) { return; }
  for (var t = gid.y; t < step.rows; t += groups.y) {
    var id = step.ids[t];
    if (id == CHAIN_ID) { id = chain[0]; }
    if (id >= ROW0 && id < ROW0 + ROWS) {
      var v = table4(false, id - ROW0, c);
      if (POSITIONS) { v += table4(true, step.pos0 + t, c); }
      x[t * C4 + c] = v;
    }
  }
}
