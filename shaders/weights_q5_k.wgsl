// weights_q5_k.wgsl — weight format snippet: ggml's Q5_K super-blocks, exactly the bytes of a GGUF
// tensor (nothing is repacked on load). A row of K weights is K / 256 super-blocks of 176 bytes:
//   [d: f16][dmin: f16][scales: 12 bytes][qh: 32 bytes][qs: 128 bytes]
// As Q4_K (weights_q4_k.wgsl: the 6-bit scale sc and min m of sub-block j, the low / high nibble n
// of qs[32 (j / 2) + l]) with a fifth bit: weight l of sub-block j is d sc (n + 16 h) - dmin m, h bit
// j of qh[l] (ggml's dequantize_row_q5_K).
// A block of the interface (weights_f32.wgsl) is one sub-block: g = 8 super-block + j. 176 bytes is
// 44 words, so every super-block is word-aligned; the table is bound as array<u32>. A whole block
// (w_block, w_dot: a CPU adapter's invocation) is 20 words: the d / dmin word, the 3 words of
// scales, the 8 words of qh and its 8 words of nibbles. A segment (what a GPU lane takes) is one
// pack: those 4 words of header, the pack's word of nibbles and its word of qh. A 5-bit level becomes
// a float by putting it in the mantissa of 2^23 and subtracting 2^23 (exact, no int-to-float
// conversion); the dot products compute (d sc) sum(x q) - (dmin m) sum(x), d sc and dmin m rounded to
// f32 as ggml does.
// Run alone: python3 -m pytest tests/test_kernels_quant.py -q -k Q5_K
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 20u;
const WPackWords: u32 = 6u;  // d / dmin, the 3 words of scales, the pack's word of nibbles and of qh

// The first word of block g's super-block, of its 8 words of qh, and of the 8 words of nibbles
// sub-block g % 8 reads.
fn q5_k_base(g: u32) -> u32 { return 44u * (g >> 3u); }
fn q5_k_high(g: u32) -> u32 { return q5_k_base(g) + 4u; }
fn q5_k_nibbles(g: u32) -> u32 { return q5_k_base(g) + 12u + 8u * ((g & 7u) >> 1u); }

fn w_block_word(g: u32, k: u32) -> u32 {
  if (k < 4u) { return q5_k_base(g) + k; }
  if (k < 12u) { return q5_k_high(g) + k - 4u; }
  return q5_k_nibbles(g) + min(k, 19u) - 12u;
}

// The 4 levels of a pack of sub-block j: the nibbles of word q (low for even j, high for odd j)
// with bit j of each byte of word h on top, as floats.
fn q5_k_levels(q: u32, h: u32, j: u32) -> vec4<f32> {
  let v = ((q >> (4u * (j & 1u))) & 0x0f0f0f0fu) | (((h >> j) & 0x01010101u) << 4u);
  let b = (vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
  return bitcast<vec4<f32>>(b | vec4<u32>(0x4b000000u)) - vec4<f32>(8388608.0);
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let j = g & 7u;
  let dm = k_scale_min(j, ws[0], ws[1], ws[2], ws[3]);
  return array<vec4<f32>, 8>(q5_k_levels(ws[12], ws[4], j) * dm.x - dm.y, q5_k_levels(ws[13], ws[5], j) * dm.x - dm.y,
                             q5_k_levels(ws[14], ws[6], j) * dm.x - dm.y, q5_k_levels(ws[15], ws[7], j) * dm.x - dm.y,
                             q5_k_levels(ws[16], ws[8], j) * dm.x - dm.y, q5_k_levels(ws[17], ws[9], j) * dm.x - dm.y,
                             q5_k_levels(ws[18], ws[10], j) * dm.x - dm.y,
                             q5_k_levels(ws[19], ws[11], j) * dm.x - dm.y);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let j = g & 7u;
  var s = xs[0] * q5_k_levels(ws[12], ws[4], j) + xs[1] * q5_k_levels(ws[13], ws[5], j);
  s += xs[2] * q5_k_levels(ws[14], ws[6], j) + xs[3] * q5_k_levels(ws[15], ws[7], j);
  s += xs[4] * q5_k_levels(ws[16], ws[8], j) + xs[5] * q5_k_levels(ws[17], ws[9], j);
  s += xs[6] * q5_k_levels(ws[18], ws[10], j) + xs[7] * q5_k_levels(ws[19], ws[11], j);
  let sx = (xs[0] + xs[1]) + (xs[2] + xs[3]) + ((xs[4] + xs[5]) + (xs[6] + xs[7]));
  let dm = k_scale_min(j, ws[0], ws[1], ws[2], ws[3]);
  return s * dm.x - sx * dm.y;
}

// Pack i (4 weights) of sub-block j: the header, word i of its nibbles and word i of qh.
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 {
  if (j < 4u) { return q5_k_base(g) + j; }
  return select(q5_k_high(g) + i, q5_k_nibbles(g) + i, j == 4u);
}

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  let dm = k_scale_min(g & 7u, ws[0], ws[1], ws[2], ws[3]);
  return q5_k_levels(ws[4], ws[5], g & 7u) * dm.x - dm.y;
}
const WSegPacks: u32 = 1u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let dm = k_scale_min(g & 7u, ws[0], ws[1], ws[2], ws[3]);
  return xs[0] * q5_k_levels(ws[4], ws[5], g & 7u) * dm.x - xs[0] * dm.y;
}
