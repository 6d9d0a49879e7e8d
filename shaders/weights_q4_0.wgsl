// weights_q4_0.wgsl — weight format snippet: ggml's Q4_0 blocks, regrouped on load (app/weights.py
// GROUPED_FORMATS; shaders/quantize.wgsl writes them so). A block is 32 weights: an f16 scale d and
// 16 bytes q, byte j holding element j in its low nibble and element j + 16 in its high nibble;
// weight = (nibble - 8) * d. On the GPU the blocks of a table go in groups of 8, each 144 bytes = 36
// words (WPacks):
//   words 0-3           the 8 blocks' scales, f16 each (block 8 t + j: word j / 2, high half for an odd j)
//   words 4 + 4 j + i   block 8 t + j's nibbles, bytes 4 i .. 4 i + 3 of q
// so block g's scale and each word of its nibbles are single aligned loads (in GGUF's 18-byte blocks
// they straddle words at 2-byte offsets, and realigning them cost a GPU lane a third load and a
// funnel shift per word). Words, not 16-byte loads: a GPU's load unit serves a 16-byte load per lane
// in four times the passes of a word, and a segment needs one word of each (BENCH.md). A
// nibble n becomes n - 8 in the mantissa of a power of two, where it lies, minus that power and 8 (exact,
// no int-to-float conversion: common.wgsl nibble_halves); the dot products multiply by d once per block
// or segment. A segment (what
// a GPU lane takes) is one word of nibbles, 8 weights (packs s and s + 4). The block interface is
// described in weights_f32.wgsl.
// The word indices of this layout are common.wgsl's q4_0_group_word0 / q4_0_scale_word /
// q4_0_nibble_word, shared by every kernel that reads or writes it.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_quant.py tests/test_kernels_gemv_variants.py -k Q4_0
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 5u;  // the scale's word, the 4 words of nibbles
const WPackWords: u32 = 2u;   // the scale's word, the word of nibbles

fn w_block_word(g: u32, k: u32) -> u32 {
  if (k == 0u) { return q4_0_scale_word(q4_0_group_word0(g), g & 7u); }
  return q4_0_nibble_word(q4_0_group_word0(g), 4u * (g & 7u) + min(k, 4u) - 1u);
}

fn q4_0_scale(g: u32, word: u32) -> f32 { return f16_value(select(word & 0xffffu, word >> 16u, (g & 1u) != 0u)); }

// A word's nibbles minus 8, as floats: those of bytes 0-3 at bit `shift` (0: low, 4: high), and both.
fn q4_0_levels(q: u32, shift: u32) -> vec4<f32> {
  let v = nibble_halves(q) >> vec4<u32>(shift);
  return low_nibbles_biased(v) - (NIBBLE_LOW_BASE + 8.0);
}
fn q4_0_word_levels(q: u32) -> array<vec4<f32>, 2> {
  let v = nibble_halves(q);
  return array<vec4<f32>, 2>(low_nibbles_biased(v) - (NIBBLE_LOW_BASE + 8.0), high_nibbles_biased(v) - (NIBBLE_HIGH_BASE + 8.0));
}

fn w_block(g: u32, ws: array<WPack, 20>) -> array<vec4<f32>, 8> {
  let d = q4_0_scale(g, ws[0]);
  let n0 = q4_0_word_levels(ws[1]);
  let n1 = q4_0_word_levels(ws[2]);
  let n2 = q4_0_word_levels(ws[3]);
  let n3 = q4_0_word_levels(ws[4]);
  return array<vec4<f32>, 8>(n0[0] * d, n1[0] * d, n2[0] * d, n3[0] * d, n0[1] * d, n1[1] * d, n2[1] * d, n3[1] * d);
}

fn w_dot(g: u32, ws: array<WPack, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let s = nibble_words_dot(q4_0_word_levels(ws[1]), q4_0_word_levels(ws[2]), q4_0_word_levels(ws[3]),
                           q4_0_word_levels(ws[4]), xs);
  return s * q4_0_scale(g, ws[0]);
}

// Pack i (4 weights) is the low (i < 4) or high nibbles of the block's word of nibbles i % 4.
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return w_block_word(g, select(0u, 1u + i % 4u, j > 0u)); }

fn w_unpack(g: u32, i: u32, ws: array<WPack, 6>) -> vec4<f32> {
  return q4_0_levels(ws[1], (i / 4u) * 4u) * q4_0_scale(g, ws[0]);
}
const WSegPacks: u32 = 2u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s + 4u * j; }
fn w_seg_dot(g: u32, s: u32, ws: array<WPack, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let n = q4_0_word_levels(ws[1]);
  return (xs[0] * n[0] + xs[1] * n[1]) * q4_0_scale(g, ws[0]);
}
