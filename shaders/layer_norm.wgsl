// layer_norm.wgsl — LayerNorm over each row: y = (x - mean) / sqrt(var + EPS) * gamma + beta.
// Two passes over the row (mean, then variance of x - mean) as PyTorch does, all in f32.
// Layout: x, y f32 [rows, C] as vec4; gamma, beta f32 [C] as vec4.
// Workgroup: 256 invocations per row; dispatch (G, 1, 1) with G <= rows: workgroup g normalizes
// rows g, g + G, ... (G = rows on a GPU, a few on a CPU adapter).
// Constants:
//   C: u32    row length
//   C4: u32   C / 4
//   EPS: f32  epsilon
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py -k layer_norm
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> beta: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(256)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  for (var t = wid.x; t < step.rows; t += groups.x) { normalize_row(t * C4, lid); }
}

fn normalize_row(row: u32, lid: u32) {
  var s = 0.0;
  for (var i = lid; i < C4; i += 256u) { let v = x[row + i]; s += v.x + v.y + v.z + v.w; }
  let mean = workgroup_sum(lid, s) / f32(C);
  var q = 0.0;
  for (var i = lid; i < C4; i += 256u) { let d = x[row + i] - mean; q += dot(d, d); }
  let rstd = norm_rstd(workgroup_sum(lid, q), C, EPS);
  for (var i = lid; i < C4; i += 256u) {
    y[row + i] = layer_norm4(x[row + i], mean, rstd, gamma[i], beta[i]);
  }
}

// layer_norm_rows: the same, one invocation per row (serial over C, no barriers) for CPU adapters.
// Dispatch (ceil(rows / 64), 1, 1).
@compute @workgroup_size(64)
fn layer_norm_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= step.rows) { return; }
  let row = t * C4;
  var s = 0.0;
  for (var i = 0u; i < C4; i++) { let v = x[row + i]; s += v.x + v.y + v.z + v.w; }
  let mean = s / f32(C);
  var q = 0.0;
  for (var i = 0u; i < C4; i++) { let d = x[row + i] - mean; q += dot(d, d); }
  let rstd = norm_rstd(q, C, EPS);
  for (var i = 0u; i < C4; i++) { y[row + i] = layer_norm4(x[row + i], mean, rstd, gamma[i], beta[i]); }
}
