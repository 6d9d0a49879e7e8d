// attention.wgsl — causal multi-head attention of new rows against the KV cache.
// Query row t (sequence position p = pos0 + t) of head h attends to cache positions 0..p:
//   y[t, h] = softmax(q . K[h, 0..p] * SCALE) @ V[h, 0..p].
// The same kernel serves prefill (many rows) and decode (one row): the projections have already
// written this run's keys and values into the cache.
// Layout: q, y f32 [rows, C] (head h at columns h*HD..); kv f32 [2, KVH, N_CTX, HD]: query head h
//   reads key/value head h / (NH / KVH) (grouped-query attention; KVH = NH for GPT-2, 1 for
//   multi-query attention).
// Workgroup: 256 invocations for one (head, row) at a time, striding over heads and rows;
//   dispatch (ATT_GROUPS, R, 1) with R <= rows (ATT_GROUPS = NH and R = rows on a GPU, fewer on a
//   CPU adapter). Scores live in
//   workgroup memory (N_CTX floats), so N_CTX is bounded by the adapter's workgroup storage.
// Constants:
//   C: u32           row length of q and y (NH * HD)
//   NH: u32          query heads
//   KVH: u32         key/value heads (divides NH)
//   HD: u32          head size (<= 256)
//   N_CTX: u32       KV cache positions
//   SCALE: f32       score scale (1 / sqrt(HD))
//   ATT_GROUPS: u32  attention: workgroups along the heads
//   ATT_SPLITS: u32  attention_split: blocks of ATT_BLOCK positions (ceil(N_CTX / ATT_BLOCK))
//
// attention_tiled (prefill on a GPU) works like flash attention: workgroup (h, b) owns query rows
// b*QB .. b*QB + QB - 1 of head h, walks the cache in tiles of KB positions staged through workgroup
// memory (coalesced loads, each key and value read once per query block instead of once per row),
// and keeps a running max / sum / output per row (online softmax), so no row of scores is stored.
// 256 invocations: for scores 16 rows x 16 keys; for the output 16 rows x 16 lanes of dimensions.
// Dispatch (NH, ceil(rows / QB), 1). Workgroup memory 4 * (48 * HD + 256) bytes.
//
// attention_split (decode on a GPU) spreads one row over NH x ATT_SPLITS workgroups, one per
// (head, block of ATT_BLOCK = 64 cache positions), so a long context keeps the GPU busy
// (flash-decoding). Workgroup (h, s) writes its block's unnormalized result and softmax statistics
//   y[(h * ATT_SPLITS + s) * (HD + 2) + d] = sum_p exp(score_p - m_s) V[h, p, d]   (d < HD)
//   y[... + HD] = m_s = max_p score_p,   y[... + HD + 1] = l_s = sum_p exp(score_p - m_s)
// and the attention projection merges the blocks as it reads its input (matmul.wgsl, ATT_INPUT):
//   out[h, d] = sum_s exp(m_s - M) acc_s[d] / sum_s exp(m_s - M) l_s,  M = max_s m_s.
// Dispatch (NH, ATT_SPLITS, 1); blocks past the sequence (s * ATT_BLOCK > pos0) return at once.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py -k 'attention' and tests/test_kernels_llama.py -k attention
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn kv_head(h: u32) -> u32 { return h / (NH / KVH); }

var<workgroup> scores: array<f32, N_CTX>;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  for (var t = wid.y; t < step.rows; t += groups.y) {
    for (var h = wid.x; h < NH; h += ATT_GROUPS) {
      attend_head(h, t, lid);
    }
  }
}

