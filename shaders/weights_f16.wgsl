enable f16;
// weights_f16.wgsl — weight format snippet: matrices stored as f16 on adapters with shader-f16;
// arithmetic stays f32 (accuracy), only the loads are f16.
alias WPack = vec4<f16>;
fn unpack4(p: WPack) -> vec4<f32> { return vec4<f32>(p); }
