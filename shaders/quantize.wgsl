// quantize.wgsl — quantize-on-load: a matrix already on the GPU as f32, f16 or bf16 becomes ggml's Q8_0
// or Q4_0 blocks, byte for byte what ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref give (as the
// `gguf` package's gguf.quants.quantize computes them on x86), so a model quantized here equals the
// same model quantized by llama.cpp's tools. Q4_0 is written in the GPU's grouped layout
// (weights_q4_0.wgsl), and quantize_q4_0 also regroups a file's Q4_0 blocks (SRC 3), unchanged.
//   Q8_0  d = amax / 127, id = 1 / d (0 when d is 0), q[j] = roundf(x[j] * id)              (int8)
//   Q4_0  d = max / -8 (max: the first value of largest magnitude, with its sign), id as above,
//         q[j] = min(15, (int) (x[j] * id + 8.5))                                            (nibbles)
// The scale is stored as f16 (round to nearest even), the rest is f32 arithmetic. WGSL's f32 division
// is not correctly rounded (2.5 ULP), adapters may flush subnormals, and a multiply feeding an add
// may be fused into an FMA (Vulkan drivers do), each of which would change some blocks. So every step
// is integer arithmetic on the bits, exact by construction: the quotients amax / 127, max / 8 and
// 1 / d by long division, x * id by a 24 x 24-bit product, each rounded to nearest even as IEEE f32
// does (subnormal results included); roundf and the truncation of x * id + 8.5 from the product's
// bits; f32 -> f16 and f16 -> f32 by hand. What C leaves undefined is done as x86 does it (numpy and
// ggml built for x86 agree): an infinite or NaN x * id (1 / d overflows when d is subnormal) gives
// q = 0. NaN inputs: ggml's C and gguf-py disagree (C's comparisons skip a NaN, numpy's max and
// argmax return it); this follows gguf-py for the canonical NaN. An all-zero Q4_0 block gets d = +0
// when its first value is -0 (gguf-py; ggml's C always writes -0 there).
// Layout: src holds the matrix's values, row-major from element 0: f32 words, or two f16 / bf16 per
//   word (SRC), or (SRC 3) Q4_0 blocks of 18 bytes back to back. The values are `blocks` blocks of 32
//   (rows * K / 32: rows are whole blocks, so the matrix is a sequence of blocks); they become blocks
//   block0 .. block0 + blocks - 1 of dst (u32 words: Q8_0 blocks back to back, Q4_0 in groups of 8;
//   several matrices may share a buffer, e.g. q, k and v by rows), whose other bytes are kept.
//   chunk holds [block0, blocks]: the range is read at run time, not a constant, so one pipeline serves
//   every chunk and every matrix of a load (a pipeline took 150-185 ms to build on SwiftShader).
// Workgroup: 64 invocations; invocation t owns the pair of dst blocks 2 (block0 / 2 + t) and the next,
//   which start and end on word boundaries (68 bytes; Q4_0: a scale word and two 16-byte slots), so no
//   two invocations write one word; it
//   quantizes the blocks of the pair that are in range and merges the bytes of a word it shares with
//   a block outside the range (another matrix's, written by another dispatch). Dispatch (X, Y, 1)
//   with X * Y >= ceil(quant_pairs() / 64) workgroups, X <= 65535: app/weights.py quantize_workgroups.
// Entry points: quantize_q8_0, quantize_q4_0.
// Constants:
//   SRC: u32      dtype of src: 0 F32, 1 F16, 2 BF16, 3 Q4_0 (quantize_q4_0 only: regrouped as they are)
// Run alone (checked against the gguf package's quantizer): python3 -m pytest -q tests/test_kernels_quantize.py
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<storage, read> chunk: array<u32>;  // [block0, blocks] of this dispatch

const F32_INF: u32 = 0x7f800000u;
const F32_NAN: u32 = 0x7fc00000u;
const F32_ONE: u32 = 0x3f800000u;
fn chunk_block0() -> u32 { return chunk[0]; }  // index in dst of the first block written
fn chunk_blocks() -> u32 { return chunk[1]; }  // blocks of 32 values to quantize
fn quant_pair0() -> u32 { return chunk_block0() / 2u; }
fn quant_pairs() -> u32 { return (chunk_block0() + chunk_blocks() + 1u) / 2u - quant_pair0(); }

// ------------------------------------------------------------------------------ exact f32 in integers

// A positive finite nonzero f32 (bits) as sig * 2^(exp - 150), sig in [2^23, 2^24) (subnormals
// normalized, their exp <= 0).
struct Parts { sig: u32, exp: i32 }