fn attend_head(h: u32, t: u32, lid: u32) {
  let n = step.pos0 + t + 1u;            // positions visible to this row
  let q0 = t * C + h * HD;
  let k0 = kv_head(h) * N_CTX * HD;
  let v0 = (KVH + kv_head(h)) * N_CTX * HD;
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

const QB: u32 = 16u;                    // query rows per workgroup (attention_tiled)
const KB: u32 = 16u;                    // cache positions per tile
const DPT: u32 = (HD + 15u) / 16u;      // output dimensions per invocation
var<workgroup> q_tile: array<f32, QB * HD>;   // this block's queries, pre-scaled
var<workgroup> k_tile: array<f32, KB * HD>;
var<workgroup> v_tile: array<f32, KB * HD>;
var<workgroup> s_tile: array<f32, QB * KB>;   // scores of the tile, [row][key]

@compute @workgroup_size(256)
fn attention_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t0 = wid.y * QB;
  let rows = step.rows;
  if (t0 >= rows) { return; }            // the same for the whole workgroup
  let k0 = kv_head(h) * N_CTX * HD;
  let v0 = (KVH + kv_head(h)) * N_CTX * HD;
  for (var i = lid; i < QB * HD; i += 256u) {
    let r = t0 + i / HD;
    var v = 0.0;
    if (r < rows) { v = q[r * C + h * HD + i % HD] * SCALE; }
    q_tile[i] = v;
  }
  let qi = lid / 16u;                    // the row this invocation scores and writes
  let kj = lid % 16u;                    // its key in the tile; its first output dimension
  let t = t0 + qi;
  let n_keys = step.pos0 + min(rows, t0 + QB);  // keys visible to the block's last row
  var o: array<f32, DPT>;
  var m = NEG_INF;
  var l = 0.0;
  for (var p0 = 0u; p0 < n_keys; p0 += KB) {
    workgroupBarrier();                  // the previous tile is no longer read
    for (var i = lid; i < KB * HD; i += 256u) {
      let p = p0 + i / HD;
      var kk = 0.0;
      var vv = 0.0;
      if (p < n_keys) {
        kk = kv[k0 + p * HD + i % HD];
        vv = kv[v0 + p * HD + i % HD];
      }
      k_tile[i] = kk;
      v_tile[i] = vv;
    }
    workgroupBarrier();
    var sc = NEG_INF;
    if (t < rows && p0 + kj <= step.pos0 + t) {
      sc = 0.0;
      for (var d = 0u; d < HD; d++) { sc += q_tile[qi * HD + d] * k_tile[kj * HD + d]; }
    }
    s_tile[qi * KB + kj] = sc;
    workgroupBarrier();
    // Online softmax: the 16 invocations of a row derive the same statistics from s_tile. Key 0
    // is in the first tile and visible to every row, so m is finite from then on.
    var m_tile = NEG_INF;
    for (var j = 0u; j < KB; j++) { m_tile = max(m_tile, s_tile[qi * KB + j]); }
    let m_new = max(m, m_tile);
    let rescale = exp(m - m_new);
    for (var x = 0u; x < DPT; x++) { o[x] *= rescale; }
    l *= rescale;
    for (var j = 0u; j < KB; j++) {
      let e = exp(s_tile[qi * KB + j] - m_new);
      l += e;
      for (var x = 0u; x < DPT; x++) {
        let d = kj + 16u * x;
        if (d < HD) { o[x] += e * v_tile[j * HD + d]; }
      }
    }
    m = m_new;
  }
  if (t < rows) {
    for (var x = 0u; x < DPT; x++) {
      let d = kj + 16u * x;
      if (d < HD) { y[t * C + h * HD + d] = o[x] / l; }
    }
  }
}

var<workgroup> block_scores: array<f32, ATT_BLOCK>;
var<workgroup> block_exp: array<f32, ATT_BLOCK>;  // exp(score - m), 0 past the sequence
var<workgroup> block_acc: array<f32, 1024>;  // [4 position groups][256 dimensions]

