// lm_head.wgsl — final LayerNorm (or RMSNorm) fused with the language-model head for the last row:
//   logits[v] = LayerNorm(x[rows - 1]) . wte[v]   (GPT-2 ties the head to the token embedding)
//   logits[v] = RMSNorm(x[rows - 1]) . head[v]    (RMS: the Llama family; no mean, no beta)
// Only the last row's logits are ever needed (prefill predicts one token), so this is a
// matrix-vector product over the vocabulary; every workgroup normalizes the row itself (a few KB
// from cache) rather than paying a separate dispatch.
// Layout: x f32 [rows, C]; ln_gamma, ln_beta f32 [C]; wte rows [ROW0, ROW0 + ROWS) of [V, C] in the
//   weight format of the module's snippet (C4 packs per row, or C / 32 blocks of a block format, read
//   through the snippet's block interface, weights_f32.wgsl: on a GPU the lanes of a row take
//   consecutive segments, on a CPU adapter whole blocks, as linear.wgsl's gemv; F16 / BF16 on a GPU
//   may come as weights_f16_wide.wgsl's blocks of 8, one 16-byte load each); logits f32 [V].
// Workgroup: 256 invocations = 256 / HEAD_LANES vocabulary rows x HEAD_LANES lanes (8 on a GPU; 1 on
//   a CPU adapter, each invocation HEAD_ROW_TILE rows); dispatch (HEAD_GROUPS, 1, 1), the workgroups
//   striding over the blocks of rows (one each on a GPU; a few on a CPU adapter, each paying the
//   LayerNorm and its barriers again, taking the tiles of rows in turn).
// Constants:
//   C: u32            n_embd (a multiple of 32 for the block formats, 256 for the k-quants)
//   C4: u32           C / 4 (the normalized row lives in workgroup memory: C4 * 16 bytes)
//   EPS: f32          LayerNorm epsilon
//   RMS: bool         RMSNorm instead of LayerNorm (ln_beta unused)
//   ROW0: u32         first vocabulary row held by this split of the table
//   ROWS: u32         rows in this split
//   HEAD_LANES: u32   invocations per vocabulary row
//   HEAD_GROUPS: u32  workgroups
//   HEAD_ROW_TILE: u32 rows per invocation with one lane per row (a CPU adapter: 1, 2, 4 or 8 adjacent
//                     rows, the normalized row read from workgroup memory once for all of them; the
//                     invocations take the tiles in turn across the workgroups); 1 on a GPU
//   Q4_0_STREAM: bool a GPU reading a Q4_0 table with C a multiple of 256 and HEAD_LANES dividing 32:
//                     a row's words addressed group by group (see head_row_q4_0)
//   HEAD_UNROLL: u32  packs (a float format) or segments (a block format) a GPU lane loads before
//                     multiplying them (1, 2, 4 or 8: more bytes in flight; the same additions in the
//                     same order)
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py tests/test_kernels_llama.py tests/test_kernels_quant.py tests/test_kernels_gemv_variants.py -k lm_head
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ln_gamma: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> ln_beta: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> wte: array<WPack>;
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;

const ROWS_PER_BLOCK: u32 = 256u / HEAD_LANES;
const HEAD_BLOCKS: u32 = (ROWS + ROWS_PER_BLOCK - 1u) / ROWS_PER_BLOCK;
var<workgroup> xn: array<vec4<f32>, C4>;
var<workgroup> partial: array<f32, 256>;

// The WPacks pack i of block g needs (those of segment i of a block, for w_seg_dot).
fn seg_words(g: u32, i: u32) -> array<WPack, 6> {
  let w0 = wte[w_pack_word(g, i, 0u)];
  var w1 = w0;
  var w2 = w0;
  var w3 = w0;
  var w4 = w0;
  var w5 = w0;
  if (WPackWords > 1u) { w1 = wte[w_pack_word(g, i, 1u)]; }
  if (WPackWords > 2u) { w2 = wte[w_pack_word(g, i, 2u)]; }
  if (WPackWords > 3u) { w3 = wte[w_pack_word(g, i, 3u)]; }
  if (WPackWords > 4u) { w4 = wte[w_pack_word(g, i, 4u)]; }
  if (WPackWords > 5u) { w5 = wte[w_pack_word(g, i, 5u)]; }
  return array<WPack, 6>(w0, w1, w2, w3, w4, w5);
}

