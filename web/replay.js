// Replays a prepared list of compute dispatches into one compute pass.
// Python (app/gpu.py) builds the list of [pipeline, bindGroup] pairs once per model; each run passes
// only the workgroup counts. One FFI call per run instead of three per dispatch keeps a decode step's
// host cost independent of the number of layers. A step with a zero count is skipped.
globalThis.pywebgptReplay = function replay(encoder, steps, counts, n) {
  const pass = encoder.beginComputePass();
  let lastPipeline = null;
  for (let i = 0; i < n; i++) {
    const x = counts[3 * i], y = counts[3 * i + 1], z = counts[3 * i + 2];
    if (!x || !y || !z) continue;
    const step = steps[i];
    if (step[0] !== lastPipeline) { pass.setPipeline(step[0]); lastPipeline = step[0]; }
    pass.setBindGroup(0, step[1]);
    pass.dispatchWorkgroups(x, y, z);
  }
  pass.end();
};
