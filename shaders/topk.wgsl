// topk.wgsl — the k largest logits with their ids, and the log-sum-exp, on the GPU, so a decode
// step reads back a few hundred bytes instead of the whole vocabulary.
// Entry points:
//   topk_partial  one workgroup per TOPK_CHUNK logits: its k best (id, value) pairs, in descending order
//                 (ties: lower id first, like argmax), and the chunk's max m and
//                 sum(exp((l - m) / T)). Dispatch (ceil(V / TOPK_CHUNK), 1, 1).
//   topk_serial   one invocation doing both (CPU adapters; see below).
//   topk_merge    one workgroup: merges the chunks' sorted candidate lists into the global top k
//                 (each candidate's place by binary searches in the other lists) and combines the
//                 chunk sums into log-sum-exp = M / T + log(S). Dispatch (1, 1, 1).
// The ranking, M and S are those of the logits after the repetition penalty (step.penalty != 1) on
// the tokens whose bit is set in `seen` (ranked_logit; app/contract.py seen_mask); the values written
// are the logits themselves, which app/sampling.py penalizes again in f64.
// Both also choose the next token as the CPython sampler will (choose_token; in id order over the
// whole vocabulary when neither top-k nor top-p filters), so the next decode step can be queued, its
// input read on the GPU (embedding.wgsl CHAIN_ID), before Python has read this one; Python checks that
// choice against its own. The chosen token's bit is set in `seen`: it is the next step's input.
// Layout: logits f32 [V] (NaN is treated as -inf); part u32 [groups, 2 * KMAX + 2] per chunk:
//   ids, then ranked values (f32 bits), then m, s; out u32 [2 * k + 7]: the chosen id, k ids, k logits
//   (f32 bits), M, S; for a choice in id order, or in a top-p nucleus larger than the candidates
//   (topk_merge only), the weights before it and its own, and for the nucleus the weights before its
//   last token and that token's own (else zeros); seen u32 [ceil(V / 32)].
// Workgroup: 256 invocations, TOPK_CHUNK / 256 logits each (KMAX and TOPK_CHUNK: app/contract.py).
// Constants:
//   V: u32       vocabulary size
//   GROUPS: u32  chunks (ceil(V / TOPK_CHUNK))
// Includes: choose.wgsl (the choice of the next token)
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py -k topk
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read_write> seen: array<u32>;

const STRIDE: u32 = 2u * KMAX + 2u;  // app/contract.py TOPK_PARTIAL_WORDS
var<workgroup> vals: array<f32, TOPK_CHUNK>;
var<workgroup> best_val: array<f32, 256>;
var<workgroup> best_pos: array<u32, 256>;
var<workgroup> best_id: array<u32, 256>;

fn better(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  return va > vb || (va == vb && ia < ib);
}

// Reduce (value, position, id) over the workgroup; the winner ends up in slot 0.
fn reduce_best(lid: u32, v: f32, pos: u32, id: u32) {
  best_val[lid] = v;
  best_pos[lid] = pos;
  best_id[lid] = id;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s && better(best_val[lid + s], best_id[lid + s], best_val[lid], best_id[lid])) {
      best_val[lid] = best_val[lid + s];
      best_pos[lid] = best_pos[lid + s];
      best_id[lid] = best_id[lid + s];
    }
    workgroupBarrier();
  }
}

// What top-k ranks token i by: NaN as -inf; a seen token's logit penalized as transformers'
// RepetitionPenaltyLogitsProcessor does (l < 0 times the penalty, else divided by it), clamped to the
// f32 range as app/sampling.py clamps to f64's.
fn ranked_logit(i: u32, v: f32) -> f32 {
  if (is_nan(v)) { return NEG_INF; }
  if (step.penalty == 1.0 || (seen[i / 32u] & (1u << (i % 32u))) == 0u) { return v; }
  return clamp(select(v * step.inv_penalty, v * step.penalty, v < 0.0), -F32_MAX, F32_MAX);
}

