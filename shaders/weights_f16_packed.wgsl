// weights_f16_packed.wgsl — weight format snippet: matrices stored as IEEE f16, read as two u32
// words per 4 elements (adapters without the shader-f16 feature, e.g. SwiftShader) and widened to
// f32 with unpack2x16float. Same bytes as a little-endian f16 array.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py -k f16 and tests/test_weight_formats.py
alias WPack = vec2<u32>;
fn unpack4(p: WPack) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));
}

// The block interface (see weights_f32.wgsl): a block is one pack.
const WBlockPacks: u32 = 1u;
const WBlockWords: u32 = 1u;
const WPackWords: u32 = 1u;
fn w_block_word(g: u32, k: u32) -> u32 { return g; }
fn w_block(g: u32, ws: array<WPack, 20>) -> array<vec4<f32>, 8> {
  return array<vec4<f32>, 8>(unpack4(ws[0]), vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>(),
                             vec4<f32>(), vec4<f32>());
}
fn w_dot(g: u32, ws: array<WPack, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> { return xs[0] * unpack4(ws[0]); }
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return g; }
fn w_unpack(g: u32, i: u32, ws: array<WPack, 6>) -> vec4<f32> { return unpack4(ws[0]); }
const WSegPacks: u32 = 1u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return 0u; }
fn w_seg_dot(g: u32, s: u32, ws: array<WPack, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> { return xs[0] * unpack4(ws[0]); }
