// weights_q4_1.wgsl — weight format snippet: ggml's Q4_1 blocks, exactly the bytes of a GGUF tensor
// (nothing is repacked on load). A row of K weights is K / 32 blocks of 20 bytes:
//   [d: f16][m: f16][16 bytes q]   byte j: element j in its low nibble, element j + 16 in its high
//                                  nibble; weight = nibble * d + m
// The table is bound as array<u32>; block g starts at word 5 g, so every block is word-aligned and
// read as its own 5 words (d and m in the first). Vectors of 2 or 4 words would be aligned only for
// every second or fourth block. A nibble n becomes a float by putting it in the mantissa of 2^23 and
// subtracting 2^23 (exact, no int-to-float conversion); w_dot computes d * sum(x * n) + m * sum(x)
// for the block. The block interface is described in weights_f32.wgsl.
alias WPack = u32;

const WBlockPacks: u32 = 8u;
const WBlockWords: u32 = 5u;
const WPackWords: u32 = 2u;  // d and m's word, and the word of nibbles

fn w_first(g: u32) -> u32 { return 5u * g; }

// An f16 (the low 16 bits of h) as f32, exactly, subnormals included (unpack2x16float may flush them).
fn f16_value(h: u32) -> f32 {
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  var v = bitcast<f32>(((e + 112u) << 23u) | (m << 13u));
  if (e == 0u) { v = f32(m) * 5.9604644775390625e-8; }  // m * 2^-24
  if (e == 31u) { v = bitcast<f32>(0x7f800000u | (m << 13u)); }
  return select(v, -v, (h & 0x8000u) != 0u);
}

// The nibbles at bit `shift` (0: low, 4: high) of a word's 4 bytes, as floats.
fn q4_1_levels(q: u32, shift: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  return bitcast<vec4<f32>>(n | vec4<u32>(0x4b000000u)) - vec4<f32>(8388608.0);
}

fn w_block(g: u32, ws: array<u32, 5>) -> array<vec4<f32>, 8> {
  let d = f16_value(ws[0] & 0xffffu);
  let m = f16_value(ws[0] >> 16u);
  var out: array<vec4<f32>, 8>;
  for (var k = 0u; k < 4u; k++) {
    out[k] = q4_1_levels(ws[k + 1u], 0u) * d + m;
    out[k + 4u] = q4_1_levels(ws[k + 1u], 4u) * d + m;
  }
  return out;
}

fn w_dot(g: u32, ws: array<u32, 5>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  var s = vec4<f32>(0.0);
  var sx = vec4<f32>(0.0);
  for (var k = 0u; k < 4u; k++) {
    s += xs[k] * q4_1_levels(ws[k + 1u], 0u) + xs[k + 4u] * q4_1_levels(ws[k + 1u], 4u);
    sx += xs[k] + xs[k + 4u];
  }
  return s * f16_value(ws[0] & 0xffffu) + sx * f16_value(ws[0] >> 16u);
}

// Pack i (4 weights) is the low (i < 4) or high nibbles of the block's word of nibbles i % 4.
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return 5u * g + select(0u, 1u + i % 4u, j == 1u); }

fn w_unpack(g: u32, i: u32, ws: array<u32, 2>) -> vec4<f32> {
  return q4_1_levels(ws[1], (i / 4u) * 4u) * f16_value(ws[0] & 0xffffu) + f16_value(ws[0] >> 16u);
}
