// common.wgsl — declarations shared by every kernel. WGSL has no #include, so app/wgsl.py builds
// each module as: weight-format snippet (weights_*.wgsl) + app/contract.py's prelude (the shared
// constants KMAX, CHAIN_ID, NO_ID, TOPK_CHUNK, ATT_BLOCK, NEG_INF, Q4_0_GROUP_WORDS and the Step struct: the per-run
// parameters, one small storage buffer written once per prefill chunk or decode step) + the
// kernel's constants + this file + the kernel file.

// An f16 (the low 16 bits of h) as f32, exactly, subnormals included (unpack2x16float may flush them):
// the block formats' scales and mins.
fn f16_value(h: u32) -> f32 {
  // The hardware's conversion (one instruction on a GPU, where the bit arithmetic below took a
  // dozen per block scale), and the subnormals by hand: an adapter may flush those to zero.
  let v = unpack2x16float(h & 0xffffu).x;
  let m = h & 0x3ffu;
  let sub = (bitcast<f32>(m | 0x4b000000u) - 8388608.0) * 5.9604644775390625e-8;  // m * 2^-24, exact
  return select(v, select(sub, -sub, (h & 0x8000u) != 0u), (h & 0x7c00u) == 0u);
}

// The GPU's Q4_0 layout (app/weights.py GROUPED_FORMATS, weights_q4_0.wgsl; quantize.wgsl writes it):
// blocks in groups of 8, a group Q4_0_GROUP_WORDS words from its first word `group` on: the 8 f16
// scales (block j of the group in word j / 2, the high half for an odd j), then the blocks' 4 words of
// nibbles each. The group's nibble word wd (0 .. 31) is word wd % 4 of block wd / 4.
fn q4_0_group_word0(g: u32) -> u32 { return Q4_0_GROUP_WORDS * (g >> 3u); }  // block g's group
fn q4_0_scale_word(group: u32, j: u32) -> u32 { return group + j / 2u; }
fn q4_0_nibble_word(group: u32, wd: u32) -> u32 { return group + 4u + wd; }

// The 4-bit formats' nibbles as floats, without shifting each one down: in nibble_halves(q) = (q, q,
// q >> 16, q >> 16) the low nibbles of a word's bytes 0-3 lie at bits 0, 8, 0, 8 and the high nibbles at
// 4, 12, 4, 12. A nibble n masked where it lies (bit p) and ORed into the mantissa of 2^(23 - p), whose
// last mantissa bit weighs 2^-p, reads as 2^(23 - p) + n exactly; subtracting NIBBLE_*_BASE (plus an
// offset, folded at shader creation) leaves n (minus the offset) exactly. One shift and a mask-and-or
// per nibble, where shifting each nibble down took a shift more per nibble: the same floats, the
// GEMVs' instruction count per weight being what bounds a 4-bit GEMV on a GPU (BENCH.md).
const NIBBLE_LOW_MASK = vec4<u32>(0xfu, 0xf00u, 0xfu, 0xf00u);
const NIBBLE_LOW_BITS = vec4<u32>(0x4b000000u, 0x47000000u, 0x4b000000u, 0x47000000u);   // 2^23, 2^15
const NIBBLE_LOW_BASE = vec4<f32>(8388608.0, 32768.0, 8388608.0, 32768.0);
const NIBBLE_HIGH_MASK = vec4<u32>(0xf0u, 0xf000u, 0xf0u, 0xf000u);
const NIBBLE_HIGH_BITS = vec4<u32>(0x49000000u, 0x45000000u, 0x49000000u, 0x45000000u);  // 2^19, 2^11
const NIBBLE_HIGH_BASE = vec4<f32>(524288.0, 2048.0, 524288.0, 2048.0);

fn nibble_halves(q: u32) -> vec4<u32> { return vec4<u32>(q, q, q >> 16u, q >> 16u); }
// 2^(23 - p) + n for the low (high) nibbles of bytes 0-3 of the word v came from.
fn low_nibbles_biased(v: vec4<u32>) -> vec4<f32> { return bitcast<vec4<f32>>((v & NIBBLE_LOW_MASK) | NIBBLE_LOW_BITS); }
fn high_nibbles_biased(v: vec4<u32>) -> vec4<f32> { return bitcast<vec4<f32>>((v & NIBBLE_HIGH_MASK) | NIBBLE_HIGH_BITS); }

