// weights_f32.wgsl — weight format snippet: matrices stored as f32. A WPack is 4 consecutive
// elements along a matrix row; unpack4 widens a pack to vec4<f32>.
alias WPack = vec4<f32>;
fn unpack4(p: WPack) -> vec4<f32> { return p; }
