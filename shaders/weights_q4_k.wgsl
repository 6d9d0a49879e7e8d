// weights_q4_k.wgsl — weight format snippet: ggml's Q4_K super-blocks, exactly the bytes of a GGUF
// tensor (nothing is repacked on load). A row of K weights is K / 256 super-blocks of 144 bytes:
//   [d: f16][dmin: f16][scales: 12 bytes][qs: 128 bytes]
// Sub-block j (weights 32 j .. 32 j + 31) has a 6-bit scale sc and a 6-bit min m packed in `scales`
// (ggml's get_scale_min_k4: j < 4: sc = scales[j] & 63, m = scales[j + 4] & 63; else the low /
// high nibble of scales[j + 4] with the top 2 bits of scales[j - 4] / scales[j]); its weight l is
// d sc n - dmin m, n the low (even j) or high (odd j) nibble of qs[32 (j / 2) + l].
// A block of the interface (weights_f32.wgsl) is one sub-block: g = 8 super-block + j. 144 bytes is
// 36 words, so every super-block is word-aligned; the table is bound as array<u32>. A whole block
// (w_block, w_dot: a CPU adapter's invocation) is 12 words: the d / dmin word, the 3 words of scales
// and its 8 words of nibbles. A segment (what a GPU lane takes) is one pack: those 4 words of header
// and the pack's word of nibbles. A nibble becomes a float in the mantissa of a power of two, where it
// lies, minus that power (exact, no int-to-float conversion: common.wgsl nibble_halves); the dot
// products compute
// (d sc) sum(x n) - (dmin m) sum(x), d sc and dmin m rounded to f32 as ggml's dequantize_row_q4_K does.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_quant.py -k Q4_K
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 12u;
const WPackWords: u32 = 5u;  // d / dmin, the 3 words of scales, the pack's word of nibbles

// The first word of block g's super-block, and of the 8 words of nibbles sub-block g % 8 reads.
fn q4_k_base(g: u32) -> u32 { return 36u * (g >> 3u); }
fn q4_k_nibbles(g: u32) -> u32 { return q4_k_base(g) + 4u + 8u * ((g & 7u) >> 1u); }

fn w_block_word(g: u32, k: u32) -> u32 {
  return select(q4_k_base(g) + k, q4_k_nibbles(g) + min(k, 11u) - 4u, k >= 4u);
}

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes, as floats.
fn q4_k_levels(q: u32, shift: u32) -> vec4<f32> {
  return low_nibbles_biased(nibble_halves(q) >> vec4<u32>(shift)) - NIBBLE_LOW_BASE;  // common.wgsl
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let dm = k_scale_min(g & 7u, ws[0], ws[1], ws[2], ws[3]);
  let sh = 4u * (g & 1u);
  return array<vec4<f32>, 8>(q4_k_levels(ws[4], sh) * dm.x - dm.y, q4_k_levels(ws[5], sh) * dm.x - dm.y,
                             q4_k_levels(ws[6], sh) * dm.x - dm.y, q4_k_levels(ws[7], sh) * dm.x - dm.y,
                             q4_k_levels(ws[8], sh) * dm.x - dm.y, q4_k_levels(ws[9], sh) * dm.x - dm.y,
                             q4_k_levels(ws[10], sh) * dm.x - dm.y, q4_k_levels(ws[11], sh) * dm.x - dm.y);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let sh = 4u * (g & 1u);
  var s = xs[0] * q4_k_levels(ws[4], sh) + xs[1] * q4_k_levels(ws[5], sh);
  s += xs[2] * q4_k_levels(ws[6], sh) + xs[3] * q4_k_levels(ws[7], sh);
  s += xs[4] * q4_k_levels(ws[8], sh) + xs[5] * q4_k_levels(ws[9], sh);
  s += xs[6] * q4_k_levels(ws[10], sh) + xs[7] * q4_k_levels(ws[11], sh);
  let sx = (xs[0] + xs[1]) + (xs[2] + xs[3]) + ((xs[4] + xs[5]) + (xs[6] + xs[7]));
  let dm = k_scale_min(g & 7u, ws[0], ws[1], ws[2], ws[3]);
  return s * dm.x - sx * dm.y;
}

// Pack i (4 weights) of sub-block j is word i of its nibbles, low (even j) or high (odd j).
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return select(q4_k_base(g) + j, q4_k_nibbles(g) + i, j == 4u); }

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  let dm = k_scale_min(g & 7u, ws[0], ws[1], ws[2], ws[3]);
  return q4_k_levels(ws[4], 4u * (g & 1u)) * dm.x - dm.y;
}
const WSegPacks: u32 = 1u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let dm = k_scale_min(g & 7u, ws[0], ws[1], ws[2], ws[3]);
  return xs[0] * q4_k_levels(ws[4], 4u * (g & 1u)) * dm.x - xs[0] * dm.y;
}
