// weights_q5_1.wgsl — weight format snippet: ggml's Q5_1 blocks, exactly the bytes of a GGUF tensor
// (nothing is repacked on load). A row of K weights is K / 32 blocks of 24 bytes:
//   [d: f16][m: f16][qh: 4 bytes][16 bytes qs]   byte j of qs: element j in its low nibble, element
//                                                j + 16 in its high nibble; bit e of qh is element e's
//                                                fifth bit; weight = (nibble + 16 bit) * d + m
// llama.cpp's Q5_K_M stores a matrix whose rows are not whole super-blocks of 256 as Q5_1 instead of
// Q5_K. The table is bound as array<u32>; block g starts at word 6 g, so every block is word-aligned
// and read as its own 6 words (d and m, qh, 4 words of qs). A segment (what a GPU lane takes) is one
// word of qs, 8 weights (packs s and s + 4), with the block's first word and qh. A 5-bit level
// becomes a float by putting it in the mantissa of 2^23 and subtracting 2^23 (exact, no int-to-float
// conversion); the dot products compute d * sum(x * v) + m * sum(x). The block interface is
// described in weights_f32.wgsl.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_quant.py -k Q5_1
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 6u;
const WPackWords: u32 = 3u;  // d and m's word, the word of qs, qh

fn w_first(g: u32) -> u32 { return 6u * g; }
fn w_block_word(g: u32, k: u32) -> u32 { return w_first(g) + min(k, 5u); }

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes with bits e0 .. e0 + 3 of qh on top,
// as floats.
fn q5_1_levels(q: u32, h: u32, shift: u32, e0: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  let hb = ((vec4<u32>(h >> e0) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
  return bitcast<vec4<f32>>(n | hb | vec4<u32>(0x4b000000u)) - vec4<f32>(8388608.0);
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let d = f16_value(ws[0] & 0xffffu);
  let m = f16_value(ws[0] >> 16u);
  let h = ws[1];
  return array<vec4<f32>, 8>(q5_1_levels(ws[2], h, 0u, 0u) * d + m, q5_1_levels(ws[3], h, 0u, 4u) * d + m,
                             q5_1_levels(ws[4], h, 0u, 8u) * d + m, q5_1_levels(ws[5], h, 0u, 12u) * d + m,
                             q5_1_levels(ws[2], h, 4u, 16u) * d + m, q5_1_levels(ws[3], h, 4u, 20u) * d + m,
                             q5_1_levels(ws[4], h, 4u, 24u) * d + m, q5_1_levels(ws[5], h, 4u, 28u) * d + m);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let h = ws[1];
  var s = xs[0] * q5_1_levels(ws[2], h, 0u, 0u) + xs[4] * q5_1_levels(ws[2], h, 4u, 16u);
  s += xs[1] * q5_1_levels(ws[3], h, 0u, 4u) + xs[5] * q5_1_levels(ws[3], h, 4u, 20u);
  s += xs[2] * q5_1_levels(ws[4], h, 0u, 8u) + xs[6] * q5_1_levels(ws[4], h, 4u, 24u);
  s += xs[3] * q5_1_levels(ws[5], h, 0u, 12u) + xs[7] * q5_1_levels(ws[5], h, 4u, 28u);
  let sx = (xs[0] + xs[1]) + (xs[2] + xs[3]) + ((xs[4] + xs[5]) + (xs[6] + xs[7]));
  return s * f16_value(ws[0] & 0xffffu) + sx * f16_value(ws[0] >> 16u);
}

// Pack i (4 weights) is the low (i < 4) or high nibbles of the block's word of qs i % 4.
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 {
  return 6u * g + select(select(1u, 2u + i % 4u, j == 1u), 0u, j == 0u);
}

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  let v = q5_1_levels(ws[1], ws[2], (i / 4u) * 4u, 4u * (i % 4u) + 16u * (i / 4u));
  return v * f16_value(ws[0] & 0xffffu) + f16_value(ws[0] >> 16u);
}
const WSegPacks: u32 = 2u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s + 4u * j; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let d = f16_value(ws[0] & 0xffffu);
  let m = f16_value(ws[0] >> 16u);
  let lo = q5_1_levels(ws[1], ws[2], 0u, 4u * s);
  let hi = q5_1_levels(ws[1], ws[2], 4u, 4u * s + 16u);
  return (xs[0] * lo + xs[1] * hi) * d + (xs[0] + xs[1]) * m;
}
