// weights_f16_packed.wgsl — weight format snippet: matrices stored as IEEE f16, read as two u32
// words per 4 elements (adapters without the shader-f16 feature, e.g. SwiftShader) and widened to
// f32 with unpack2x16float. Same bytes as a little-endian f16 array.
alias WPack = vec2<u32>;
fn unpack4(p: WPack) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));
}