fn mark_seen(id: u32) {
  if (id < V) { seen[id / 32u] |= 1u << (id % 32u); }
}

// The rest of out after the k candidates: M and S, the chosen token (`found`, or choose_token's
// from the candidates when the vocabulary's search chose none), where its draw and cut fell
// (`placed`: zeros for choose_token's choice); the chosen token becomes a seen one.
fn write_choice(k: u32, big_m: f32, big_s: f32, found: u32, placed: vec4<f32>) {
  out[1u + 2u * k] = bitcast<u32>(big_m);
  out[2u + 2u * k] = bitcast<u32>(big_s);
  var chosen = found;
  var fell = placed;
  if (found == NO_ID) {
    chosen = choose_token(k, big_s);
    fell = vec4<f32>(0.0, 0.0, 0.0, 0.0);
  }
  out[0] = chosen;
  for (var i = 0u; i < 4u; i++) { out[3u + 2u * k + i] = bitcast<u32>(fell[i]); }
  mark_seen(chosen);
}

fn temperature() -> f32 {
  if (step.temperature > 0.0) { return step.temperature; }
  return 1.0;
}

@compute @workgroup_size(256)
fn topk_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.x * TOPK_CHUNK;
  var m = NEG_INF;
  for (var j = 0u; j < TOPK_CHUNK / 256u; j++) {
    let i = lid + j * 256u;
    var v = NEG_INF;
    if (base + i < V) { v = ranked_logit(base + i, logits[base + i]); }
    vals[i] = v;
    m = max(m, v);
  }
  m = workgroup_max(lid, m);
  let temp = temperature();
  var s = 0.0;
  for (var j = 0u; j < TOPK_CHUNK / 256u; j++) {
    let v = vals[lid + j * 256u];
    if (v > NEG_INF) { s += exp((v - m) / temp); }
  }
  s = workgroup_sum(lid, s);
  let o = wid.x * STRIDE;
  let k = min(step.k, KMAX);
  for (var r = 0u; r < k; r++) {
    var bv = NEG_INF;
    var bp = NO_ID;
    for (var j = 0u; j < TOPK_CHUNK / 256u; j++) {
      let i = lid + j * 256u;
      if (better(vals[i], i, bv, bp)) { bv = vals[i]; bp = i; }
    }
    reduce_best(lid, bv, bp, bp);
    if (lid == 0u) {
      let p = best_pos[0];
      if (best_val[0] > NEG_INF) {
        part[o + r] = base + p;
        vals[p] = NEG_INF;
      } else {
        part[o + r] = NO_ID;
      }
      part[o + KMAX + r] = bitcast<u32>(best_val[0]);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    part[o + 2u * KMAX] = bitcast<u32>(m);
    part[o + 2u * KMAX + 1u] = bitcast<u32>(s);
  }
}

// topk_merge's candidates staged in workgroup memory when the chunks hold at most MERGE_STAGED of
// them (Llama's 63 chunks x 5: the binary searches otherwise walk dependent loads of `part`).
const MERGE_STAGED: u32 = 1024u;
var<workgroup> merge_id: array<u32, MERGE_STAGED>;
var<workgroup> merge_val: array<f32, MERGE_STAGED>;

// Candidate j of chunk g's list: (id, value), from workgroup memory when staged.
fn merge_candidate(g: u32, j: u32, k: u32, staged: bool) -> vec2<u32> {
  if (staged) { return vec2<u32>(merge_id[g * k + j], bitcast<u32>(merge_val[g * k + j])); }
  return vec2<u32>(part[g * STRIDE + j], part[g * STRIDE + KMAX + j]);
}

