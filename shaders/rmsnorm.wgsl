// rmsnorm.wgsl — RMSNorm over each row, as the Llama family computes it in f32:
//   y = x * inverseSqrt(mean(x * x) + EPS) * w
// (x is scaled first, then multiplied by the weight, in transformers' order of rounding.)
// Layout: x, y f32 [rows, C] as vec4; w f32 [C] as vec4.
// Entry points:
//   rms_norm       256 invocations per row; dispatch (G, 1, 1) with G <= rows: workgroup g
//                  normalizes rows g, g + G, ... (G = rows on a GPU).
//   rms_norm_rows  one invocation per row, serial over C, no barriers (CPU adapters).
//                  Dispatch (ceil(rows / 64), 1, 1).
// Constants:
//   C: u32    row length
//   C4: u32   C / 4
//   EPS: f32  epsilon
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_llama.py -k rms_norm
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(256)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  for (var t = wid.x; t < step.rows; t += groups.x) {
    let row = t * C4;
    var q = 0.0;
    for (var i = lid; i < C4; i += 256u) { let v = x[row + i]; q += dot(v, v); }
    let rstd = norm_rstd(workgroup_sum(lid, q), C, EPS);
    for (var i = lid; i < C4; i += 256u) { y[row + i] = rms_norm4(x[row + i], rstd, w[i]); }
  }
}

@compute @workgroup_size(64)
fn rms_norm_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= step.rows) { return; }
  let row = t * C4;
  var q = 0.0;
  for (var i = 0u; i < C4; i++) { let v = x[row + i]; q += dot(v, v); }
  let rstd = norm_rstd(q, C, EPS);
  for (var i = 0u; i < C4; i++) { y[row + i] = rms_norm4(x[row + i], rstd, w[i]); }
}