fn parts(a: u32) -> Parts {
  let m = a & 0x7fffffu;
  if ((a >> 23u) == 0u) {
    let s = countLeadingZeros(m) - 8u;
    return Parts(m << s, 1 - i32(s));
  }
  return Parts(m | 0x800000u, i32(a >> 23u));
}

// v / 2^sh rounded to nearest, ties to even; `sticky`: nonzero bits below v were already dropped.
fn shr_rne(v: u32, sh: u32, sticky: bool) -> u32 {
  if (sh == 0u) { return v; }
  if (sh >= 32u) { return 0u; }  // v < 2^31 here: under half of the unit
  let q = v >> sh;
  let rem = v & ((1u << sh) - 1u);
  let half = 1u << (sh - 1u);
  return q + select(0u, 1u, rem > half || (rem == half && (sticky || (q & 1u) == 1u)));
}

// The f32 (bits, rounded to nearest even) of q * 2^(e - 152), q in [2^25, 2^26) (2 bits below the
// significand) and `sticky` bits below those.
fn round_f32(q: u32, e: i32, sticky: bool) -> u32 {
  if (e >= 255) { return F32_INF; }
  if (e >= 1) { return min((u32(e - 1) << 23u) + shr_rne(q, 2u, sticky), F32_INF); }
  return shr_rne(q, u32(3 - e), sticky);  // subnormal: whole units of 2^-149
}

// a / b for a >= 0 (finite, inf or NaN) and a finite b > 0, magnitudes as bits; correctly rounded.
fn div_rn(a: u32, b: u32) -> u32 {
  if (a >= F32_INF || a == 0u) { return a; }
  let pa = parts(a);
  let pb = parts(b);
  var r = pa.sig;
  var e = pa.exp - pb.exp + 127;
  if (r < pb.sig) { r = r << 1u; e -= 1; }
  var q = 0u;  // 26 quotient bits by long division: 1 + 23 + 2
  for (var i = 0u; i < 26u; i++) {
    q = q << 1u;
    if (r >= pb.sig) { r -= pb.sig; q |= 1u; }
    r = r << 1u;
  }
  return round_f32(q, e, r != 0u);
}

// a * b for magnitudes as bits (inf, NaN and zero as IEEE has them); correctly rounded.
fn mul_rn(a: u32, b: u32) -> u32 {
  if (a > F32_INF || b > F32_INF) { return F32_NAN; }
  if (a == F32_INF || b == F32_INF) { return select(F32_INF, F32_NAN, a == 0u || b == 0u); }
  if (a == 0u || b == 0u) { return 0u; }
  let pa = parts(a);
  let pb = parts(b);
  // The 48-bit product of the significands from 12-bit halves: hi * 2^24 + lo.
  let ah = pa.sig >> 12u;
  let al = pa.sig & 0xfffu;
  let bh = pb.sig >> 12u;
  let bl = pb.sig & 0xfffu;
  let mid = ah * bl + al * bh;
  var lo = al * bl + ((mid & 0xfffu) << 12u);
  let hi = ah * bh + (mid >> 12u) + (lo >> 24u);
  lo = lo & 0xffffffu;
  if (hi >= 0x800000u) {  // product in [2^47, 2^48)
    return round_f32((hi << 2u) | (lo >> 22u), pa.exp + pb.exp - 126, (lo & 0x3fffffu) != 0u);
  }
  return round_f32((hi << 3u) | (lo >> 21u), pa.exp + pb.exp - 127, (lo & 0x1fffffu) != 0u);
}

// f32 bits -> f16 bits, rounded to nearest even, overflow to inf, NaN keeping its top payload bits
// (numpy's npy_floatbits_to_halfbits, and F16C's conversion).
fn f16_bits(f: u32) -> u32 {
  let sign = (f >> 16u) & 0x8000u;
  let e = (f >> 23u) & 0xffu;
  let m = f & 0x7fffffu;
  if (e == 255u) {
    if (m == 0u) { return sign | 0x7c00u; }
    return sign | 0x7c00u | max(m >> 13u, 1u);
  }
  if (e >= 143u) { return sign | 0x7c00u; }  // 65536 and up
  if (e <= 112u) {  // an f16 subnormal (or zero): units of 2^-24
    if (e < 102u) { return sign; }  // under 2^-25 (half the smallest subnormal) or zero
    return sign | shr_rne(m | 0x800000u, 126u - e, false);
  }
  return sign | (((e - 112u) << 10u) + shr_rne(m, 13u, false));  // a carry moves into the exponent
}

