// swiglu.wgsl — the Llama family's MLP activation between its two projections, for the rows of a
// prefill run: h[r, c] = silu(gu[r, c]) * gu[r, M + c], where gu = x @ [W_gate; W_up]^T (+ biases)
// and silu(v) = v / (1 + exp(-v)) (transformers' x * sigmoid(x): the same value, and no overflow:
// exp(-v) = inf gives -0). Decode steps fuse this into the gate|up GEMV (linear.wgsl, swiglu).
// Layout: gu f32 [rows, 2M]; h f32 [rows, M]. One invocation per output; dispatch
// (ceil(M / 64), rows, 1).
// Constants:
//   M: u32  the MLP width (intermediate_size)
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels_llama.py -k swiglu
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;

@compute @workgroup_size(64)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= M || r >= step.rows) { return; }
  let g = gu[r * 2u * M + c];
  h[r * M + c] = g / (1.0 + exp(-g)) * gu[r * 2u * M + M + c];
}
