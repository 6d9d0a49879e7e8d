// attention.wgsl — causal multi-head attention of new rows against the KV cache.
// Query row t (sequence position p = pos0 + t) of head h attends to cache positions 0..p:
//   y[t, h] = softmax(q . K[h, 0..p] * SCALE) @ V[h, 0..p].
// The same kernel serves prefill (many rows) and decode (one row): the projections have already
// written this run's keys and values into the cache.
// Layout: q, y f32 [rows, C] (head h at columns h*HD..); kv f32 [2, NH, N_CTX, HD].
// Workgroup: 256 invocations for one row, striding over the heads; dispatch (ATT_GROUPS, rows, 1)
//   (ATT_GROUPS = NH on a GPU, fewer on a CPU adapter). Scores live in
//   workgroup memory (N_CTX floats), so N_CTX is bounded by the adapter's workgroup storage.
// Constants: C, NH, HD (<= 256), N_CTX, SCALE, ATT_GROUPS.
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> scores: array<f32, N_CTX>;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  if (t >= step.rows) { return; }
  for (var h = wid.x; h < NH; h += ATT_GROUPS) {
    attend_head(h, t, lid);
  }
}

fn attend_head(h: u32, t: u32, lid: u32) {
  let n = step.pos0 + t + 1u;            // positions visible to this row
  let q0 = t * C + h * HD;
  let k0 = h * N_CTX * HD;
  let v0 = (NH + h) * N_CTX * HD;
  var m = NEG_INF;
  for (var p = lid; p < n; p += 256u) {
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += q[q0 + d] * kv[k0 + p * HD + d]; }
    s *= SCALE;
    scores[p] = s;
    m = max(m, s);
  }
  m = workgroup_max(lid, m);
  var l = 0.0;
  for (var p = lid; p < n; p += 256u) {
    let e = exp(scores[p] - m);
    scores[p] = e;
    l += e;
  }
  l = workgroup_sum(lid, l);             // its barriers also publish scores[]
  let groups = 256u / HD;                // invocations split positions into groups per dim
  let d = lid % HD;
  let g = lid / HD;
  var acc = 0.0;
  if (g < groups) {
    for (var p = g; p < n; p += groups) { acc += scores[p] * kv[v0 + p * HD + d]; }
  }
  partial[lid] = acc;
  workgroupBarrier();
  if (g == 0u) {
    var total = 0.0;
    for (var j = 0u; j < groups; j++) { total += partial[j * HD + d]; }
    y[t * C + h * HD + d] = total / l;
  }
  workgroupBarrier();  // scores[] and partial[] are reused by the next head
}
