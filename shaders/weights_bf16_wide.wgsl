// weights_bf16_wide.wgsl — weight format snippet: matrices stored as bfloat16 (the bytes of
// weights_bf16_packed.wgsl), bound as vec4<u32>: one 16-byte load holds 8 of them, widened to f32
// exactly (a bf16 is the top half of an f32). The twin of weights_f16_wide.wgsl (see there), chosen
// by the same kernel shape.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_gemv_variants.py -k BF16
alias WPack = vec4<u32>;
fn bf16_pair(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }
fn wide_lo(p: WPack) -> vec4<f32> { return vec4<f32>(bf16_pair(p.x), bf16_pair(p.y)); }
fn wide_hi(p: WPack) -> vec4<f32> { return vec4<f32>(bf16_pair(p.z), bf16_pair(p.w)); }

const WBlockPacks: u32 = 2u;
const WBlockWords: u32 = 1u;
const WPackWords: u32 = 1u;
fn w_block_word(g: u32, k: u32) -> u32 { return g; }
fn w_block(g: u32, ws: array<WPack, 20>) -> array<vec4<f32>, 8> {
  return array<vec4<f32>, 8>(wide_lo(ws[0]), wide_hi(ws[0]), vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>(),
                             vec4<f32>(), vec4<f32>());
}
fn w_dot(g: u32, ws: array<WPack, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> {
  return xs[0] * wide_lo(ws[0]) + xs[1] * wide_hi(ws[0]);
}
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return g; }
fn w_unpack(g: u32, i: u32, ws: array<WPack, 6>) -> vec4<f32> {
  if (i == 0u) { return wide_lo(ws[0]); }
  return wide_hi(ws[0]);
}
const WSegPacks: u32 = 2u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return j; }
fn w_seg_dot(g: u32, s: u32, ws: array<WPack, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> {
  return xs[0] * wide_lo(ws[0]) + xs[1] * wide_hi(ws[0]);
}