@compute @workgroup_size(256)
fn attention_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let s = wid.y;
  let n = step.pos0 + 1u;                // one row, at position pos0, sees positions 0..pos0
  let p0 = s * ATT_BLOCK;
  if (p0 >= n) { return; }               // the same for the whole workgroup: no barrier skipped
  let count = min(ATT_BLOCK, n - p0);
  let k0 = kv_head(h) * N_CTX * HD;
  let v0 = (KVH + kv_head(h)) * N_CTX * HD;
  // Scores: 4 invocations per position, each over every 4th dimension, summed through `partial`.
  let pl = lid / 4u;
  var sp = 0.0;
  if (pl < count) {
    let base = k0 + (p0 + pl) * HD;
    for (var t = 0u; t < (HD + 3u) / 4u; t++) {  // a fixed trip count: the loads go out together
      let d = lid % 4u + 4u * t;
      if (d < HD) { sp += q[h * HD + d] * kv[base + d]; }
    }
  }
  partial[lid] = sp;
  workgroupBarrier();
  if (lid < ATT_BLOCK) {
    var sc = NEG_INF;
    if (lid < count) {
      sc = (partial[4u * lid] + partial[4u * lid + 1u] + partial[4u * lid + 2u] + partial[4u * lid + 3u]) * SCALE;
    }
    block_scores[lid] = sc;
  }
  workgroupBarrier();
  // Every invocation takes the max of the block's 64 scores (those past `count` are NEG_INF): a
  // fixed trip count, so the loads go out together, and no reduction barriers.
  var m = NEG_INF;
  for (var i = 0u; i < ATT_BLOCK; i++) { m = max(m, block_scores[i]); }
  if (lid < ATT_BLOCK) { block_exp[lid] = select(0.0, exp(block_scores[lid] - m), lid < count); }
  workgroupBarrier();
  // Values: 4 groups of positions x 64 lanes, a lane covering dimensions lane, lane + 64, ...; a
  // fixed trip count again, so a lane's value loads are in flight together rather than one by one.
  let g = lid / 64u;
  let lane = lid % 64u;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var t = 0u; t < ATT_BLOCK / 4u; t++) {
    let i = g + 4u * t;
    if (i < count) {
      let e = block_exp[i];
      let base = v0 + (p0 + i) * HD;
      for (var j = 0u; j < 4u; j++) {
        let d = lane + 64u * j;
        if (d < HD) { acc[j] += e * kv[base + d]; }
      }
    }
  }
  for (var j = 0u; j < 4u; j++) { block_acc[g * 256u + lane + 64u * j] = acc[j]; }
  workgroupBarrier();
  let out0 = (h * ATT_SPLITS + s) * (HD + 2u);
  if (lid < HD) {
    y[out0 + lid] = block_acc[lid] + block_acc[256u + lid] + block_acc[512u + lid] + block_acc[768u + lid];
  }
  if (lid == 0u) {
    var l = 0.0;
    for (var i = 0u; i < ATT_BLOCK; i++) { l += block_exp[i]; }
    y[out0 + HD] = m;
    y[out0 + HD + 1u] = l;
  }
}

// attention_rows: the same result with one invocation per (row, head) and an online softmax
// (running max and sum, rescaling the accumulator), so no workgroup memory and no barriers.
// Used on CPU adapters (SwiftShader), where a barrier costs far more than the serial loop; on a GPU
// the workgroup-per-(head, row) kernel above spreads a long context better.
// Dispatch (ceil(rows * NH / 64), 1, 1); invocation i handles row i / NH, head i % NH.
@compute @workgroup_size(64)
fn attention_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x / NH;
  let h = gid.x % NH;
  if (t >= step.rows) { return; }
  let n = step.pos0 + t + 1u;
  let k0 = kv_head(h) * N_CTX * HD;
  let v0 = (KVH + kv_head(h)) * N_CTX * HD;
  var qv: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) { qv[d] = q[t * C + h * HD + d] * SCALE; acc[d] = 0.0; }
  var m = NEG_INF;
  var l = 0.0;
  for (var p = 0u; p < n; p++) {
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += qv[d] * kv[k0 + p * HD + d]; }
    let m_new = max(m, s);
    let rescale = exp(m - m_new);
    let e = exp(s - m_new);
    l = l * rescale + e;
    for (var d = 0u; d < HD; d++) { acc[d] = acc[d] * rescale + e * kv[v0 + p * HD + d]; }
    m = m_new;
  }
  for (var d = 0u; d < HD; d++) { y[t * C + h * HD + d] = acc[d] / l; }
}