// A 4-bit block's 4 words of levels (n_w: word w's low and high nibbles, as the formats' *_word_levels
// give them) dotted with its 32 inputs: xs[w] with the low nibbles, xs[w + 4] with the high ones, per
// component (Q4_0's and Q4_1's w_dot, before their scales).
fn nibble_words_dot(n0: array<vec4<f32>, 2>, n1: array<vec4<f32>, 2>, n2: array<vec4<f32>, 2>,
                    n3: array<vec4<f32>, 2>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  var s = xs[0] * n0[0] + xs[4] * n0[1];
  s += xs[1] * n1[0] + xs[5] * n1[1];
  s += xs[2] * n2[0] + xs[6] * n2[1];
  s += xs[3] * n3[0] + xs[7] * n3[1];
  return s;
}

// The same as f32 bits, with integer arithmetic only (subnormals normalized, inf and NaN payloads
// kept): the load kernels (quantize.wgsl, transpose.wgsl) widen f16 sources so.
fn f16_to_f32_bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 31u) { return sign | 0x7f800000u | (m << 13u); }
  if (e == 0u) {
    if (m == 0u) { return sign; }
    let s = countLeadingZeros(m) - 21u;  // brings the leading bit to bit 10
    return sign | ((113u - s) << 23u) | (((m << s) & 0x3ffu) << 13u);
  }
  return sign | ((e + 112u) << 23u) | (m << 13u);
}

// (d sc, dmin m) of sub-block j of a Q4_K / Q5_K super-block, from its header word (d, dmin as f16)
// and its 3 words of 6-bit scales and mins (ggml's get_scale_min_k4): one copy for both snippets.
fn k_scale_min(j: u32, head: u32, s0: u32, s1: u32, s2: u32) -> vec2<f32> {
  let sh = 8u * (j & 3u);
  let lo = (s0 >> sh) & 0xffu;    // scales[j % 4]
  let mid = (s1 >> sh) & 0xffu;   // scales[j % 4 + 4]
  let hi = (s2 >> sh) & 0xffu;    // scales[j % 4 + 8]
  var sc = lo & 63u;
  var m = mid & 63u;
  if (j >= 4u) {
    sc = (hi & 0xfu) | ((lo >> 6u) << 4u);
    m = (hi >> 4u) | ((mid >> 6u) << 4u);
  }
  return vec2<f32>(f16_value(head & 0xffffu) * f32(sc), f16_value(head >> 16u) * f32(m));
}

// The norms' arithmetic, written once for every kernel that normalizes (layer_norm.wgsl, rmsnorm.wgsl,
// rope.wgsl's q / k norms, and the norms fused into linear.wgsl and lm_head.wgsl): one expression in
// one order, so that a norm fused into a projection (a GPU) and the same norm as its own dispatch (a
// CPU adapter) compute the same bits from the same statistics.
fn norm_rstd(sum_of_squares: f32, n: u32, eps: f32) -> f32 { return inverseSqrt(sum_of_squares / f32(n) + eps); }
fn layer_norm4(v: vec4<f32>, mean: f32, rstd: f32, gamma: vec4<f32>, beta: vec4<f32>) -> vec4<f32> {
  return (v - mean) * rstd * gamma + beta;
}
fn rms_norm4(v: vec4<f32>, rstd: f32, weight: vec4<f32>) -> vec4<f32> { return (v * rstd) * weight; }

// The rows r0 .. r0 + 3 and r0 + 4 .. r0 + 7 of a CPU adapter's invocation (linear.wgsl
// gemv_rows_cpu, lm_head.wgsl head_rows_cpu), each at most `last`: a row past the end is computed
// from the last one and not stored.
fn cpu_tile_rows(r0: u32, last: u32) -> array<vec4<u32>, 2> {
  return array<vec4<u32>, 2>(min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)),
                             min(vec4<u32>(r0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(last)));
}

// NaN test on the bits: WGSL lets implementations assume no NaNs, and SwiftShader folds v != v.
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }

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
