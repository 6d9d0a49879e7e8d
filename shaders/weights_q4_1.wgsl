// weights_q4_1.wgsl — weight format snippet: ggml's Q4_1 blocks, exactly the bytes of a GGUF tensor
// (nothing is repacked on load). A row of K weights is K / 32 blocks of 20 bytes:
//   [d: f16][m: f16][16 bytes q]   byte j: element j in its low nibble, element j + 16 in its high
//                                  nibble; weight = nibble * d + m
// The table is bound as array<u32>; block g starts at word 5 g, so every block is word-aligned and
// read as its own 5 words (d and m in the first; vectors of 2 or 4 words would be aligned only for
// every second or fourth block). A segment (what a GPU lane takes) is one word of nibbles, 8 weights
// (packs s and s + 4), with the block's first word. A nibble n becomes a float by putting it in the
// mantissa of 2^23 and subtracting 2^23 (exact, no int-to-float conversion); the dot products compute
// d * sum(x * n) + m * sum(x). The block interface is described in weights_f32.wgsl.
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 5u;
const WPackWords: u32 = 2u;  // d and m's word, and the word of nibbles

fn w_first(g: u32) -> u32 { return 5u * g; }
fn w_block_word(g: u32, k: u32) -> u32 { return w_first(g) + min(k, 4u); }

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes, as floats.
fn q4_1_levels(q: u32, shift: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  return bitcast<vec4<f32>>(n | vec4<u32>(0x4b000000u)) - vec4<f32>(8388608.0);
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let d = f16_value(ws[0] & 0xffffu);
  let m = f16_value(ws[0] >> 16u);
  return array<vec4<f32>, 8>(q4_1_levels(ws[1], 0u) * d + m, q4_1_levels(ws[2], 0u) * d + m,
                             q4_1_levels(ws[3], 0u) * d + m, q4_1_levels(ws[4], 0u) * d + m,
                             q4_1_levels(ws[1], 4u) * d + m, q4_1_levels(ws[2], 4u) * d + m,
                             q4_1_levels(ws[3], 4u) * d + m, q4_1_levels(ws[4], 4u) * d + m);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  var s = xs[0] * q4_1_levels(ws[1], 0u) + xs[4] * q4_1_levels(ws[1], 4u);
  s += xs[1] * q4_1_levels(ws[2], 0u) + xs[5] * q4_1_levels(ws[2], 4u);
  s += xs[2] * q4_1_levels(ws[3], 0u) + xs[6] * q4_1_levels(ws[3], 4u);
  s += xs[3] * q4_1_levels(ws[4], 0u) + xs[7] * q4_1_levels(ws[4], 4u);
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
  return (xs[0] * q4_1_levels(ws[1], 0u) + xs[1] * q4_1_levels(ws[1], 4u)) * d + (xs[0] + xs[1]) * m;
}
