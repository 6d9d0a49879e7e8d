// weights_q6_k.wgsl — weight format snippet: ggml's Q6_K super-blocks, exactly the bytes of a GGUF
// tensor (nothing is repacked on load). A row of K weights is K / 256 super-blocks of 210 bytes:
//   [ql: 128 bytes][qh: 64 bytes][scales: 16 x int8][d: f16]
// In half h (weights 128 h ..) sub-block j = 4 h + q (q < 4) has weights l < 32: a 6-bit value
// v = (ql[64 h + 32 (q % 2) + l] >> 4 (q / 2)) & 15 | ((qh[32 h + l] >> 2 q) & 3) << 4, and the weight
// is d scales[8 h + 2 q + l / 16] (v - 32), d scales rounded to f32 as ggml's dequantize_row_q6_K.
// A block of the interface (weights_f32.wgsl) is one sub-block: g = 8 super-block + j. Super-block S
// starts at byte 210 S: word-aligned for an even S, 2 bytes into a word for an odd S, and so is
// every 4-byte group of ql and qh. The table is bound as array<u32>; a whole block (w_block, w_dot: a
// CPU adapter's invocation) is read as 20 words: d's word, the word holding its two scales, and the
// 9 words holding its 32 bytes of ql and of qh each (realigned in registers with one funnel shift per
// word for an odd S; the 9th is unused for an even S). A segment (what a GPU lane takes) is one pack:
// d's and the scales' words and the two words each its 4 bytes of ql and of qh may straddle. A
// 6-bit value becomes v - 32 by putting it in the mantissa of 2^23 and subtracting 2^23 + 32 (exact,
// no int-to-float conversion); the dot products multiply by d scale once per 16 weights.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_quant.py -k Q6_K
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 20u;
const WPackWords: u32 = 6u;  // d, the scales, ql's and qh's two words

// Byte offsets of block g's fields in the table (super-block g / 8, sub-block j = g % 8 = 4 h + q).
fn q6_k_base(g: u32) -> u32 { return 210u * (g >> 3u); }
fn q6_k_ql(g: u32) -> u32 { return q6_k_base(g) + 64u * ((g >> 2u) & 1u) + 32u * (g & 1u); }
fn q6_k_qh(g: u32) -> u32 { return q6_k_base(g) + 128u + 32u * ((g >> 2u) & 1u); }
fn q6_k_scales(g: u32) -> u32 { return q6_k_base(g) + 192u + 8u * ((g >> 2u) & 1u) + 2u * (g & 3u); }

fn w_block_word(g: u32, k: u32) -> u32 {
  if (k == 0u) { return (q6_k_base(g) + 208u) >> 2u; }
  if (k == 1u) { return q6_k_scales(g) >> 2u; }
  if (k < 11u) { return (q6_k_ql(g) >> 2u) + k - 2u; }
  return (q6_k_qh(g) >> 2u) + min(k, 19u) - 11u;
}

// The 4 bytes starting at `lo` (an even super-block) or 2 bytes into it (an odd one).
fn q6_k_realign(odd: bool, lo: u32, hi: u32) -> u32 { return select(lo, (lo >> 16u) | (hi << 16u), odd); }

// (d scales[first], d scales[first + 1]) of block g from d's word and the scales' word.
fn q6_k_scales_of(g: u32, dw: u32, sw: u32) -> vec2<f32> {
  let d = f16_value(select(dw & 0xffffu, dw >> 16u, ((g >> 3u) & 1u) != 0u));
  let s = sw >> (8u * (q6_k_scales(g) & 3u));
  let sc = vec2<i32>(bitcast<i32>(s << 24u) >> 24u, bitcast<i32>(s << 16u) >> 24u);
  return d * vec2<f32>(sc);
}

// The 4 weights (v - 32) of a pack of block g from its realigned words of ql and qh.
fn q6_k_values(g: u32, ql: u32, qh: u32) -> vec4<f32> {
  let q = g & 3u;
  let v = ((ql >> (4u * (q >> 1u))) & 0x0f0f0f0fu) | (((qh >> (2u * q)) & 0x03030303u) << 4u);
  let b = (vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
  return bitcast<vec4<f32>>(b | vec4<u32>(0x4b000000u)) - vec4<f32>(8388640.0);
}

fn q6_k_pack(g: u32, ws: array<u32, 20>, i: u32) -> vec4<f32> {
  let odd = ((g >> 3u) & 1u) != 0u;
  return q6_k_values(g, q6_k_realign(odd, ws[2u + i], ws[3u + i]), q6_k_realign(odd, ws[11u + i], ws[12u + i]));
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let ds = q6_k_scales_of(g, ws[0], ws[1]);
  return array<vec4<f32>, 8>(q6_k_pack(g, ws, 0u) * ds.x, q6_k_pack(g, ws, 1u) * ds.x, q6_k_pack(g, ws, 2u) * ds.x,
                             q6_k_pack(g, ws, 3u) * ds.x, q6_k_pack(g, ws, 4u) * ds.y, q6_k_pack(g, ws, 5u) * ds.y,
                             q6_k_pack(g, ws, 6u) * ds.y, q6_k_pack(g, ws, 7u) * ds.y);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let s0 = (xs[0] * q6_k_pack(g, ws, 0u) + xs[1] * q6_k_pack(g, ws, 1u))
         + (xs[2] * q6_k_pack(g, ws, 2u) + xs[3] * q6_k_pack(g, ws, 3u));
  let s1 = (xs[4] * q6_k_pack(g, ws, 4u) + xs[5] * q6_k_pack(g, ws, 5u))
         + (xs[6] * q6_k_pack(g, ws, 6u) + xs[7] * q6_k_pack(g, ws, 7u));
  let ds = q6_k_scales_of(g, ws[0], ws[1]);
  return s0 * ds.x + s1 * ds.y;
}

fn w_pack_word(g: u32, i: u32, j: u32) -> u32 {
  if (j == 0u) { return (q6_k_base(g) + 208u) >> 2u; }
  if (j == 1u) { return q6_k_scales(g) >> 2u; }
  if (j < 4u) { return (q6_k_ql(g) >> 2u) + i + j - 2u; }
  return (q6_k_qh(g) >> 2u) + i + j - 4u;
}

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  let odd = ((g >> 3u) & 1u) != 0u;
  let ds = q6_k_scales_of(g, ws[0], ws[1]);
  return q6_k_values(g, q6_k_realign(odd, ws[2], ws[3]), q6_k_realign(odd, ws[4], ws[5])) * select(ds.x, ds.y, i >= 4u);
}
const WSegPacks: u32 = 1u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  return xs[0] * w_unpack(g, s, ws);
}
