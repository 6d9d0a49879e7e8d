// weights_f16_wide.wgsl — weight format snippet: matrices stored as IEEE f16 (the bytes of
// weights_f16_packed.wgsl), bound as vec4<u32>: one 16-byte load holds 8 halves, widened to f32 with
// unpack2x16float. Only for a GPU's decode GEMV and LM head (app/kernels.py, KernelShapes.gemv_wide_f16)
// over rows of a multiple of 8 weights: a block is 2 packs in one WPack and one segment, so the GPU
// block path of linear.wgsl's gemv and lm_head.wgsl gives each lane one 16-byte load per step where
// the packed snippet's pack-by-pack loop gives it an 8-byte one. The block interface is described in
// weights_f32.wgsl.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_gemv_variants.py -k F16
alias WPack = vec4<u32>;
fn wide_lo(p: WPack) -> vec4<f32> { return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)); }
fn wide_hi(p: WPack) -> vec4<f32> { return vec4<f32>(unpack2x16float(p.z), unpack2x16float(p.w)); }

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