// Pack p of table row v.
fn wte4(v: u32, p: u32) -> vec4<f32> {
  let g = v * (C4 / WBlockPacks) + p / WBlockPacks;
  let i = p % WBlockPacks;
  return w_unpack(g, i, seg_words(g, i));
}

// Block g's WPacks (a format needing fewer than 20 repeats its last: the same load, made once).
fn block_words(g: u32) -> array<WPack, 20> {
  return array<WPack, 20>(wte[w_block_word(g, 0u)], wte[w_block_word(g, 1u)], wte[w_block_word(g, 2u)],
                          wte[w_block_word(g, 3u)], wte[w_block_word(g, 4u)], wte[w_block_word(g, 5u)],
                          wte[w_block_word(g, 6u)], wte[w_block_word(g, 7u)], wte[w_block_word(g, 8u)],
                          wte[w_block_word(g, 9u)], wte[w_block_word(g, 10u)], wte[w_block_word(g, 11u)],
                          wte[w_block_word(g, 12u)], wte[w_block_word(g, 13u)], wte[w_block_word(g, 14u)],
                          wte[w_block_word(g, 15u)], wte[w_block_word(g, 16u)], wte[w_block_word(g, 17u)],
                          wte[w_block_word(g, 18u)], wte[w_block_word(g, 19u)]);
}

const HEAD_KB: u32 = C4 / WBlockPacks;               // blocks per table row
const HEAD_BLOCK_SEGS: u32 = WBlockPacks / WSegPacks;  // segments per block
const HEAD_SEGS: u32 = HEAD_KB * HEAD_BLOCK_SEGS;      // segments per table row

// Segment u of table row v (segment u % HEAD_BLOCK_SEGS of its block u / HEAD_BLOCK_SEGS) times the
// normalized row, from the segment's WPacks.
fn head_seg_dot(v: u32, u: u32, ws: array<WPack, 6>) -> vec4<f32> {
  let b = u / HEAD_BLOCK_SEGS;
  let sg = u % HEAD_BLOCK_SEGS;
  let xs = array<vec4<f32>, 2>(xn[b * WBlockPacks + w_seg_pack(sg, 0u)],
                               xn[b * WBlockPacks + w_seg_pack(sg, WSegPacks - 1u)]);
  return w_seg_dot(v * HEAD_KB + b, sg, ws, xs);
}

// Q4_0_STREAM: table row v times the normalized row, a Q4_0 row whose blocks fill whole groups of 8
// (common.wgsl: 36 words a group, 4 of scales then 8 blocks x 4 words of nibbles). Lane l takes
// the same segments in the same order as the generic block path (segments l, l + HEAD_LANES, ...: in
// group n, words of nibbles l + HEAD_LANES k), so the sum is the same bits; but each group's words
// are found by one add to the group's base (linear.wgsl gemv_row_q4_0 says why), and a group's
// segments are loaded before their math.
const Q4_PER_LANE: u32 = max(32u / HEAD_LANES, 1u);  // a lane's segments in a group

fn head_row_q4_0(v: u32, lane: u32) -> f32 {
  let groups = HEAD_KB / 8u;
  var s = vec4<f32>(0.0);
  for (var n = 0u; n < groups; n++) {
    let o = (v * groups + n) * Q4_0_GROUP_WORDS;
    var ws: array<array<WPack, 6>, Q4_PER_LANE>;
    for (var k = 0u; k < Q4_PER_LANE; k++) {
      let wd = lane + HEAD_LANES * k;  // the word of nibbles within the group: block wd / 4, word wd % 4
      let q = wte[q4_0_nibble_word(o, wd)];
      ws[k] = array<WPack, 6>(wte[q4_0_scale_word(o, wd / 4u)], q, q, q, q, q);
    }
    for (var k = 0u; k < Q4_PER_LANE; k++) {
      let wd = lane + HEAD_LANES * k;
      let b = 8u * n + wd / 4u;  // the block within the row
      let xs = array<vec4<f32>, 2>(xn[8u * b + wd % 4u], xn[8u * b + 4u + wd % 4u]);
      s += w_seg_dot(b, wd % 4u, ws[k], xs);
    }
  }
  return s.x + s.y + s.z + s.w;
}

