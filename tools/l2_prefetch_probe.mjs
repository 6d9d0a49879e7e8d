#!/usr/bin/env node
// A design probe: can a latency-bound dispatch (a decode step's attention: a few workgroups, a few
// microseconds, the memory idle meanwhile) read the NEXT dispatch's weights into the L2 cache with
// spare workgroups, so that the GEMV after it reads from L2 instead of starting cold from memory?
// Not product code. One pass chains (stand-in, GEMV) pairs, each pair on its own window of weights
// (the windows together far beyond L2, so a GEMV finds its weights in L2 only if the stand-in put
// them there):
//   stand-in  ATT_GROUPS workgroups run a dependent chain of SPIN fma per invocation and write the
//             GEMV's input x (so the GEMV waits for it, as after attention); PF more workgroups (0 in
//             the baseline) stream the next GEMV's weight window with vec4<u32> loads and XOR them
//             into a sink (read, not used).
//   GEMV      y = W x, W f16 [N, K] as vec4<u32> loads of 8 halves, 8 rows to a workgroup, 32 lanes
//             to a row, a tree reduction: the shape of shaders/linear.wgsl's decode GEMV.
// Prints one JSON line per (shape, PF): us per pair, and the stand-in and the GEMV each alone in
// their own chains (the GEMV on cold windows), with the GEMV's largest error against f64 sums
// relative to their largest magnitude.
// tests/test_probes.py runs it on a small shape on SwiftShader.
// Run: on the H200, `source .gpu-carry/on-device.sh && node tools/l2_prefetch_probe.mjs`; on
// SwiftShader, LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
// Environment: SHAPES (attn_proj,fc: GPT-2 XL's 1600 x 1600 and 6400 x 1600), PF (0,128,512,2048),
// SPIN (2000,0: ~5 us of dependent fma, as attention at a short context; or just the write of x,
// as a norm's own dispatch), REPS (pairs a pass, 48), WINDOW_MB (total weights cycled, 256).
import { openDevice, passTimer, readFloats } from './gpu_probe.mjs';

const { device, stamps } = await openDevice();

const ALL_SHAPES = { attn_proj: { N: 1600, K: 1600 }, fc: { N: 6400, K: 1600 }, small: { N: 64, K: 256 } };
const shapes = (process.env.SHAPES || 'attn_proj,fc').split(',');
const PFS = (process.env.PF || '0,128,512,2048').split(',').map(Number);
const SPINS = (process.env.SPIN || '2000,0').split(',').map(Number), REPS = Number(process.env.REPS || 48);
const TOTAL = Number(process.env.WINDOW_MB || 256) * 2 ** 20;
const ATT_GROUPS = 25;

const standIn = (K, SPIN) => `
@group(0) @binding(0) var<storage, read> x0: array<f32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> next_w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> sink: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) n: vec3<u32>) {
  if (wg.x < ${ATT_GROUPS}u) {
    var v = x0[li % ${K}u];
    for (var i = 0u; i < ${SPIN}u; i++) { v = fma(v, 0.5, 0.25); }
    if (wg.x == 0u) { for (var i = li; i < ${K}u; i += 256u) { x[i] = x0[i] + v * 1e-30; } }
    return;
  }
  let lanes = (n.x - ${ATT_GROUPS}u) * 256u;
  var acc = vec4<u32>(0u);
  for (var i = (wg.x - ${ATT_GROUPS}u) * 256u + li; i < arrayLength(&next_w); i += lanes) { acc ^= next_w[i]; }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9e3779b9u) { sink[0] = li; }
}`;

