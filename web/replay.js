// Replays a prepared list of compute dispatches into one compute pass.
// Python (app/gpu.py) builds the list of [pipeline, bindGroup] pairs once per model; each run passes
// only the workgroup counts. One FFI call per run instead of three per dispatch keeps a decode step's
// host cost independent of the number of layers. A step with a zero count is skipped.
const replayState = { depth: 0, calls: 0 };  // read by pywebgptCountCalls below

// `passDescriptor` (optional): the compute pass's descriptor, e.g. timestampWrites (app/bench.py).
globalThis.pywebgptReplay = function replay(encoder, steps, counts, n, passDescriptor) {
  replayState.calls++;
  replayState.depth++;
  try { replayPass(encoder, steps, counts, n, passDescriptor); } finally { replayState.depth--; }
};

function replayPass(encoder, steps, counts, n, passDescriptor) {
  const pass = encoder.beginComputePass(passDescriptor);
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
}

// Benchmark instrumentation (app/bench.py): counts WebGPU method calls made from outside the replay
// helper — the calls that cross the Python/JS boundary — until stop() restores the methods.
globalThis.pywebgptCountCalls = function countCalls() {
  let calls = 0;
  const replaysBefore = replayState.calls;
  const restore = [];
  const names = ['GPUDevice', 'GPUQueue', 'GPUCommandEncoder', 'GPUBuffer', 'GPUComputePassEncoder'];
  for (const name of names) {
    const cls = globalThis[name];
    if (typeof cls !== 'function') continue;
    const proto = cls.prototype;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const desc = Object.getOwnPropertyDescriptor(proto, key);
      if (!desc || typeof desc.value !== 'function' || key === 'constructor') continue;
      const original = desc.value;
      proto[key] = function (...args) { if (!replayState.depth) calls++; return original.apply(this, args); };
      restore.push(() => { proto[key] = original; });
    }
  }
  return {
    stop() {
      restore.forEach((undo) => undo());
      return calls + (replayState.calls - replaysBefore);
    },
  };
};
