// What the design probes (tools/*_probe.mjs) share: a device from Dawn's Node binding with
// timestamps when the adapter has them, and the GPU time of a compute pass of many dispatches.
// Not product code: the product reaches the GPU through app/gpu.py.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import url from 'node:url';
import { create, globals } from 'webgpu';

const root = path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), '..');

Object.assign(globalThis, globals);

// Dawn's instance and adapter must outlive the device: once collected, Dawn's threads crash (a glibc
// assertion in __pthread_tpp_change_priority), so they stay referenced here.
const keep = [];

// The adapter's device with its largest storage bindings and timestamp queries (and subgroups when
// asked for and 32 wide, consecutive in a workgroup: what a probe's subgroup reduction assumes).
// Prints the adapter as the first JSON line.
export async function openDevice({ subgroups: wantSubgroups = false } = {}) {
  // Dawn quantizes timestamps to 2^16 ns unless told not to (as tools/node_runner.mjs tells it)
  const gpu = create(['backend=vulkan', 'disable-dawn-features=timestamp_quantization']);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  const features = [...adapter.features];
  const info = adapter.info || {};
  const subgroups = wantSubgroups && features.includes('subgroups') && info.subgroupMinSize === 32
    && info.subgroupMaxSize === 32;
  const stamps = features.includes('timestamp-query');
  keep.push(gpu, adapter);
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: [...(subgroups ? ['subgroups'] : []), ...(stamps ? ['timestamp-query'] : [])],
    requiredLimits: { maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize, maxBufferSize: limits.maxBufferSize } });
  console.log(JSON.stringify({ adapter: `${info.vendor}/${info.device || info.architecture}`,
    ...(wantSubgroups ? { subgroups } : {}), timestamps: stamps }));
  return { device, subgroups, stamps };
}

export const withTimeout = (p, ms) => Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error('timed out')), ms))]);

// A timer of compute passes on `device`: `usPerRep(record, reps)` runs one pass in which
// record(pass, r) records rep r, for r < reps, once untimed and then three times timed, and returns
// the best microseconds per rep (GPU timestamps at the pass's start and end where the adapter has
// them, else submit to done).
export function passTimer(device, stamps) {
  const querySet = stamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
  const resolved = stamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : null;
  const stampRead = stamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }) : null;
  const run = async (record, reps, timed) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass(timed && stamps ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
    for (let r = 0; r < reps; r++) record(pass, r);
    pass.end();
    if (timed && stamps) { enc.resolveQuerySet(querySet, 0, 2, resolved, 0); enc.copyBufferToBuffer(resolved, 0, stampRead, 0, 16); }
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await withTimeout(device.queue.onSubmittedWorkDone(), 60000);
    if (!(timed && stamps)) return (performance.now() - t0) * 1000 / reps;
    await stampRead.mapAsync(GPUMapMode.READ);
    const t = new BigInt64Array(stampRead.getMappedRange().slice(0));
    stampRead.unmap();
    return Number(t[1] - t[0]) / 1000 / reps;
  };
  return async function usPerRep(record, reps) {
    await run(record, reps, false);
    let best = Infinity;
    for (let k = 0; k < 3; k++) best = Math.min(best, await run(record, reps, true));
    return best;
  };
}

// Floats of a COPY_SRC buffer, read back.
export async function readFloats(device, buffer, n) {
  const rb = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, 0, rb, 0, n * 4);
  device.queue.submit([enc.finish()]);
  await withTimeout(rb.mapAsync(GPUMapMode.READ), 60000);
  const out = new Float32Array(rb.getMappedRange().slice(0));
  rb.unmap();
  rb.destroy();
  return out;
}

// The WGSL module the engine builds for `entry` of shaders/`shader` with these constants (app/kernels.py
// kernel(...).source(), through CPython): a probe that times an engine kernel runs the engine's own.
export function engineModule(shader, entry, values) {
  const code = 'import json, sys\nfrom app.kernels import kernel\n'
    + 'print(kernel(sys.argv[1], sys.argv[2], "F32", **json.loads(sys.argv[3])).source())';
  return execFileSync('python3', ['-c', code, shader, entry, JSON.stringify(values)], { cwd: root, encoding: 'utf8' });
}
