// lm_head.wgsl — final LayerNorm (or RMSNorm) fused with the language-model head for the last row:
//   logits[v] = LayerNorm(x[rows - 1]) . wte[v]   (GPT-2 ties the head to the token embedding)
//   logits[v] = RMSNorm(x[rows - 1]) . head[v]    (RMS: the Llama family; no mean, no beta)
// Only the last row's logits are ever needed (prefill predicts one token), so this is a
// matrix-vector product over the vocabulary; every workgroup normalizes the row itself (a few KB
// from cache) rather than paying a separate dispatch.
// Layout: x f32 [rows, C]; ln_gamma, ln_beta f32 [C]; wte rows [ROW0, ROW0 + ROWS) of [V, C] in the
//   weight format of the module's snippet (C4 packs per row, or C / 32 blocks of a block format, read
//   a block per lane per step through the snippet's block interface, weights_f32.wgsl); logits f32 [V].
// Workgroup: 256 invocations = 256 / HEAD_LANES vocabulary rows x HEAD_LANES lanes (8 on a GPU, 1 on
//   a CPU adapter); dispatch (HEAD_GROUPS, 1, 1), the workgroups striding over the blocks of rows (one each on a GPU, many on a CPU
//   adapter, where each workgroup pays the LayerNorm and its barriers again).
// Constants:
//   C: u32            n_embd (a multiple of 32 for the block formats)
//   C4: u32           C / 4 (the normalized row lives in workgroup memory: C4 * 16 bytes)
//   EPS: f32          LayerNorm epsilon
//   RMS: bool         RMSNorm instead of LayerNorm (ln_beta unused)
//   ROW0: u32         first vocabulary row held by this split of the table
//   ROWS: u32         rows in this split
//   HEAD_LANES: u32   invocations per vocabulary row
//   HEAD_GROUPS: u32  workgroups
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

// Pack p of table row v.
fn wte4(v: u32, p: u32) -> vec4<f32> {
  let g = v * (C4 / WBlockPacks) + p / WBlockPacks;
  let i = p % WBlockPacks;
  var ws: array<WPack, WPackWords>;
  for (var j = 0u; j < WPackWords; j++) { ws[j] = wte[w_pack_word(g, i, j)]; }
  return w_unpack(g, i, ws);
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
  let rstd = inverseSqrt(workgroup_sum(lid, q) / f32(C) + EPS);
  for (var i = lid; i < C4; i += 256u) {
    if (RMS) { xn[i] = (x[row0 + i] * rstd) * ln_gamma[i]; }
    else { xn[i] = (x[row0 + i] - mean) * rstd * ln_gamma[i] + ln_beta[i]; }
  }
  workgroupBarrier();
  let lane = lid % HEAD_LANES;
  for (var blk = wid.x; blk < HEAD_BLOCKS; blk += HEAD_GROUPS) {
    let v = blk * ROWS_PER_BLOCK + lid / HEAD_LANES;
    var acc = 0.0;
    if (v < ROWS) {
      if (WBlockPacks == 1u) {  // a float format: a pack at a time, as dot products
        for (var i = lane; i < C4; i += HEAD_LANES) { acc += dot(xn[i], wte4(v, i)); }
      } else {
        var s = vec4<f32>(0.0);
        for (var b = lane; b < C4 / WBlockPacks; b += HEAD_LANES) {
          var xs: array<vec4<f32>, WBlockPacks>;
          var ws: array<WPack, WBlockWords>;
          for (var i = 0u; i < WBlockPacks; i++) { xs[i] = xn[b * WBlockPacks + i]; }
          let g = v * (C4 / WBlockPacks) + b;
          for (var j = 0u; j < WBlockWords; j++) { ws[j] = wte[w_first(g) + j]; }
          s += w_dot(g, ws, xs);
        }
        acc = s.x + s.y + s.z + s.w;
      }
    }
    if (HEAD_LANES == 1u) {  // one invocation per row: nothing to reduce, no barrier
      if (v < ROWS) { logits[ROW0 + v] = acc; }
      continue;
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
