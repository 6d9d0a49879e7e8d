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
// nibble n becomes n - 8 by putting n in the mantissa of 2^23 and subtracting 2^23 + 8 (exact, and no
// int-to-float conversion); the dot products multiply by d once per block or segment. A segment (what
// a GPU lane takes) is one word of nibbles, 8 weights (packs s and s + 4). The block interface is
// described in weights_f32.wgsl.
// The word indices of this layout are common.wgsl's q4_0_group_word0 / q4_0_scale_word /
// q4_0_nibble_word, shared by every kernel that reads or writes it.
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 5u;  // the scale's word, the 4 words of nibbles
const WPackWords: u32 = 2u;   // the scale's word, the word of nibbles

fn w_block_word(g: u32, k: u32) -> u32 {
  if (k == 0u) { return q4_0_scale_word(q4_0_group_word0(g), g & 7u); }
  return q4_0_nibble_word(q4_0_group_word0(g), 4u * (g & 7u) + min(k, 4u) - 1u);
}

fn q4_0_scale(g: u32, word: u32) -> f32 { return f16_value(select(word & 0xffffu, word >> 16u, (g & 1u) != 0u)); }

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes, minus 8, as floats.
fn q4_0_levels(q: u32, shift: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  return bitcast<vec4<f32>>(n | vec4<u32>(0x4b000000u)) - vec4<f32>(8388616.0);
}

fn w_block(g: u32, ws: array<WPack, 20>) -> array<vec4<f32>, 8> {
  let d = q4_0_scale(g, ws[0]);
  return array<vec4<f32>, 8>(q4_0_levels(ws[1], 0u) * d, q4_0_levels(ws[2], 0u) * d, q4_0_levels(ws[3], 0u) * d,
                             q4_0_levels(ws[4], 0u) * d, q4_0_levels(ws[1], 4u) * d, q4_0_levels(ws[2], 4u) * d,
                             q4_0_levels(ws[3], 4u) * d, q4_0_levels(ws[4], 4u) * d);
}

fn w_dot(g: u32, ws: array<WPack, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  var s = xs[0] * q4_0_levels(ws[1], 0u) + xs[4] * q4_0_levels(ws[1], 4u);
  s += xs[1] * q4_0_levels(ws[2], 0u) + xs[5] * q4_0_levels(ws[2], 4u);
  s += xs[2] * q4_0_levels(ws[3], 0u) + xs[6] * q4_0_levels(ws[3], 4u);
  s += xs[3] * q4_0_levels(ws[4], 0u) + xs[7] * q4_0_levels(ws[4], 4u);
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
  return (xs[0] * q4_0_levels(ws[1], 0u) + xs[1] * q4_0_levels(ws[1], 4u)) * q4_0_scale(g, ws[0]);
}
