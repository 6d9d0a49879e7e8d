// common.wgsl — declarations shared by every kernel. WGSL has no #include, so app/model.py builds
// each module as: weight-format snippet (weights_*.wgsl) + per-pipeline constants + this file +
// the kernel file.
//
// Step: the per-run parameters, one small storage buffer written once per prefill chunk or decode
// step (one writeBuffer call), read by every kernel of that run.
//   rows        number of sequence rows in this run (1 for a decode step)
//   pos0        position of row 0 in the sequence = tokens already in the KV cache
//   k           candidates wanted from topk (1 = greedy)
//   temperature temperature for the log-sum-exp that topk reports (<= 0 means 1)
//   ids         token id of each row
struct Step {
  rows: u32,
  pos0: u32,
  k: u32,
  temperature: f32,
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
var<workgroup> reduce_scratch: array<f32, 256>;

fn workgroup_sum(lid: u32, v: f32) -> f32 {
  reduce_scratch[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) { reduce_scratch[lid] += reduce_scratch[lid + s]; }
    workgroupBarrier();
  }
  let total = reduce_scratch[0];
  workgroupBarrier();
  return total;
}

fn workgroup_max(lid: u32, v: f32) -> f32 {
  reduce_scratch[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) { reduce_scratch[lid] = max(reduce_scratch[lid], reduce_scratch[lid + s]); }
    workgroupBarrier();
  }
  let best = reduce_scratch[0];
  workgroupBarrier();
  return best;
}
