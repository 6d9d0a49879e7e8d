// choose.wgsl — the next token, chosen on the GPU as app/sampling.py's Sampler will choose it, so a
// chained decode step can be fed it before Python has read the step (part of topk.wgsl's module:
// its bindings, workgroup memory and candidates; see topk.wgsl's header for the layouts).
//   choose_token        from the k candidates in `out`: greedy, top-k with the k-th value's ties,
//                       top-p of the candidates' mass or (without top-k) of the whole vocabulary's
//   choose_in_id_order  sampling with neither top-k nor top-p: in id order over the vocabulary
//   walk_in_id_order    the same, by one invocation (topk_serial)
//   choose_in_nucleus   top-p alone whose nucleus is larger than the candidates: a search of the
//                       whole vocabulary (topk_merge only)
// The last two also say where their draw (and cut) fell, for Python's check.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py -k topk

// choose_token: the token app/sampling.py's Sampler will take from the k candidates in out (best
// first, ties to the lower id), in f32 where it uses f64: greedy when temperature <= 0; else the
// candidates kept by top-k (with the k-th value's ties) and top-p, weighted exp((v - v0) / T), and
// the first whose running sum exceeds draw x their total (Sampler._candidates_short + _draw). Top-p
// without top-k keeps what reaches top_p of the whole vocabulary's mass (S; the best candidate is M);
// a nucleus larger than the candidates is guessed from them. A draw near a boundary may round the
// other way than in f64: Python checks the choice and redoes a step fed with a different token.
fn candidate_value(k: u32, i: u32) -> f32 {
  let id = out[1u + i];
  if (id == NO_ID) { return NEG_INF; }
  return ranked_logit(id, bitcast<f32>(out[1u + k + i]));
}

fn candidate_weight(k: u32, i: u32, top: f32) -> f32 {
  return exp((candidate_value(k, i) - top) / step.temperature);
}

fn candidates_weight(k: u32, n: u32, top: f32) -> f32 {
  var total = 0.0;
  for (var i = 0u; i < n; i++) { total += candidate_weight(k, i, top); }
  return total;
}

// How many of the first n candidates it takes for their running weight to reach (`reach`: >=, as
// bisect_left for top-p) or exceed (>, as bisect_right for the draw) `goal`; 0 if none does.
fn candidates_to(k: u32, n: u32, top: f32, goal: f32, reach: bool) -> u32 {
  var running = 0.0;
  for (var i = 0u; i < n; i++) {
    running += candidate_weight(k, i, top);
    if (running > goal || (reach && running == goal)) { return i + 1u; }
  }
  return 0u;
}

fn choose_token(k: u32, big_s: f32) -> u32 {
  if (step.temperature <= 0.0) { return out[1u]; }
  var n = k;
  if (step.top_k > 0u && step.top_k < k) {
    let kth = candidate_value(k, step.top_k - 1u);
    n = step.top_k;
    while (n < k && candidate_value(k, n) == kth) { n++; }
  }
  let top = candidate_value(k, 0u);
  if (step.top_p < 1.0) {
    var mass = candidates_weight(k, n, top);
    if (step.top_k == 0u) { mass = big_s; }  // the whole vocabulary's, in units of exp((l - M) / T)
    let kept = candidates_to(k, n, top, step.top_p * mass, true);
    if (kept > 0u) { n = kept; }
  }
  let chosen = candidates_to(k, n, top, step.draw * candidates_weight(k, n, top), false);
  if (chosen > 0u) { return out[chosen]; }  // candidate chosen - 1
  for (var i = n; i > 0u; i--) {  // rounding at the very top: the last candidate with weight
    if (candidate_weight(k, i - 1u, top) > 0.0) { return out[i]; }
  }
  return out[1u];
}

// Top-p alone whose nucleus (top_p of the whole vocabulary's mass S) is larger than the k
// candidates: decided by invocation 0 from the candidates' weights, for the whole workgroup.
var<workgroup> pick_flag: u32;

fn nucleus_beyond_candidates(lid: u32, k: u32, big_s: f32) -> bool {
  if (!(step.temperature > 0.0 && step.top_k == 0u && step.top_p < 1.0)) { return false; }
  if (lid == 0u) {
    let top = candidate_value(k, 0u);
    pick_flag = select(0u, 1u, candidates_weight(k, k, top) < step.top_p * big_s);
  }
  return workgroupUniformLoad(&pick_flag) == 1u;
}