// Step p of the normalized row: pack p of a float format (in [0]), or the 8 packs block p multiplies.
fn head_input(p: u32) -> array<vec4<f32>, 8> {
  if (WBlockPacks == 1u) {
    let z = vec4<f32>(0.0);
    return array<vec4<f32>, 8>(xn[p], z, z, z, z, z, z, z);
  }
  let q = p * WBlockPacks;
  return array<vec4<f32>, 8>(xn[q], xn[q + 1u], xn[q + 2u], xn[q + 3u], xn[q + 4u], xn[q + 5u], xn[q + 6u], xn[q + 7u]);
}

// Step p of table row v (pack p, or block p) dotted with the normalized row's (as linear.wgsl cpu_dot).
fn head_dot(v: u32, p: u32, xs: array<vec4<f32>, 8>) -> f32 {
  if (WBlockPacks == 1u) { return dot(xs[0], wte4(v, p)); }
  let d = w_dot(v * HEAD_KB + p, block_words(v * HEAD_KB + p), xs);
  return d.x + d.y + d.z + d.w;
}

// Step p of the normalized row, read once, dotted with step p of each of the invocation's rows (lo,
// hi: common.wgsl cpu_tile_rows), added to the sums.
fn head_step(a_lo: ptr<function, vec4<f32>>, a_hi: ptr<function, vec4<f32>>, lo: vec4<u32>, hi: vec4<u32>, p: u32) {
  let xs = head_input(p);
  (*a_lo).x += head_dot(lo.x, p, xs);
  if (HEAD_ROW_TILE > 1u) { (*a_lo).y += head_dot(lo.y, p, xs); }
  if (HEAD_ROW_TILE > 2u) {
    (*a_lo).z += head_dot(lo.z, p, xs);
    (*a_lo).w += head_dot(lo.w, p, xs);
  }
  if (HEAD_ROW_TILE > 4u) {
    *a_hi += vec4<f32>(head_dot(hi.x, p, xs), head_dot(hi.y, p, xs), head_dot(hi.z, p, xs), head_dot(hi.w, p, xs));
  }
}

// Rows v0 .. v0 + HEAD_ROW_TILE - 1 (1, 2, 4 or 8) of this split by one invocation (a CPU adapter):
// each pack or block of the normalized row loaded once for all of them (SwiftShader reads workgroup
// memory slower than a buffer), one f32 sum a row in named vectors (a private array indexed in a loop
// lives in memory there; linear.wgsl gemv_rows_cpu). A row past ROWS is computed from row ROWS - 1
// and not stored.
fn head_rows_cpu(v0: u32) {
  let rows = cpu_tile_rows(v0, ROWS - 1u);
  var a_lo = vec4<f32>(0.0);
  var a_hi = vec4<f32>(0.0);
  // HEAD_KB = C4 for a float format
  for (var p = 0u; p < HEAD_KB; p++) { head_step(&a_lo, &a_hi, rows[0], rows[1], p); }
  logits[ROW0 + v0] = a_lo.x;
  if (HEAD_ROW_TILE > 1u && v0 + 1u < ROWS) { logits[ROW0 + v0 + 1u] = a_lo.y; }
  if (HEAD_ROW_TILE > 2u && v0 + 2u < ROWS) { logits[ROW0 + v0 + 2u] = a_lo.z; }
  if (HEAD_ROW_TILE > 2u && v0 + 3u < ROWS) { logits[ROW0 + v0 + 3u] = a_lo.w; }
  if (HEAD_ROW_TILE > 4u && v0 + 4u < ROWS) { logits[ROW0 + v0 + 4u] = a_hi.x; }
  if (HEAD_ROW_TILE > 4u && v0 + 5u < ROWS) { logits[ROW0 + v0 + 5u] = a_hi.y; }
  if (HEAD_ROW_TILE > 4u && v0 + 6u < ROWS) { logits[ROW0 + v0 + 6u] = a_hi.z; }
  if (HEAD_ROW_TILE > 4u && v0 + 7u < ROWS) { logits[ROW0 + v0 + 7u] = a_hi.w; }
}