// |roundf(p)| (half away from zero) for a magnitude p as bits; inf or NaN: 0. (|p| <= 127 (1 + 2^-21)
// here, so the result fits an int8.)
fn round_half_away(p: u32) -> u32 {
  if (p >= F32_INF) { return 0u; }
  let e = p >> 23u;
  if (e < 126u) { return 0u; }  // under 0.5
  let sig = (p & 0x7fffffu) | 0x800000u;
  let sh = 150u - min(e, 149u);  // p = sig / 2^sh, sh in 17..24
  return (sig >> sh) + ((sig >> (sh - 1u)) & 1u);
}

// min(15, trunc(RN(p + 8.5))) for p = (-1 if neg) * the magnitude `mag` (bits); inf or NaN: 0. The
// sum is formed exactly in units of 2^-26 (p's dropped bits kept as `sticky`) and rounded to f32's 24
// significant bits as the FPU would. (|p| <= 8 (1 + 2^-21) here: d's relative error is at most 2^-22
// whenever 1 / d is finite.)
fn q4_level(neg: bool, mag: u32) -> u32 {
  if (mag >= F32_INF) { return 0u; }
  let biased = mag >> 23u;
  if (biased > 130u) { return 0u; }  // |p| >= 16: unreachable
  let e = max(biased, 1u);
  let sig = select(mag & 0x7fffffu, (mag & 0x7fffffu) | 0x800000u, biased != 0u);
  var units = 0u;
  var sticky = false;
  if (e >= 124u) {
    units = sig << (e - 124u);
  } else if (124u - e < 32u) {
    units = sig >> (124u - e);
    sticky = (sig & ((1u << (124u - e)) - 1u)) != 0u;
  } else {
    sticky = sig != 0u;
  }
  let eight_and_half = 0x22000000u;  // 8.5 * 2^26
  var s = eight_and_half + units;
  if (neg) {
    let below = units + select(0u, 1u, sticky);  // -p's magnitude, rounded up with a sticky fraction
    if (below > eight_and_half) { return 0u; }  // p < -8.5: unreachable
    s = eight_and_half - below;  // sticky: the true sum is s + (a fraction under 1)
  }
  let top = 31u - countLeadingZeros(s);
  if (top > 23u) { s = shr_rne(s, top - 23u, sticky) << (top - 23u); }
  return min(s >> 26u, 15u);
}

// ------------------------------------------------------------------------------ the formats

