// weights_q4_0.wgsl — weight format snippet: ggml's Q4_0 blocks, exactly the bytes of a GGUF tensor
// (nothing is repacked on load). A row of K weights is K / 32 blocks of 18 bytes:
//   [d: f16][16 bytes q]           byte j: element j in its low nibble, element j + 16 in its high
//                                  nibble; weight = (nibble - 8) * d
// The table is bound as array<u32>; block g (of the whole table) starts at byte 18 g: at the start
// of word 9 g / 2 for an even g, two bytes into it for an odd g. No type wider than a u32 is aligned
// for every block, so a whole block (w_block, w_dot: a CPU adapter's invocation) is read as the 5
// words holding it (20 bytes for its 18: a tensor's last block may read 2 bytes past its end, inside
// the 4-byte word the buffer is rounded up to), its 4 words of nibbles realigned in registers with
// one funnel shift each (none for an odd g). A segment (what a GPU lane takes) is one word of
// nibbles, 8 weights (packs s and s + 4): the scale's word and the one or two words it lies in. A
// nibble n becomes n - 8 by putting n in the mantissa of 2^23 and subtracting 2^23 + 8 (exact, and no
// int-to-float conversion); the dot products multiply by d once per block or segment. The block
// interface is described in weights_f32.wgsl.
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 5u;
const WPackWords: u32 = 3u;  // the scale's word and the two words a realigned word of nibbles straddles

fn w_first(g: u32) -> u32 { return (9u * g) >> 1u; }
fn w_block_word(g: u32, k: u32) -> u32 { return w_first(g) + min(k, 4u); }

// The 4 bytes starting 2 bytes into `lo` (a block at an even g), or `hi` itself (an odd g).
fn q_realign(odd: bool, lo: u32, hi: u32) -> u32 { return select((lo >> 16u) | (hi << 16u), hi, odd); }

fn q4_0_scale(g: u32, w0: u32) -> f32 { return f16_value(select(w0 & 0xffffu, w0 >> 16u, (g & 1u) != 0u)); }

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes, minus 8, as floats.
fn q4_0_levels(q: u32, shift: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  return bitcast<vec4<f32>>(n | vec4<u32>(0x4b000000u)) - vec4<f32>(8388616.0);
}

fn w_block(g: u32, ws: array<u32, 20>) -> array<vec4<f32>, 8> {
  let odd = (g & 1u) != 0u;
  let d = q4_0_scale(g, ws[0]);
  let q0 = q_realign(odd, ws[0], ws[1]);
  let q1 = q_realign(odd, ws[1], ws[2]);
  let q2 = q_realign(odd, ws[2], ws[3]);
  let q3 = q_realign(odd, ws[3], ws[4]);
  return array<vec4<f32>, 8>(q4_0_levels(q0, 0u) * d, q4_0_levels(q1, 0u) * d, q4_0_levels(q2, 0u) * d,
                             q4_0_levels(q3, 0u) * d, q4_0_levels(q0, 4u) * d, q4_0_levels(q1, 4u) * d,
                             q4_0_levels(q2, 4u) * d, q4_0_levels(q3, 4u) * d);
}

fn w_dot(g: u32, ws: array<u32, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  let odd = (g & 1u) != 0u;
  let q0 = q_realign(odd, ws[0], ws[1]);
  let q1 = q_realign(odd, ws[1], ws[2]);
  let q2 = q_realign(odd, ws[2], ws[3]);
  let q3 = q_realign(odd, ws[3], ws[4]);
  var s = xs[0] * q4_0_levels(q0, 0u) + xs[4] * q4_0_levels(q0, 4u);
  s += xs[1] * q4_0_levels(q1, 0u) + xs[5] * q4_0_levels(q1, 4u);
  s += xs[2] * q4_0_levels(q2, 0u) + xs[6] * q4_0_levels(q2, 4u);
  s += xs[3] * q4_0_levels(q3, 0u) + xs[7] * q4_0_levels(q3, 4u);
  return s * q4_0_scale(g, ws[0]);
}

// Pack i (4 weights) is the low (i < 4) or high nibbles of the block's word of nibbles i % 4.
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 {
  if (j == 0u) { return w_first(g); }
  let byte = 18u * g + 2u + 4u * (i % 4u);
  return (byte >> 2u) + select(0u, 1u, j == 2u && (byte & 2u) != 0u);
}

fn w_unpack(g: u32, i: u32, ws: array<u32, 6>) -> vec4<f32> {
  return q4_0_levels(q_realign((g & 1u) != 0u, ws[1], ws[2]), (i / 4u) * 4u) * q4_0_scale(g, ws[0]);
}
const WSegPacks: u32 = 2u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return s + 4u * j; }
fn w_seg_dot(g: u32, s: u32, ws: array<u32, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  let q = q_realign((g & 1u) != 0u, ws[1], ws[2]);
  return (xs[0] * q4_0_levels(q, 0u) + xs[1] * q4_0_levels(q, 4u)) * q4_0_scale(g, ws[0]);
}
