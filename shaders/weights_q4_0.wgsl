// weights_q4_0.wgsl — weight format snippet: ggml's Q4_0 blocks, regrouped on load (app/weights.py
// GROUPED_FORMATS; shaders/quantize.wgsl writes them so). A block is 32 weights: an f16 scale d and
// 16 bytes q, byte j holding element j in its low nibble and element j + 16 in its high nibble;
// weight = (nibble - 8) * d. On the GPU the blocks of a table go in groups of 8, each 144 bytes = 9
// WPacks of 16 bytes:
//   WPack 0        the 8 blocks' scales, f16 each (block 8 t + j: word j / 2, high half for an odd j)
//   WPack 1 + j    block 8 t + j's 16 bytes of nibbles (word i: bytes 4 i .. 4 i + 3 of q)
// so block g's scale and nibbles are single aligned loads (in GGUF's 18-byte blocks they straddle
// words at 2-byte offsets, and realigning them in registers cost a GPU lane more than its loads). A
// nibble n becomes n - 8 by putting n in the mantissa of 2^23 and subtracting 2^23 + 8 (exact, and no
// int-to-float conversion); the dot products multiply by d once per block or segment. A segment (what
// a GPU lane takes) is one word of nibbles, 8 weights (packs s and s + 4). The block interface is
// described in weights_f32.wgsl.
alias WPack = vec4<u32>;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 2u;  // the group's scales, the block's nibbles
const WPackWords: u32 = 2u;

fn q4_0_scales(g: u32) -> u32 { return 9u * (g >> 3u); }
fn w_block_word(g: u32, k: u32) -> u32 { return q4_0_scales(g) + select(1u + (g & 7u), 0u, k == 0u); }

fn q4_0_scale(g: u32, scales: vec4<u32>) -> f32 {
  let word = scales[(g >> 1u) & 3u];
  return f16_value(select(word & 0xffffu, word >> 16u, (g & 1u) != 0u));
}

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes, minus 8, as floats.
fn q4_0_levels(q: u32, shift: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  return bitcast<vec4<f32>>(n | vec4<u32>(0x4b000000u)) - vec4<f32>(8388616.0);
}

fn w_block(g: u32, ws: array<WPack, 20>) -> array<vec4<f32>, 8> {
  let d = q4_0_scale(g, ws[0]);
  let q = ws[1];
  return array<vec4<f32>, 8>(q4_0_levels(q.x, 0u) * d, q4_0_levels(q.y, 0u) * d, q4_0_levels(q.z, 0u) * d,
                             q4_0_levels(q.w, 0u) * d, q4_0_levels(q.x, 4u) * d, q4_0_levels(q.y, 4u) * d,
                             q4_0_levels(q.z, 4u) * d, q4_0_levels(q.w, 4u) * d);
}

fn w_dot(g: u32, ws: array<WPack, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let q = ws[1];
  var s = xs[0] * q4_0_levels(q.x, 0u) + xs[4] * q4_0_levels(q.x, 4u);
  s += xs[1] * q4_0_levels(q.y, 0u) + xs[5] * q4_0_levels(q.y, 4u);
  s += xs[2] * q4_0_levels(q.z, 0u) + xs[6] * q4_0_levels(q.z, 4u);
  s += xs[3] * q4_0_levels(q.w, 0u) + xs[7] * q4_0_levels(q.w, 4u);
  return s * q4_0_scale(g, ws[0]);
}

// Pack i (4 weights) is the low (i < 4) or high nibbles of the block's word of nibbles i % 4.
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return w_block_word(g, j); }

fn w_unpack(g: u32, i: u32, ws: array<WPack, 6>) -> vec4<f32> {
  return q4_0_levels(ws[1][i % 4u], (i / 4u) * 4u) * q4_0_scale(g, ws[0]);
}
const WSegPacks: u32 = 2u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s + 4u * j; }
fn w_seg_dot(g: u32, s: u32, ws: array<WPack, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let q = ws[1][s];
  return (xs[0] * q4_0_levels(q, 0u) + xs[1] * q4_0_levels(q, 4u)) * q4_0_scale(g, ws[0]);
}