const gemv = (N, K) => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
var<workgroup> part: array<f32, 256>;
fn dot8(p: vec4<u32>, k: u32) -> f32 {
  var s = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let h = unpack2x16float(p[j]);
    s += h.x * x[k + 2u * j] + h.y * x[k + 2u * j + 1u];
  }
  return s;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wg.x * 8u + li / 32u;
  let lane = li % 32u;
  var s = 0.0;
  if (row < ${N}u) {
    for (var c = lane; c < ${K / 8}u; c += 32u) { s += dot8(w[row * ${K / 8}u + c], c * 8u); }
  }
  part[li] = s;
  for (var h = 16u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (lane < h) { part[li] += part[li + h]; }
  }
  if (lane == 0u && row < ${N}u) { y[row] = part[li]; }
}`;

// an IEEE half's value (the pattern holds no infinities or NaNs)
const half = (h) => {
  const e = (h >> 10) & 31, m = h & 1023, sign = h & 0x8000 ? -1 : 1;
  return sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
};
const S = GPUBufferUsage.STORAGE, COPY_SRC = GPUBufferUsage.COPY_SRC, COPY_DST = GPUBufferUsage.COPY_DST;
const buffer = (size, usage) => device.createBuffer({ size, usage });
const pipelineOf = (code) => device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
const groupOf = (pipeline, buffers) => device.createBindGroup({ layout: pipeline.getBindGroupLayout(0),
  entries: buffers.map((b, binding) => ({ binding, resource: b.buffer ? b : { buffer: b } })) });

// us per rep of a pass whose rep r runs the dispatches steps(r) (a list of [pipeline, group, workgroups])
const timer = passTimer(device, stamps);
const usPerRep = (steps, reps) => timer((pass, r) => {
  for (const [pipeline, group, workgroups] of steps(r)) { pass.setPipeline(pipeline); pass.setBindGroup(0, group); pass.dispatchWorkgroups(workgroups); }
}, reps);

for (const name of shapes) {
  const { N, K } = ALL_SHAPES[name];
  const windowBytes = Math.ceil(N * K * 2 / 256) * 256;
  const windows = Math.max(2, Math.min(REPS + 1, Math.ceil(TOTAL / windowBytes)));
  const w = buffer(windows * windowBytes, S | COPY_DST);
  // pseudo-random halves of magnitude 0.5 to 1, one 16 MiB pattern written over and over
  const pattern = Uint16Array.from({ length: 8 * 2 ** 20 }, (_, i) => 0x3800 | (Math.imul(i, 2654435761) >>> 20 & 0x83ff));
  for (let off = 0; off < windows * windowBytes; off += pattern.byteLength) {
    device.queue.writeBuffer(w, off, pattern, 0, Math.min(pattern.length, (windows * windowBytes - off) / 2));
  }
  const x0 = buffer(K * 4, S | COPY_DST), x = buffer(K * 4, S | COPY_DST);
  const input = Float32Array.from({ length: K }, (_, i) => Math.sin(i * 0.37));
  device.queue.writeBuffer(x0, 0, input);
  device.queue.writeBuffer(x, 0, input);  // the GEMV alone reads it as the stand-in leaves it
  const y = buffer(N * 4, S | COPY_SRC), sink = buffer(16, S);
  const win = (i) => ({ buffer: w, offset: (i % windows) * windowBytes, size: windowBytes });
  const gp = pipelineOf(gemv(N, K));
  const gemvGroups = Array.from({ length: windows }, (_, i) => groupOf(gp, [x, win(i), y]));
  const G = Math.ceil(N / 8);
  const gemvAlone = await usPerRep((r) => [[gp, gemvGroups[r % windows], G]], REPS);
  // the GEMV's outputs for the last window it read, against the same sums in f64
  const { relErr } = await (async () => {
    const got = await readFloats(device, y, N);
    const first = ((REPS - 1) % windows) * windowBytes / 2;
    let diff = 0, big = 0;
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let k = 0; k < K; k++) sum += half(pattern[(first + n * K + k) % pattern.length]) * Math.fround(Math.sin(k * 0.37));
      diff = Math.max(diff, Math.abs(got[n] - sum)); big = Math.max(big, Math.abs(sum));
    }
    return { relErr: big > 0 ? diff / big : diff };
  })();
  for (const spin of SPINS) {
    const sp = pipelineOf(standIn(K, spin));
    const standGroups = Array.from({ length: windows }, (_, i) => groupOf(sp, [x0, x, win(i), sink]));
    const base = { shape: name, N, K, weight_mb: +(N * K * 2 / 1e6).toFixed(2), windows, spin };
    const standAlone = await usPerRep((r) => [[sp, standGroups[r % windows], ATT_GROUPS]], REPS);
    console.log(JSON.stringify({ ...base, gemv_alone_us: +gemvAlone.toFixed(2), stand_in_alone_us: +standAlone.toFixed(2),
      gemv_tbs: +(N * K * 2 / gemvAlone / 1e6).toFixed(3), gemv_rel_err: relErr }));
    for (const pf of PFS) {
      // pair r: the stand-in prefetches window r (the GEMV's), then the GEMV reads window r
      const us = await usPerRep((r) => [[sp, standGroups[r % windows], ATT_GROUPS + pf], [gp, gemvGroups[r % windows], G]], REPS);
      console.log(JSON.stringify({ ...base, prefetch_groups: pf, pair_us: +us.toFixed(2) }));
    }
  }
  w.destroy(); x0.destroy(); x.destroy(); y.destroy(); sink.destroy();
}
process.exit(0);
