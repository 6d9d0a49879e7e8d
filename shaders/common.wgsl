// common.wgsl — declarations shared by every kernel. WGSL has no #include, so app/model.py builds
// each module as: weight-format snippet (weights_*.wgsl) + per-pipeline constants + this file +
// the kernel file.
//
// Step: the per-run parameters, one small storage buffer written once per prefill chunk or decode
// step (one writeBuffer call), read by every kernel of that run.
//   rows        number of sequence rows in this run (1 for a decode step)
//   pos0        position of row 0 in the sequence = tokens already in the KV cache
//   k           candidates wanted from topk (1 = greedy)
//   temperature temperature of the log-sum-exp that topk reports (<= 0 means 1) and of the token
//               it chooses (<= 0: greedy)
//   top_k       that choice's top-k (0 = off)
//   top_p       that choice's top-p (1 = off)
//   draw        the uniform number in [0, 1) the CPython sampler will draw for that choice
//               (topk.wgsl choose_token)
//   ids         token id of each row
struct Step {
  rows: u32,
  pos0: u32,
  k: u32,
  temperature: f32,
  top_k: u32,
  top_p: f32,
  draw: f32,
  ids: array<u32>,
}

// A huge negative finite f32 stands for -infinity: WGSL rejects an infinite constant expression, and
// this sentinel still compares below every real logit and gives exp(NEG_INF - m) == 0.
const NEG_INF: f32 = -3.0e38;

// NaN test on the bits: WGSL lets implementations assume no NaNs, and SwiftShader folds v != v.
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }

// Cache positions per block of the split decode attention (attention.wgsl attention_split), whose
// partial results the attention projection (matmul.wgsl gemv with ATT_INPUT) merges.
const ATT_BLOCK: u32 = 64u;

// Workgroup-wide reductions over 256 invocations. Callers must be in uniform control flow.
// Two levels (16 invocations sum 16 values each, then every invocation sums the 16 partial sums in
// the same order, so all get the same bits) cost two barriers instead of a tree's nine: a barrier
// is the expensive part on both kinds of adapter. No trailing barrier is needed: a following call
// writes reduce_scratch only after every invocation has read it, and reduce_partial only after its
// own first barrier, which every invocation reaches after reading this call's partial sums.
var<workgroup> reduce_scratch: array<f32, 256>;
var<workgroup> reduce_partial: array<f32, 16>;

fn workgroup_sum(lid: u32, v: f32) -> f32 {
  reduce_scratch[lid] = v;
  workgroupBarrier();
  if (lid < 16u) {
    var s = 0.0;
    for (var i = 0u; i < 16u; i++) { s += reduce_scratch[lid * 16u + i]; }
    reduce_partial[lid] = s;
  }
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < 16u; i++) { total += reduce_partial[i]; }
  return total;
}

fn workgroup_max(lid: u32, v: f32) -> f32 {
  reduce_scratch[lid] = v;
  workgroupBarrier();
  if (lid < 16u) {
    var m = reduce_scratch[lid * 16u];
    for (var i = 1u; i < 16u; i++) { m = max(m, reduce_scratch[lid * 16u + i]); }
    reduce_partial[lid] = m;
  }
  workgroupBarrier();
  var best = reduce_partial[0];
  for (var i = 1u; i < 16u; i++) { best = max(best, reduce_partial[i]); }
  return best;
}
