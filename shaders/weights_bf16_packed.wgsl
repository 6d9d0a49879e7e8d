// weights_bf16_packed.wgsl — weight format snippet: matrices stored as bfloat16 (as checkpoints
// from the Hub often are), read as two u32 words per 4 elements. A bf16 is the top half of an f32,
// so widening is exact: no conversion pass and no precision loss.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py -k bf16 and tests/test_weight_formats.py
alias WPack = vec2<u32>;
fn unpack4(p: WPack) -> vec4<f32> {
  return vec4<f32>(bitcast<f32>(p.x << 16u), bitcast<f32>(p.x & 0xffff0000u),
                   bitcast<f32>(p.y << 16u), bitcast<f32>(p.y & 0xffff0000u));
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
