// weights_q4_1.wgsl — weight format snippet: ggml's Q4_1 blocks, exactly the bytes of a GGUF tensor
// (nothing is repacked on load). A row of K weights is K / 32 blocks of 20 bytes:
//   [d: f16][m: f16][16 bytes q]   byte j: element j in its low nibble, element j + 16 in its high
//                                  nibble; weight = nibble * d + m
// The table is bound as array<u32>; block g starts at word 5 g, so every block is word-aligned and
// read as its own 5 words (d and m in the first; vectors of 2 or 4 words would be aligned only for
// every second or fourth block). A segment (what a GPU lane takes) is one word of nibbles, 8 weights
// (packs s and s + 4), with the block's first word. A nibble n becomes a float in the mantissa of a
// power of two, where it lies, minus that power (exact, no int-to-float conversion: common.wgsl
// nibble_halves); the dot products compute
// d * sum(x * n) + m * sum(x). The block interface is described in weights_f32.wgsl.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_quant.py tests/test_kernels_gemv_variants.py -k Q4_1
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 5u;
const WPackWords: u32 = 2u;  // d and m's word, and the word of nibbles

fn w_first(g: u32) -> u32 { return 5u * g; }
fn w_block_word(g: u32, k: u32) -> u32 { return w_first(g) + min(k, 4u); }

// A word's nibbles as floats: those of bytes 0-3 at bit `shift` (0: low, 4: high), and both.
fn q4_1_levels(q: u32, shift: u32) -> vec4<f32> {
  return low_nibbles_biased(nibble_halves(q) >> vec4<u32>(shift)) - NIBBLE_LOW_BASE;
}
fn q4_1_word_levels(q: u32) -> array<vec4<f32>, 2> {
  let v = nibble_halves(q);
  return array<vec4<f32>, 2>(low_nibbles_biased(v) - NIBBLE_LOW_BASE, high_nibbles_biased(v) - NIBBLE_HIGH_BASE);
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let d = f16_value(ws[0] & 0xffffu);
  let m = f16_value(ws[0] >> 16u);
  let n0 = q4_1_word_levels(ws[1]);
  let n1 = q4_1_word_levels(ws[2]);
  let n2 = q4_1_word_levels(ws[3]);
  let n3 = q4_1_word_levels(ws[4]);
  return array<vec4<f32>, 8>(n0[0] * d + m, n1[0] * d + m, n2[0] * d + m, n3[0] * d + m,
                             n0[1] * d + m, n1[1] * d + m, n2[1] * d + m, n3[1] * d + m);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let s = nibble_words_dot(q4_1_word_levels(ws[1]), q4_1_word_levels(ws[2]), q4_1_word_levels(ws[3]),
                           q4_1_word_levels(ws[4]), xs);
  let sx = (xs[0] + xs[1]) + (xs[2] + xs[3]) + ((xs[4] + xs[5]) + (xs[6] + xs[7]));
  return s * f16_value(ws[0] & 0xffffu) + sx * f16_value(ws[0] >> 16u);
}

// Pack i (4 weights) is the low (i < 4) or high nibbles of the block's word of nibbles i % 4.
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return 5u * g + select(0u, 1u + i % 4u, j == 1u); }

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  return q4_1_levels(ws[1], (i / 4u) * 4u) * f16_value(ws[0] & 0xffffu) + f16_value(ws[0] >> 16u);
}
const WSegPacks: u32 = 2u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s + 4u * j; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let d = f16_value(ws[0] & 0xffffu);
  let m = f16_value(ws[0] >> 16u);
  let n = q4_1_word_levels(ws[1]);
  return (xs[0] * n[0] + xs[1] * n[1]) * d + (xs[0] + xs[1]) * m;
}