@compute @workgroup_size(256)
fn topk_merge(@builtin(local_invocation_index) lid: u32) {
  let k = min(step.k, KMAX);
  let n = GROUPS * k;
  let staged = n <= MERGE_STAGED;
  if (staged) {
    for (var e = lid; e < n; e += 256u) {
      let o = (e / k) * STRIDE + e % k;
      merge_id[e] = part[o];
      merge_val[e] = bitcast<f32>(part[o + KMAX]);
    }
  }
  workgroupBarrier();
  // Every chunk's list is sorted best first, so a candidate's place in the merged order is the
  // number of better candidates: its position in its own list plus, in each other list, how many
  // come before it (a binary search). No rounds, so the cost hardly grows with k (k rounds of a
  // workgroup-wide best cost 2.4 us each on an H200). Ids are distinct across chunks, so the
  // places are too.
  var valid = 0.0;
  for (var e = lid; e < n; e += 256u) {
    let g = e / k;
    let j = e % k;
    let own = merge_candidate(g, j, k, staged);
    let id = own.x;
    if (id == NO_ID) { continue; }  // past the chunk's real logits
    valid += 1.0;
    let v = bitcast<f32>(own.y);
    var place = j;
    for (var h = 0u; h < GROUPS && place < k; h++) {
      if (h == g) { continue; }
      var lo = 0u;
      var hi = k;
      while (lo < hi) {
        let mid = (lo + hi) / 2u;
        let c = merge_candidate(h, mid, k, staged);
        if (better(bitcast<f32>(c.y), c.x, v, id)) { lo = mid + 1u; } else { hi = mid; }
      }
      place += lo;
    }
    if (place < k) {
      out[1u + place] = id;
      out[1u + k + place] = bitcast<u32>(logits[id]);
    }
  }
  // Fewer than k real candidates: the places after them get no id and NEG_INF.
  let real = u32(workgroup_sum(lid, valid));
  for (var r = real + lid; r < k; r += 256u) {
    out[1u + r] = NO_ID;
    out[1u + k + r] = bitcast<u32>(NEG_INF);
  }
  // The chunks' maxima and sums, combined by the whole workgroup (not one invocation walking the
  // GROUPS chunks twice, a chain of dependent loads).
  let temp = temperature();
  var mg_max = NEG_INF;
  for (var g = lid; g < GROUPS; g += 256u) { mg_max = max(mg_max, bitcast<f32>(part[g * STRIDE + 2u * KMAX])); }
  let big_m = workgroup_max(lid, mg_max);
  var sg_sum = 0.0;
  for (var g = lid; g < GROUPS; g += 256u) {
    let mg = bitcast<f32>(part[g * STRIDE + 2u * KMAX]);
    if (mg > NEG_INF) { sg_sum += bitcast<f32>(part[g * STRIDE + 2u * KMAX + 1u]) * exp((mg - big_m) / temp); }
  }
  let big_s = workgroup_sum(lid, sg_sum);
  storageBarrier();
  workgroupBarrier();  // choose_token (invocation 0) reads what the others wrote
  var chosen = NO_ID;
  if (lid == 0u) {
    cut_before = 0.0;
    cut_weight = 0.0;
  }
  if (in_id_order()) { chosen = choose_in_id_order(lid, big_m, big_s); }
  if (nucleus_beyond_candidates(lid, k, big_s)) { chosen = choose_in_nucleus(lid, big_m, big_s); }
  if (lid == 0u) { write_choice(k, big_m, big_s, chosen, vec4<f32>(pick_before, pick_weight, cut_before, cut_weight)); }
}

// topk_serial: the same output as topk_partial + topk_merge from one workgroup of SERIAL_LANES
// invocations without a loop of barriers: one pass keeping the k best in a small sorted list and the
// max (a pass of its own for the max cost 0.85 of 3.5 ms), one for the sum, each lane over its own
// blocks of SERIAL_BLOCK logits (blocks lane, lane + SERIAL_LANES, ...); then lane 0 merges the
// lanes' lists and sums. Used on CPU adapters (SwiftShader), where the parallel version's hundreds of
// barriers cost far more than 2 x V steps;
// SwiftShader runs 4 invocations as one SIMD group, so four lanes cost about what one does (one
// invocation took 12.6 ms of a 117M f32 step over GPT-2's 50,257 logits).
// Dispatch (1, 1, 1).
const SERIAL_LANES: u32 = 4u;
const SERIAL_BLOCK: u32 = 1024u;  // the sum goes block by block, as topk_partial's chunks: one running
                                  // f32 sum over a large vocabulary drifts past 2e-5 of the total