// The order of the ranked logits as u32 (larger logit, larger key); and back.
fn order_key(v: f32) -> u32 {
  if (v == 0.0) { return 0x80000000u; }  // -0 ties with 0, as in the sampler
  let b = bitcast<u32>(v);
  return select(b ^ 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key_value(key: u32) -> f32 {
  return bitcast<f32>(select(~key, key ^ 0x80000000u, (key & 0x80000000u) != 0u));
}

// The weight of the tokens whose ranked logit's key is at least `key`, summed by the workgroup.
fn mass_from(lid: u32, key: u32, big_m: f32) -> f32 {
  var own = 0.0;
  for (var i = lid; i < V; i += 256u) {
    let v = ranked_logit(i, logits[i]);
    if (v > NEG_INF && order_key(v) >= key) { own += exp((v - big_m) / step.temperature); }
  }
  return workgroup_sum(lid, own);
}

// The largest key whose mass_from reaches `goal` (exceeds it, when `exceed`), bit by bit.
fn key_reaching(lid: u32, goal: f32, exceed: bool, big_m: f32) -> u32 {
  var key = 0u;
  for (var bit = 32u; bit > 0u; bit--) {
    let next = key | (1u << (bit - 1u));
    let mass = mass_from(lid, next, big_m);
    if (mass > goal || (!exceed && mass == goal)) { key = next; }
  }
  return key;
}

// The n-th token (from 0, in id order) whose ranked logit's key is `key`, else the last of them.
fn nth_with_key(lid: u32, key: u32, n: u32) -> u32 {
  let per = (V + 255u) / 256u;
  let first = lid * per;
  let end = min(first + per, V);
  var own = 0u;
  for (var i = first; i < end; i++) {
    if (order_key(ranked_logit(i, logits[i])) == key) { own++; }
  }
  workgroup_inclusive_scan(lid, f32(own));
  let total = u32(best_val[255]);
  let want = min(n, max(total, 1u) - 1u);
  let before = u32(best_val[lid]) - own;
  if (before <= want && want < before + own) {
    var counted = before;
    for (var i = first; i < end; i++) {
      if (order_key(ranked_logit(i, logits[i])) == key) {
        if (counted == want) { pick_id = i; }
        counted++;
      }
    }
  }
  return workgroupUniformLoad(&pick_id);
}

// Top-p alone beyond the candidates, over the whole vocabulary in the sampler's order (logit
// descending, ties by id): the cut is the key where the mass from it reaches top_p x S, and how many
// of that key's tokens it takes; the draw falls at the key where the mass from it exceeds
// draw x the nucleus's mass, on one of that key's tokens. About 4 x 32 passes over the logits by
// one workgroup, only for such steps. Where the draw fell and where the cut fell (the weight before
// the nucleus's last token and its own) go to Python, which checks them (app/sampling.py).
var<workgroup> cut_before: f32;
var<workgroup> cut_weight: f32;

fn choose_in_nucleus(lid: u32, big_m: f32, big_s: f32) -> u32 {
  let temp = step.temperature;
  let goal = step.top_p * big_s;
  let cut = key_reaching(lid, goal, false, big_m);
  let cut_w = exp((key_value(cut) - big_m) / temp);
  let above = mass_from(lid, cut + 1u, big_m);
  let ties = max(1.0, ceil((goal - above) / cut_w));  // of the cut key's tokens, in id order
  let nucleus = above + ties * cut_w;
  let aim = step.draw * nucleus;
  var key = key_reaching(lid, aim, true, big_m);
  var w = exp((key_value(key) - big_m) / temp);
  let over = mass_from(lid, key + 1u, big_m);
  var n = floor(max(0.0, aim - over) / w);
  var start = over;
  if (key < cut || (key == cut && n >= ties)) {  // rounding past the cut: the nucleus's last token
    key = cut;
    w = cut_w;
    n = ties - 1.0;
    start = above;
  }
  if (lid == 0u) { pick_id = NO_ID; }
  let id = nth_with_key(lid, key, u32(n));
  if (lid == 0u) {
    pick_before = start + n * w;
    pick_weight = w;
    cut_before = above + (ties - 1.0) * cut_w;
    cut_weight = cut_w;
  }
  return id;
}

// best_val[i] = the sum of v over invocations 0..i (Hillis-Steele); callers in uniform control flow.
fn workgroup_inclusive_scan(lid: u32, v: f32) {
  best_val[lid] = v;
  workgroupBarrier();
  for (var d = 1u; d < 256u; d = d << 1u) {
    var add = 0.0;
    if (lid >= d) { add = best_val[lid - d]; }
    workgroupBarrier();
    best_val[lid] += add;
    workgroupBarrier();
  }
}

// Sampling without top-k or top-p draws in id order over the whole vocabulary (app/sampling.py).
fn in_id_order() -> bool {
  return step.temperature > 0.0 && step.top_k == 0u && step.top_p >= 1.0;
}

fn id_weight(i: u32, big_m: f32) -> f32 {
  if (i >= V) { return 0.0; }
  let v = ranked_logit(i, logits[i]);
  if (v <= NEG_INF) { return 0.0; }
  return exp((v - big_m) / step.temperature);
}

// The first token in id order whose running weight exceeds draw x S, by the whole workgroup: the
// chunk it falls in from the chunks' sums (invocation 0), then within that chunk a scan of 256
// runs of TOPK_CHUNK / 256 consecutive ids. The sums are summed in another order than topk_partial's,
// so a draw within rounding of a boundary may land on a neighbour; Python checks the choice.
var<workgroup> pick_chunk: u32;
var<workgroup> pick_goal: f32;
var<workgroup> pick_id: u32;
var<workgroup> pick_before: f32;  // the running weight before the chosen token, and its weight
var<workgroup> pick_weight: f32;
const RUN: u32 = TOPK_CHUNK / 256u;

fn choose_in_id_order(lid: u32, big_m: f32, big_s: f32) -> u32 {
  let temp = step.temperature;
  if (lid == 0u) {
    let goal = step.draw * big_s;
    var before = 0.0;
    var chunk = GROUPS;
    var last = 0u;  // the last chunk with weight: rounding past the total ends there
    for (var g = 0u; g < GROUPS; g++) {
      let mg = bitcast<f32>(part[g * STRIDE + 2u * KMAX]);
      if (mg <= NEG_INF) { continue; }
      let c = bitcast<f32>(part[g * STRIDE + 2u * KMAX + 1u]) * exp((mg - big_m) / temp);
      if (c > 0.0) { last = g; }
      if (before + c > goal) { chunk = g; break; }
      before += c;
    }
    pick_goal = goal - before;
    pick_before = before;
    pick_weight = 0.0;
    if (chunk == GROUPS) {
      chunk = last;
      pick_goal = 3.0e38;  // past every run: the chunk's last token with weight
    }
    pick_chunk = chunk;
    pick_id = NO_ID;
  }
  let chunk = workgroupUniformLoad(&pick_chunk);
  let first = chunk * TOPK_CHUNK + lid * RUN;
  var own = 0.0;
  for (var j = 0u; j < RUN; j++) { own += id_weight(first + j, big_m); }
  workgroup_inclusive_scan(lid, own);
  let goal = workgroupUniformLoad(&pick_goal);
  var running = best_val[lid] - own;
  if (running <= goal && best_val[lid] > goal) {
    var found = NO_ID;
    for (var j = 0u; j < RUN && found == NO_ID; j++) {
      let w = id_weight(first + j, big_m);
      if (running + w > goal) {
        found = first + j;
        pick_before += running;
        pick_weight = w;
      }
      running += w;
      if (w > 0.0) { pick_id = first + j; }  // rounding within the run: its last token with weight
    }
    if (found != NO_ID) { pick_id = found; }
  }
  if (lid == 255u && best_val[255] <= goal) {  // rounding at the very top: the chunk's last token with weight
    for (var i = TOPK_CHUNK; i > 0u; i--) {
      if (id_weight(chunk * TOPK_CHUNK + i - 1u, big_m) > 0.0) {
        pick_id = chunk * TOPK_CHUNK + i - 1u;
        break;
      }
    }
  }
  return workgroupUniformLoad(&pick_id);
}

// topk_serial's choice in id order: one invocation walks the vocabulary. The token, the weight
// before it and its own; a draw past every weight (rounding at the very top) takes the last token
// with weight, placed nowhere (zeros); NO_ID when no token weighs anything.
struct Walked {
  id: u32,
  before: f32,
  weight: f32,
}

fn walk_in_id_order(big_m: f32, big_s: f32) -> Walked {
  let goal = step.draw * big_s;
  var running = 0.0;
  for (var i = 0u; i < V; i++) {
    let w = id_weight(i, big_m);
    if (running + w > goal) { return Walked(i, running, w); }
    running += w;
  }
  for (var i = V; i > 0u; i--) {
    if (id_weight(i - 1u, big_m) > 0.0) { return Walked(i - 1u, 0.0, 0.0); }
  }
  return Walked(NO_ID, 0.0, 0.0);
}
