// weights_q5_0.wgsl — weight format snippet: ggml's Q5_0 blocks, exactly the bytes of a GGUF tensor
// (nothing is repacked on load). A row of K weights is K / 32 blocks of 22 bytes:
//   [d: f16][qh: 4 bytes][16 bytes qs]   byte j of qs: element j in its low nibble, element j + 16 in
//                                        its high nibble; bit e of qh (little-endian u32) is element
//                                        e's fifth bit; weight = (nibble + 16 bit - 16) * d
// llama.cpp's Q4_K_M / Q5_K_M store a matrix whose rows are not whole super-blocks of 256 (hidden
// sizes 576, 896, ...) as Q5_0 (Q5_1) instead of Q4_K (Q5_K). The table is bound as array<u32>; block
// g (of the whole table) starts at byte 22 g: at the start of word 11 g / 2 for an even g, two bytes
// into it for an odd g, so the 4 bytes of qh and each 4 bytes of qs start two bytes into a word for
// an even g and on a word for an odd one (as weights_q4_0.wgsl's nibbles). A whole block (w_block,
// w_dot: a CPU adapter's invocation) is read as the 6 words holding it (24 bytes for its 22: a
// tensor's last block may read 2 bytes past its end, inside the 4-byte word the buffer is rounded up
// to), qh and the 4 words of qs realigned in registers with one funnel shift each (none for an odd
// g). A segment (what a GPU lane takes) is one word of qs, 8 weights (packs s and s + 4): the scale's
// word and the words its qs and qh straddle. A 5-bit level v becomes v - 16 by putting it in the
// mantissa of 2^23 and subtracting 2^23 + 16 (exact, no int-to-float conversion); the dot products
// multiply by d once per block or segment. The block interface is described in weights_f32.wgsl.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_quant.py -k Q5_0
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 6u;
const WPackWords: u32 = 5u;  // the scale's word, the two words of qs and the two of qh a segment straddles

fn w_first(g: u32) -> u32 { return (11u * g) >> 1u; }
fn w_block_word(g: u32, k: u32) -> u32 { return w_first(g) + min(k, 5u); }

// The 4 bytes starting 2 bytes into `lo` (a block at an even g), or `hi` itself (an odd g).
fn q_realign(odd: bool, lo: u32, hi: u32) -> u32 { return select((lo >> 16u) | (hi << 16u), hi, odd); }

fn q5_0_scale(g: u32, w0: u32) -> f32 { return f16_value(select(w0 & 0xffffu, w0 >> 16u, (g & 1u) != 0u)); }

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes with bits e0 .. e0 + 3 of qh on top,
// minus 16, as floats.
fn q5_0_levels(q: u32, h: u32, shift: u32, e0: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  let hb = ((vec4<u32>(h >> e0) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
  return bitcast<vec4<f32>>(n | hb | vec4<u32>(0x4b000000u)) - vec4<f32>(8388624.0);
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let odd = (g & 1u) != 0u;
  let d = q5_0_scale(g, ws[0]);
  let h = q_realign(odd, ws[0], ws[1]);
  let q0 = q_realign(odd, ws[1], ws[2]);
  let q1 = q_realign(odd, ws[2], ws[3]);
  let q2 = q_realign(odd, ws[3], ws[4]);
  let q3 = q_realign(odd, ws[4], ws[5]);
  return array<vec4<f32>, 8>(q5_0_levels(q0, h, 0u, 0u) * d, q5_0_levels(q1, h, 0u, 4u) * d,
                             q5_0_levels(q2, h, 0u, 8u) * d, q5_0_levels(q3, h, 0u, 12u) * d,
                             q5_0_levels(q0, h, 4u, 16u) * d, q5_0_levels(q1, h, 4u, 20u) * d,
                             q5_0_levels(q2, h, 4u, 24u) * d, q5_0_levels(q3, h, 4u, 28u) * d);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let odd = (g & 1u) != 0u;
  let h = q_realign(odd, ws[0], ws[1]);
  let q0 = q_realign(odd, ws[1], ws[2]);
  let q1 = q_realign(odd, ws[2], ws[3]);
  let q2 = q_realign(odd, ws[3], ws[4]);
  let q3 = q_realign(odd, ws[4], ws[5]);
  var s = xs[0] * q5_0_levels(q0, h, 0u, 0u) + xs[4] * q5_0_levels(q0, h, 4u, 16u);
  s += xs[1] * q5_0_levels(q1, h, 0u, 4u) + xs[5] * q5_0_levels(q1, h, 4u, 20u);
  s += xs[2] * q5_0_levels(q2, h, 0u, 8u) + xs[6] * q5_0_levels(q2, h, 4u, 24u);
  s += xs[3] * q5_0_levels(q3, h, 0u, 12u) + xs[7] * q5_0_levels(q3, h, 4u, 28u);
  return s * q5_0_scale(g, ws[0]);
}

// Pack i (4 weights) is the low (i < 4) or high nibbles of the block's word of qs i % 4, with bits
// 4 i .. 4 i + 3 of qh (i < 4; 16 + 4 (i % 4) .. for i >= 4).
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 {
  if (j == 0u) { return w_first(g); }
  let byte = select(22u * g + 2u, 22u * g + 6u + 4u * (i % 4u), j < 3u);  // qh, or the word of qs
  return (byte >> 2u) + select(0u, 1u, (j == 2u || j == 4u) && (byte & 2u) != 0u);
}

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  let odd = (g & 1u) != 0u;
  let q = q_realign(odd, ws[1], ws[2]);
  let h = q_realign(odd, ws[3], ws[4]);
  return q5_0_levels(q, h, (i / 4u) * 4u, 4u * (i % 4u) + 16u * (i / 4u)) * q5_0_scale(g, ws[0]);
}
const WSegPacks: u32 = 2u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s + 4u * j; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let odd = (g & 1u) != 0u;
  let q = q_realign(odd, ws[1], ws[2]);
  let h = q_realign(odd, ws[3], ws[4]);
  return (xs[0] * q5_0_levels(q, h, 0u, 4u * s) + xs[1] * q5_0_levels(q, h, 4u, 4u * s + 16u)) * q5_0_scale(g, ws[0]);
}
