// weights_bf16_packed.wgsl — weight format snippet: matrices stored as bfloat16 (as checkpoints
// from the Hub often are), read as two u32 words per 4 elements. A bf16 is the top half of an f32,
// so widening is exact: no conversion pass and no precision loss.
alias WPack = vec2<u32>;
fn unpack4(p: WPack) -> vec4<f32> {
  return vec4<f32>(bitcast<f32>(p.x << 16u), bitcast<f32>(p.x & 0xffff0000u),
                   bitcast<f32>(p.y << 16u), bitcast<f32>(p.y & 0xffff0000u));
}