@compute @workgroup_size(256)
fn lm_head(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row0 = (step.rows - 1u) * C4;
  var mean = 0.0;
  if (!RMS) {
    var s = 0.0;
    for (var i = lid; i < C4; i += 256u) { let v = x[row0 + i]; s += v.x + v.y + v.z + v.w; }
    mean = workgroup_sum(lid, s) / f32(C);
  }
  var q = 0.0;
  for (var i = lid; i < C4; i += 256u) { let d = x[row0 + i] - mean; q += dot(d, d); }
  let rstd = norm_rstd(workgroup_sum(lid, q), C, EPS);
  for (var i = lid; i < C4; i += 256u) {
    if (RMS) { xn[i] = rms_norm4(x[row0 + i], rstd, ln_gamma[i]); }
    else { xn[i] = layer_norm4(x[row0 + i], mean, rstd, ln_gamma[i], ln_beta[i]); }
  }
  workgroupBarrier();
  if (HEAD_LANES == 1u) {
    for (var t = wid.x + lid * HEAD_GROUPS; t * HEAD_ROW_TILE < ROWS; t += 256u * HEAD_GROUPS) {
      head_rows_cpu(t * HEAD_ROW_TILE);
    }
    return;
  }
  let lane = lid % HEAD_LANES;
  for (var blk = wid.x; blk < HEAD_BLOCKS; blk += HEAD_GROUPS) {
    let v = blk * ROWS_PER_BLOCK + lid / HEAD_LANES;
    var acc = 0.0;
    if (v < ROWS) {
      if (Q4_0_STREAM) {
        acc = head_row_q4_0(v, lane);
      } else if (WBlockPacks == 1u) {  // a float format: pack by pack, as dot products
        var i = lane;
        if (HEAD_UNROLL > 1u) {  // HEAD_UNROLL packs loaded before their dot products
          for (; i + (HEAD_UNROLL - 1u) * HEAD_LANES < C4; i += HEAD_UNROLL * HEAD_LANES) {
            var ws: array<vec4<f32>, HEAD_UNROLL>;
            for (var j = 0u; j < HEAD_UNROLL; j++) { ws[j] = wte4(v, i + j * HEAD_LANES); }
            for (var j = 0u; j < HEAD_UNROLL; j++) { acc += dot(xn[i + j * HEAD_LANES], ws[j]); }
          }
        }
        for (; i < C4; i += HEAD_LANES) { acc += dot(xn[i], wte4(v, i)); }
      } else if (HEAD_LANES >= 8u) {  // a block format on a GPU: lanes on consecutive segments
        var s = vec4<f32>(0.0);
        var u = lane;
        if (HEAD_UNROLL > 1u) {  // HEAD_UNROLL segments loaded before their dot products
          for (; u + (HEAD_UNROLL - 1u) * HEAD_LANES < HEAD_SEGS; u += HEAD_UNROLL * HEAD_LANES) {
            var ws: array<array<WPack, 6>, HEAD_UNROLL>;
            for (var j = 0u; j < HEAD_UNROLL; j++) {
              let uj = u + j * HEAD_LANES;
              ws[j] = seg_words(v * HEAD_KB + uj / HEAD_BLOCK_SEGS, uj % HEAD_BLOCK_SEGS);
            }
            for (var j = 0u; j < HEAD_UNROLL; j++) { s += head_seg_dot(v, u + j * HEAD_LANES, ws[j]); }
          }
        }
        for (; u < HEAD_SEGS; u += HEAD_LANES) {
          s += head_seg_dot(v, u, seg_words(v * HEAD_KB + u / HEAD_BLOCK_SEGS, u % HEAD_BLOCK_SEGS));
        }
        acc = s.x + s.y + s.z + s.w;
      } else {  // a block format on 2 or 4 lanes a row (head_lanes 2 or 4): whole blocks
        var s = vec4<f32>(0.0);
        for (var b = lane; b < C4 / WBlockPacks; b += HEAD_LANES) {
          let p = b * WBlockPacks;
          let xs = array<vec4<f32>, 8>(xn[p], xn[p + 1u], xn[p + 2u], xn[p + 3u], xn[p + 4u], xn[p + 5u], xn[p + 6u],
                                       xn[p + 7u]);
          let g = v * (C4 / WBlockPacks) + b;
          s += w_dot(g, block_words(g), xs);
        }
        acc = s.x + s.y + s.z + s.w;
      }
    }
    partial[lid] = acc;
    workgroupBarrier();
    if (lane == 0u && v < ROWS) {
      var total = 0.0;
      for (var j = 0u; j < HEAD_LANES; j++) { total += partial[lid + j]; }
      logits[ROW0 + v] = total;
    }
    workgroupBarrier();
  }
}
