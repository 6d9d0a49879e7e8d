// weights_q8_0.wgsl — weight format snippet: ggml's Q8_0 blocks, exactly the bytes of a GGUF tensor
// (nothing is repacked on load). A row of K weights is K / 32 blocks of 34 bytes:
//   [d: f16][32 x int8 q]          weight j = q[j] * d
// The table is bound as array<u32>; rows are whole blocks back to back, so block g (of the whole
// table) starts at byte 34 g: at the start of word 17 g / 2 for an even g, two bytes into it for an
// odd g. No type wider than a u32 is aligned for every block, so a whole block (w_block, w_dot: a
// CPU adapter's invocation) is read as the 9 words holding it (36 bytes for its 34: a tensor's last
// block may read 2 bytes past its end, inside the 4-byte word the buffer is rounded up to), its 32
// int8 realigned in registers with one funnel shift per word (none for an odd g). A segment (what a
// GPU lane takes; consecutive lanes, consecutive segments) is one pack: the scale's word, which the
// block's 8 lanes share, and the one or two words its 4 int8 lie in. Dequantizing: an int8 q (byte
// b) becomes a float by putting b ^ 0x80 = q + 128 in the mantissa of 2^23 and subtracting 2^23 + 128
// (exact, and no int-to-float conversion, which runs at a quarter of the FMA rate or less on GPUs);
// w_dot sums x * q over the block and multiplies by d once. The block interface is described in
// weights_f32.wgsl.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_quant.py tests/test_kernels_gemv_variants.py -k Q8_0
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 9u;
const WPackWords: u32 = 3u;  // the scale's word and the two words a realigned pack straddles

fn w_first(g: u32) -> u32 { return (17u * g) >> 1u; }
fn w_block_word(g: u32, k: u32) -> u32 { return w_first(g) + min(k, 8u); }

// The 4 bytes starting 2 bytes into `lo` (a block at an even g), or `hi` itself (an odd g).
fn q_realign(odd: bool, lo: u32, hi: u32) -> u32 { return select((lo >> 16u) | (hi << 16u), hi, odd); }

fn q8_0_scale(g: u32, w0: u32) -> f32 { return f16_value(select(w0 & 0xffffu, w0 >> 16u, (g & 1u) != 0u)); }

// 4 int8 (a word, the first in the low byte) as floats.
fn q8_0_ints(q: u32) -> vec4<f32> {
  let b = (vec4<u32>(q ^ 0x80808080u) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
  return bitcast<vec4<f32>>(b | vec4<u32>(0x4b000000u)) - vec4<f32>(8388736.0);
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let odd = (g & 1u) != 0u;
  let d = q8_0_scale(g, ws[0]);
  return array<vec4<f32>, 8>(
      q8_0_ints(q_realign(odd, ws[0], ws[1])) * d, q8_0_ints(q_realign(odd, ws[1], ws[2])) * d,
      q8_0_ints(q_realign(odd, ws[2], ws[3])) * d, q8_0_ints(q_realign(odd, ws[3], ws[4])) * d,
      q8_0_ints(q_realign(odd, ws[4], ws[5])) * d, q8_0_ints(q_realign(odd, ws[5], ws[6])) * d,
      q8_0_ints(q_realign(odd, ws[6], ws[7])) * d, q8_0_ints(q_realign(odd, ws[7], ws[8])) * d);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let odd = (g & 1u) != 0u;
  var s = xs[0] * q8_0_ints(q_realign(odd, ws[0], ws[1]));
  s += xs[1] * q8_0_ints(q_realign(odd, ws[1], ws[2]));
  s += xs[2] * q8_0_ints(q_realign(odd, ws[2], ws[3]));
  s += xs[3] * q8_0_ints(q_realign(odd, ws[3], ws[4]));
  s += xs[4] * q8_0_ints(q_realign(odd, ws[4], ws[5]));
  s += xs[5] * q8_0_ints(q_realign(odd, ws[5], ws[6]));
  s += xs[6] * q8_0_ints(q_realign(odd, ws[6], ws[7]));
  s += xs[7] * q8_0_ints(q_realign(odd, ws[7], ws[8]));
  return s * q8_0_scale(g, ws[0]);
}

fn w_pack_word(g: u32, i: u32, j: u32) -> u32 {
  if (j == 0u) { return w_first(g); }
  let byte = 34u * g + 2u + 4u * i;  // pack i's 4 int8
  return (byte >> 2u) + select(0u, 1u, j == 2u && (byte & 2u) != 0u);
}

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  return q8_0_ints(q_realign((g & 1u) != 0u, ws[1], ws[2])) * q8_0_scale(g, ws[0]);
}
const WSegPacks: u32 = 1u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  return xs[0] * q8_0_ints(q_realign((g & 1u) != 0u, ws[1], ws[2])) * q8_0_scale(g, ws[0]);
}