// Element i of the matrix as f32 bits (f16 and bf16 widened exactly).
fn source_bits(i: u32) -> u32 {
  if (SRC == 0u) { return src[i]; }
  let h = (src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
  if (SRC == 2u) { return h << 16u; }
  return f16_to_f32_bits(h);
}

// One block's bytes, collected in the pair's words.
var<private> pair_words: array<u32, 17>;

fn put_byte(k: u32, v: u32) {
  pair_words[k >> 2u] |= (v & 0xffu) << ((k & 3u) * 8u);
}

fn put_f16(k: u32, h: u32) {
  put_byte(k, h);
  put_byte(k + 1u, h >> 8u);
}

// Block b of src as a Q8_0 block at byte k of the pair.
fn q8_0_block(b: u32, k: u32) {
  var xs: array<u32, 32>;
  var amax = 0u;
  for (var j = 0u; j < 32u; j++) {
    xs[j] = source_bits(b * 32u + j);
    amax = max(amax, xs[j] & 0x7fffffffu);  // as u32: the float order for non-NaN values
  }
  var d = amax;  // inf or NaN stay so (x / 127)
  if (amax < F32_INF) { d = div_rn(amax, 0x42fe0000u); }  // 127
  var id = 0u;  // d = 0, or d inf: 1 / d = 0
  if (d > F32_INF) { id = F32_NAN; }
  if (d != 0u && d < F32_INF) { id = div_rn(F32_ONE, d); }
  put_f16(k, f16_bits(d));
  for (var j = 0u; j < 32u; j++) {
    let q = round_half_away(mul_rn(xs[j] & 0x7fffffffu, id));
    put_byte(k + 2u + j, select(q, 0u - q, (xs[j] >> 31u) != 0u));
  }
}

// Block b of src as a Q4_0 block at byte k of the pair.
fn q4_0_block(b: u32, k: u32) {
  var xs: array<u32, 32>;
  xs[0] = source_bits(b * 32u);
  var max_bits = xs[0];  // the first value of largest magnitude, with its sign
  for (var j = 1u; j < 32u; j++) {
    xs[j] = source_bits(b * 32u + j);
    if ((xs[j] & 0x7fffffffu) > (max_bits & 0x7fffffffu)) { max_bits = xs[j]; }
  }
  let max_mag = max_bits & 0x7fffffffu;
  var d = max_bits;  // NaN / -8: the NaN itself
  if (max_mag <= F32_INF) { d = div_rn(max_mag, 0x41000000u) | (~max_bits & 0x80000000u); }  // / 8, sign flipped
  let d_mag = d & 0x7fffffffu;
  var id = 0u;  // d = 0: id = +0
  if (d_mag > F32_INF) { id = F32_NAN; }
  if (d_mag == F32_INF) { id = d & 0x80000000u; }  // 1 / inf = 0, with d's sign
  if (d_mag != 0u && d_mag < F32_INF) { id = div_rn(F32_ONE, d_mag) | (d & 0x80000000u); }
  put_f16(k, f16_bits(d));
  for (var j = 0u; j < 16u; j++) {
    let lo = xs[j];
    let hi = xs[j + 16u];
    let qlo = q4_level(((lo ^ id) >> 31u) != 0u, mul_rn(lo & 0x7fffffffu, id & 0x7fffffffu));
    let qhi = q4_level(((hi ^ id) >> 31u) != 0u, mul_rn(hi & 0x7fffffffu, id & 0x7fffffffu));
    put_byte(k + 2u + j, qlo | (qhi << 4u));
  }
}

// The pair's words to dst: bytes of blocks outside block0 .. block0 + blocks - 1 keep what dst has.
fn write_pair(pair: u32, block_bytes: u32) {
  let words = block_bytes / 2u;  // the pair's 2 * block_bytes bytes
  let first_byte = select(0u, block_bytes, 2u * pair < chunk_block0());
  let end_byte = select(2u * block_bytes, block_bytes, 2u * pair + 1u >= chunk_block0() + chunk_blocks());
  for (var i = 0u; i < words; i++) {
    let lo = max(first_byte, 4u * i);
    let hi = min(end_byte, 4u * i + 4u);
    if (lo >= hi) { continue; }  // none of this word is ours
    let w = pair * words + i;
    if (hi - lo == 4u) { dst[w] = pair_words[i]; continue; }
    let mask = (0xffffffffu >> (32u - 8u * (hi - lo))) << (8u * (lo - 4u * i));
    dst[w] = (dst[w] & ~mask) | (pair_words[i] & mask);
  }
}

fn pair_of(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * groups.x + wid.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn quantize_q8_0(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let t = pair_of(wid, groups, lid);
  if (t >= quant_pairs()) { return; }
  let pair = quant_pair0() + t;
  for (var h = 0u; h < 2u; h++) {
    let g = 2u * pair + h;
    if (g >= chunk_block0() && g < chunk_block0() + chunk_blocks()) { q8_0_block(g - chunk_block0(), 34u * h); }
  }
  write_pair(pair, 34u);
}

// Block b of src, already a Q4_0 block (SRC 3: a file's blocks, 18 bytes each from byte 0), at byte
// k of the pair.
fn q4_0_copy_block(b: u32, k: u32) {
  for (var j = 0u; j < 18u; j++) {
    let byte = 18u * b + j;
    put_byte(k + j, src[byte >> 2u] >> ((byte & 3u) * 8u));
  }
}

// The pair's two Q4_0 blocks (pair_words: GGUF's 36 bytes) to dst in the GPU's grouped layout
// (weights_q4_0.wgsl): their scales are one word of the group's scales, their nibbles two 16-byte
// slots. A block outside block0 .. block0 + blocks - 1 keeps what dst has (its half of the scale
// word, its nibbles).
fn write_pair_grouped(pair: u32) {
  let g = 2u * pair;
  let base = q4_0_group_word0(g);
  let first = g >= chunk_block0();
  let second = g + 1u < chunk_block0() + chunk_blocks();
  let scales = (pair_words[0] & 0xffffu) | (pair_words[4] & 0xffff0000u);
  let mask = select(0u, 0xffffu, first) | select(0u, 0xffff0000u, second);
  let at = q4_0_scale_word(base, g & 7u);
  dst[at] = (dst[at] & ~mask) | (scales & mask);
  let q0 = q4_0_nibble_word(base, 4u * (g & 7u));
  for (var i = 0u; i < 4u; i++) {
    if (first) { dst[q0 + i] = (pair_words[i] >> 16u) | (pair_words[i + 1u] << 16u); }
    if (second) { dst[q0 + 4u + i] = pair_words[5u + i]; }
  }
}

@compute @workgroup_size(64)
fn quantize_q4_0(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let t = pair_of(wid, groups, lid);
  if (t >= quant_pairs()) { return; }
  let pair = quant_pair0() + t;
  for (var h = 0u; h < 2u; h++) {
    let g = 2u * pair + h;
    if (g >= chunk_block0() && g < chunk_block0() + chunk_blocks()) {
      if (SRC == 3u) { q4_0_copy_block(g - chunk_block0(), 18u * h); } else { q4_0_block(g - chunk_block0(), 18u * h); }
    }
  }
  write_pair_grouped(pair);
}
