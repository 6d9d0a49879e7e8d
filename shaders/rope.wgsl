// rope.wgsl — rotary position embeddings of the Llama family, after the q|k|v projection: rotates
// each q and k head (half-split layout, transformers' rotate_half), optionally RMS-normalizing each
// head first (Qwen3's q_norm / k_norm), and puts this run's keys and values into the KV cache.
//   for d < HD / 2, with (c, s) = rope_table[pos, d]:
//     out[d]          = x[d] * c - x[d + HD / 2] * s
//     out[d + HD / 2] = x[d + HD / 2] * c + x[d] * s
// The cos/sin table is computed on the CPU (app/rope.py: transformers' float32 inverse frequencies,
// the angle as one float32 product position * inv_freq, its cos and sin rounded from f64), because
// WGSL's cos and sin are only specified to 2^-11 absolute error on [-pi, pi]: an angle of a late
// position, thousands of radians, would be rotated by another amount than transformers rotates it.
// Layout: qkv f32 [rows, (NH + 2 KVH) * HD] (q heads, then k heads, then v heads); q f32 [rows,
//   NH * HD]; kv f32 [2, KVH, N_CTX, HD] (this layer's K and V caches); rope_table vec2<f32>
//   [N_CTX, HD / 2] (cos, sin); q_norm_w, k_norm_w f32 [HD] (QK_NORM).
// Entry points:
//   rope       one workgroup per (head slot, row): slots [0, NH) are q heads, [NH, NH + KVH) k heads,
//              the rest v heads (copied to the cache); invocation d < HD handles dimension d.
//              Dispatch (NH + 2 KVH, rows, 1).
//   rope_rows  one invocation per (row, head slot), serial over the head, no barriers (CPU
//              adapters). Dispatch (ceil(rows * (NH + 2 KVH) / 64), 1, 1).
// Constants:
//   NH: u32        query heads
//   KVH: u32       key/value heads
//   HD: u32        head size (even, <= 256)
//   N_CTX: u32     KV cache positions
//   QK_NORM: bool  RMS-normalize each q and k head (q_norm_w, k_norm_w) before rotating
//   EPS: f32       that RMSNorm's epsilon
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_llama.py -k rope
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> kv: array<f32>;
@group(0) @binding(4) var<storage, read> rope_table: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> q_norm_w: array<f32>;
@group(0) @binding(6) var<storage, read> k_norm_w: array<f32>;

const HALF: u32 = HD / 2u;
const SLOTS: u32 = NH + 2u * KVH;

// Value d of head slot `slot` of row t, normalized when QK_NORM (rstd: that head's 1 / RMS).
fn head_value(t: u32, slot: u32, d: u32, rstd: f32) -> f32 {
  let v = qkv[(t * SLOTS + slot) * HD + d];
  if (!QK_NORM || slot >= NH + KVH) { return v; }
  if (slot < NH) { return (v * rstd) * q_norm_w[d]; }
  return (v * rstd) * k_norm_w[d];
}

// The rotated (or, for a v head, copied) value d, written where it belongs.
fn place(t: u32, slot: u32, d: u32, rstd: f32) {
  let pos = step.pos0 + t;
  var v = head_value(t, slot, d, rstd);
  if (slot < NH + KVH) {
    let cs = rope_table[pos * HALF + d % HALF];
    if (d < HALF) {
      v = v * cs.x - head_value(t, slot, d + HALF, rstd) * cs.y;
    } else {
      v = v * cs.x + head_value(t, slot, d - HALF, rstd) * cs.y;
    }
  }
  if (slot < NH) {
    q[(t * NH + slot) * HD + d] = v;
  } else {  // k heads are the cache's heads [0, KVH), v heads [KVH, 2 KVH)
    kv[((slot - NH) * N_CTX + pos) * HD + d] = v;
  }
}

fn squares(t: u32, slot: u32, d: u32) -> f32 {
  let v = qkv[(t * SLOTS + slot) * HD + d];
  return v * v;
}

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let slot = wid.x;
  let t = wid.y;
  if (t >= step.rows) { return; }  // the same for the whole workgroup: no barrier skipped
  var rstd = 1.0;
  if (QK_NORM && slot < NH + KVH) {
    var s = 0.0;
    if (lid < HD) { s = squares(t, slot, lid); }
    rstd = norm_rstd(workgroup_sum(lid, s), HD, EPS);
  }
  if (lid < HD) { place(t, slot, lid, rstd); }
}

@compute @workgroup_size(64)
fn rope_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x / SLOTS;
  let slot = gid.x % SLOTS;
  if (t >= step.rows) { return; }
  var rstd = 1.0;
  if (QK_NORM && slot < NH + KVH) {
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += squares(t, slot, d); }
    rstd = norm_rstd(s, HD, EPS);
  }
  for (var d = 0u; d < HD; d++) { place(t, slot, d, rstd); }
}