var<workgroup> lane_m: array<f32, SERIAL_LANES>;
var<workgroup> lane_s: array<f32, SERIAL_LANES>;
var<workgroup> lane_v: array<f32, SERIAL_LANES * KMAX>;
var<workgroup> lane_i: array<u32, SERIAL_LANES * KMAX>;

@compute @workgroup_size(SERIAL_LANES)
fn topk_serial(@builtin(local_invocation_index) lane: u32) {
  let k = min(step.k, KMAX);
  let temp = temperature();
  let blocks = (V + SERIAL_BLOCK - 1u) / SERIAL_BLOCK;
  var m = NEG_INF;  // the lane's max, found by the pass that keeps its k best
  var top_v: array<f32, KMAX>;
  var top_i: array<u32, KMAX>;
  for (var r = 0u; r < KMAX; r++) { top_v[r] = NEG_INF; top_i[r] = NO_ID; }
  for (var b = lane; b < blocks; b += SERIAL_LANES) {
    for (var i = b * SERIAL_BLOCK; i < min(V, (b + 1u) * SERIAL_BLOCK); i++) {
      let v = ranked_logit(i, logits[i]);
      m = max(m, v);
      if (!better(v, i, top_v[k - 1u], top_i[k - 1u])) { continue; }
      var j = k - 1u;  // insertion: shift worse entries down (ids ascend, so ties keep the lower id first)
      while (j > 0u && better(v, i, top_v[j - 1u], top_i[j - 1u])) {
        top_v[j] = top_v[j - 1u];
        top_i[j] = top_i[j - 1u];
        j--;
      }
      top_v[j] = v;
      top_i[j] = i;
    }
  }
  lane_m[lane] = m;
  workgroupBarrier();
  m = max(max(lane_m[0], lane_m[1]), max(lane_m[2], lane_m[3]));
  var s = 0.0;
  for (var b = lane; b < blocks; b += SERIAL_LANES) {
    var block = 0.0;
    for (var i = b * SERIAL_BLOCK; i < min(V, (b + 1u) * SERIAL_BLOCK); i++) {
      let v = ranked_logit(i, logits[i]);
      if (v > NEG_INF) { block += exp((v - m) / temp); }
    }
    s += block;
  }
  for (var r = 0u; r < k; r++) {
    lane_v[lane * KMAX + r] = top_v[r];
    lane_i[lane * KMAX + r] = top_i[r];
  }
  lane_s[lane] = s;
  workgroupBarrier();
  if (lane != 0u) { return; }
  s = (lane_s[0] + lane_s[1]) + (lane_s[2] + lane_s[3]);
  var head = vec4<u32>(0u);  // each lane's next candidate
  for (var r = 0u; r < k; r++) {
    var best = 0u;
    for (var l = 1u; l < SERIAL_LANES; l++) {
      if (better(lane_v[l * KMAX + head[l]], lane_i[l * KMAX + head[l]], lane_v[best * KMAX + head[best]],
                 lane_i[best * KMAX + head[best]])) { best = l; }
    }
    let v = lane_v[best * KMAX + head[best]];
    let id = lane_i[best * KMAX + head[best]];
    head[best] += 1u;  // k candidates best lists of k each: no list runs out
    out[1u + r] = select(NO_ID, id, v > NEG_INF);  // as topk_partial: no id for -inf
    var value = NEG_INF;
    if (v > NEG_INF) { value = logits[id]; }
    out[1u + k + r] = bitcast<u32>(value);
  }
  var walk = Walked(NO_ID, 0.0, 0.0);
  if (in_id_order()) { walk = walk_in_id_order(m, s); }
  // no cut: a nucleus beyond the candidates is guessed from them here
  write_choice(k, m, s, walk.id, vec4<f32>(walk.before, walk.weight, 0.0, 0.0));
}
