#!/usr/bin/env node
// A diagnostic probe: does the read stream of a chain of mid-sized dispatches (one per 16 MiB
// window, as a decode step's GEMVs read one matrix each) depend on WHICH buffer the windows lie in?
// app/roofline.py read_by_size measured 16 MiB windows of a fresh 1 GiB buffer at 1.0-1.3 TB/s in
// some runs and 2.5 TB/s in others on the same H200, in one process, while the whole-buffer stream
// stayed at 4.6 TB/s. Not product code. For ROUNDS fresh 1 GiB buffers (all kept alive), then for
// WINDOWS separate 16 MiB buffers, then for the first buffer again, it prints us per dispatch of the
// windowed chain and the whole-buffer stream's TB/s.
// tests/test_probes.py runs it on a small shape on SwiftShader.
// Run: on the H200, `source .gpu-carry/on-device.sh && node tools/window_stream_probe.mjs`; on
// SwiftShader, LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
// Environment: ROUNDS (4), MIB (a window, 16), BIG_MIB (a buffer, 1024), WINDOWS (64), PASSES (times
// the chain goes over its windows in one timed pass, 1: more keeps the memory busy for longer, in
// case its clock only rises under sustained load), WARM_MS (streaming before the first figure, 0).
import { engineModule, openDevice, passTimer } from './gpu_probe.mjs';

const { device, stamps } = await openDevice();

const ROUNDS = Number(process.env.ROUNDS || 4), WINDOWS = Number(process.env.WINDOWS || 64);
const WINDOW = Number(process.env.MIB || 16) * 2 ** 20, BIG = Number(process.env.BIG_MIB || 1024) * 2 ** 20;
const UNROLL = 4;
const PASSES = Number(process.env.PASSES || 1), WARM_MS = Number(process.env.WARM_MS || 0);
// the engine's read stream (shaders/roofline.wgsl read_stream, grid-stride), as app/roofline.py builds it
const code = engineModule('roofline.wgsl', 'read_stream', { READ_UNROLL: UNROLL, READ_CHUNKED: false, FMA_ITERS: 1, FILL_FORMAT: 0 });
const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'read_stream' } });
const sink = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
// roofline.wgsl binds src at 0 and sink at 1
const group = (resource) => device.createBindGroup({ layout: pipeline.getBindGroupLayout(0),
  entries: [{ binding: 0, resource }, { binding: 1, resource: { buffer: sink } }] });
const big = () => {
  const b = device.createBuffer({ size: BIG, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.clearBuffer(b);  // touched, as weights are when they are uploaded
  device.queue.submit([enc.finish()]);
  return b;
};

// us per dispatch over a chain of `reps` dispatches, one per bind group in turn
const timer = passTimer(device, stamps);
const usPerDispatch = (groups, workgroups, reps) => timer((pass, r) => {
  if (r === 0) pass.setPipeline(pipeline);
  pass.setBindGroup(0, groups[r % groups.length]);
  pass.dispatchWorkgroups(workgroups);
}, reps);

const windowGroups = WINDOW / 16 / 1024;  // 4 loads an invocation: read_by_size's best shape on the H200
async function measure(label, buffer) {
  const windows = Array.from({ length: Math.min(WINDOWS, BIG / WINDOW) }, (_, w) => group({ buffer, offset: w * WINDOW, size: WINDOW }));
  const us = await usPerDispatch(windows, windowGroups, windows.length * PASSES);
  const whole = await usPerDispatch([group({ buffer })], 16384, 5);
  console.log(JSON.stringify({ buffer: label, window_mib: WINDOW / 2 ** 20, window_us: +us.toFixed(2),
    window_tbs: +(WINDOW / us / 1e6).toFixed(3), whole_tbs: +(BIG / whole / 1e6).toFixed(3), passes: PASSES, warm_ms: WARM_MS }));
}

const bigs = [];
if (WARM_MS > 0) {
  const warm = big();
  const t0 = performance.now();
  while (performance.now() - t0 < WARM_MS) await usPerDispatch([group({ buffer: warm })], 16384, 5);
  warm.destroy();
}
for (let r = 0; r < ROUNDS; r++) {
  bigs.push(big());
  await measure(`big ${r}`, bigs[r]);
}
const separate = Array.from({ length: WINDOWS }, () => {
  const b = device.createBuffer({ size: WINDOW, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.clearBuffer(b);
  device.queue.submit([enc.finish()]);
  return b;
});
const us = await usPerDispatch(separate.map((buffer) => group({ buffer })), windowGroups, WINDOWS * PASSES);
console.log(JSON.stringify({ buffer: `${WINDOWS} separate buffers`, window_mib: WINDOW / 2 ** 20, window_us: +us.toFixed(2),
  window_tbs: +(WINDOW / us / 1e6).toFixed(3) }));
await measure('big 0 again', bigs[0]);
process.exit(0);
