#!/usr/bin/env node
// A design probe for the Q4_0 decode GEMV: candidate layouts timed side by side on one adapter, on
// Llama-1B's decode shapes, before any of them goes into shaders/linear.wgsl. It is not product code:
// each variant is a compact replica (RMSNorm prologue or a plain input, the swiglu epilogue for
// gate|up), written here so that one device call can compare many layouts.
//   stream  the layout linear.wgsl runs today (gemv_row_q4_0): 32 lanes to a row, a word of nibbles
//           per lane per group of 8 blocks, GEMV_ROWS rows a workgroup, a tree (or subgroup) reduction
//   blocks  a lane takes whole blocks (one 16-byte load of nibbles and its scale word), L lanes to a
//           row (256 / L rows a workgroup)
// Options of either layout: `early` (the first loads issued before the norm prologue), `defer` (no
// normalized copy of the input: x * norm_w read as it goes, rstd applied to the dot products at the
// end), reduce `subgroup` (subgroupShuffleXor / subgroupAdd where subgroups are 32 wide), `unroll`.
// decode: `shift` (each nibble shifted down, as before 2026-12-04 night), `inplace` (common.wgsl
// nibble_halves, what the product does now), `bytes` (loads only: the layout's memory floor).
// Prints one JSON line per (shape, variant): us per dispatch in a chain of dispatches in one compute
// pass (GPU timestamps where the adapter has them), TB/s of weights, and the largest difference from
// the first variant's outputs relative to their largest magnitude (rel_err; every non-`bytes`
// variant computes the same sums in a different order, so it stays at float rounding).
// Run: on the H200, `source .gpu-carry/on-device.sh && node tools/q4_gemv_probe.mjs`; on SwiftShader,
// LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
// Environment: SHAPES (gate_up,qkv,o,down), VARIANTS (a JSON list of {name, layout, ...}), REPS.
// On the H200 one process running every variant once died inside Dawn (a glibc assertion in
// __pthread_tpp_change_priority) after ~30 variants: run each (shape, variant) in its own process,
// e.g. `VARIANTS='[{"name":"blocks64_r2","layout":"blocks","L":64,"R":2}]' SHAPES=qkv node ...`.
// tests/test_probes.py runs every default variant on a small shape on SwiftShader.
import { openDevice, passTimer, readFloats } from './gpu_probe.mjs';

const { device, subgroups, stamps } = await openDevice({ subgroups: true });
let deviceError = null;
device.addEventListener?.('uncapturederror', (e) => { deviceError = e.error.message; });

const REPS = Number(process.env.REPS || 100);
const SHAPES = {
  gate_up: { N: 8192, K: 2048, swiglu: true, prep: true },
  qkv: { N: 3072, K: 2048, swiglu: false, prep: true },
  o: { N: 2048, K: 2048, swiglu: false, prep: true },
  down: { N: 2048, K: 8192, swiglu: false, prep: false },
  small_gate_up: { N: 64, K: 2048, swiglu: true, prep: true },
  small_down: { N: 32, K: 8192, swiglu: false, prep: false },
};
const DEFAULT_VARIANTS = [
  { name: 'stream_shift', layout: 'stream', decode: 'shift' },
  { name: 'stream', layout: 'stream' },
  { name: 'stream_sg', layout: 'stream', reduce: 'subgroup' },
  { name: 'stream_early', layout: 'stream', early: true },
  { name: 'stream_defer', layout: 'stream', defer: true },
  { name: 'stream_defer_sg', layout: 'stream', defer: true, reduce: 'subgroup' },
  { name: 'stream_bytes', layout: 'stream', decode: 'bytes' },
  ...[8, 16, 32, 64].flatMap((L) => [
    { name: `blocks${L}`, layout: 'blocks', L },
    { name: `blocks${L}_early`, layout: 'blocks', L, early: true },
    { name: `blocks${L}_defer`, layout: 'blocks', L, defer: true },
    { name: `blocks${L}_defer_sg`, layout: 'blocks', L, defer: true, reduce: 'subgroup' },
    { name: `blocks${L}_bytes`, layout: 'blocks', L, early: true, decode: 'bytes' },
  ]),
  ...[8, 16, 32].flatMap((L) => [2, 4].flatMap((R) => [
    { name: `blocks${L}_r${R}_defer`, layout: 'blocks', L, R, defer: true },
    { name: `blocks${L}_r${R}_defer_sg`, layout: 'blocks', L, R, defer: true, reduce: 'subgroup' },
    { name: `blocks${L}_r${R}`, layout: 'blocks', L, R },
  ])),
];
const shapeNames = (process.env.SHAPES || 'gate_up,qkv,o,down').split(',');
const variants = process.env.VARIANTS ? JSON.parse(process.env.VARIANTS) : DEFAULT_VARIANTS;

// ------------------------------------------------------------------------------------ WGSL pieces
const COMMON = `
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
var<workgroup> red: array<f32, 256>;
var<workgroup> red16: array<f32, 16>;
var<workgroup> partial: array<vec2<f32>, 256>;
fn wsum(lid: u32, v: f32) -> f32 {
  red[lid] = v; workgroupBarrier();
  if (lid < 16u) { var s = 0.0; for (var i = 0u; i < 16u; i++) { s += red[lid * 16u + i]; } red16[lid] = s; }
  workgroupBarrier();
  var t = 0.0; for (var i = 0u; i < 16u; i++) { t += red16[i]; } return t;
}
fn f16_value(h: u32) -> f32 {
  let v = unpack2x16float(h & 0xffffu).x;
  let m = h & 0x3ffu;
  let sub = (bitcast<f32>(m | 0x4b000000u) - 8388608.0) * 5.9604644775390625e-8;
  return select(v, select(sub, -sub, (h & 0x8000u) != 0u), (h & 0x7c00u) == 0u);
}
fn block_scale(j: u32, word: u32) -> f32 { return f16_value(select(word & 0xffffu, word >> 16u, (j & 1u) != 0u)); }
fn levels_shift(q: u32, shift: u32) -> vec4<f32> {
  let n = (vec4<u32>(q >> shift) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xfu);
  return bitcast<vec4<f32>>(n | vec4<u32>(0x4b000000u)) - vec4<f32>(8388616.0);
}
const LOW_MASK = vec4<u32>(0xfu, 0xf00u, 0xfu, 0xf00u);
const LOW_BITS = vec4<u32>(0x4b000000u, 0x47000000u, 0x4b000000u, 0x47000000u);
const LOW_BASE = vec4<f32>(8388616.0, 32776.0, 8388616.0, 32776.0);
const HIGH_MASK = vec4<u32>(0xf0u, 0xf000u, 0xf0u, 0xf000u);
const HIGH_BITS = vec4<u32>(0x49000000u, 0x45000000u, 0x49000000u, 0x45000000u);
const HIGH_BASE = vec4<f32>(524296.0, 2056.0, 524296.0, 2056.0);
// word q's 8 weights (low nibbles: x0's elements, high nibbles: x1's) dotted with x0 and x1, unscaled
fn word_dot_inplace(q: u32, x0: vec4<f32>, x1: vec4<f32>) -> vec4<f32> {
  let v = vec4<u32>(q, q, q >> 16u, q >> 16u);
  return x0 * (bitcast<vec4<f32>>((v & LOW_MASK) | LOW_BITS) - LOW_BASE)
       + x1 * (bitcast<vec4<f32>>((v & HIGH_MASK) | HIGH_BITS) - HIGH_BASE);
}
fn word_dot_shift(q: u32, x0: vec4<f32>, x1: vec4<f32>) -> vec4<f32> { return x0 * levels_shift(q, 0u) + x1 * levels_shift(q, 4u); }
`;

const header = (s, v, rows) => `${v.reduce === 'subgroup' ? 'enable subgroups;' : ''}
const K: u32 = ${s.K}u; const K4: u32 = K / 4u; const KB: u32 = K / 32u; const N: u32 = ${s.N}u;
const ROWS: u32 = ${rows}u; const LANES: u32 = ${256 / rows}u; const SWIGLU: bool = ${s.swiglu};
const GROUPS: u32 = KB / 8u;
${COMMON}`;

// The norm prologue (RMSNorm of x into x_prep, or with `defer` only rstd) and the input reads.
function prologue(s, v) {
  const prep = s.prep && !v.noprep;
  const defer = prep && !!v.defer;
  return {
    decl: `${prep ? '@group(0) @binding(3) var<storage, read> norm_w: array<vec4<f32>>;' : ''}
var<workgroup> x_prep: array<vec4<f32>, ${prep && !defer ? 'K4' : '1'}>;
fn input4(p: u32) -> vec4<f32> { ${defer ? 'return x[p] * norm_w[p];' : prep ? 'return x_prep[p];' : 'return x[p];'} }`,
    body: prep ? `
  var q = 0.0;
  for (var p = lid; p < K4; p += 256u) { let v = x[p]; q += dot(v, v); }
  rstd = inverseSqrt(wsum(lid, q) / f32(K) + 1e-5);
  ${defer ? '' : `for (var p = lid; p < K4; p += 256u) { x_prep[p] = x[p] * rstd * norm_w[p]; }
  workgroupBarrier();
  rstd = 1.0;`}` : '',
  };
}

// Row sums of `acc` over the LANES lanes of a row, and the store by its first lane.
function reduction(v) {
  if (v.reduce === 'subgroup') {
    return `
  if (LANES <= 32u) {
    for (var m = LANES / 2u; m > 0u; m = m >> 1u) { acc += subgroupShuffleXor(acc, m); }
    if (lane == 0u && real) { emit(c, acc); }
  } else {
    acc = subgroupAdd(acc);
    if (sid == 0u) { partial[lid / 32u] = acc; }
    workgroupBarrier();
    if (lane == 0u && real) { var t = vec2<f32>(0.0); for (var i = 0u; i < LANES / 32u; i++) { t += partial[lid / 32u + i]; } emit(c, t); }
  }`;
  }
  return `
  partial[lid] = acc;
  workgroupBarrier();
  for (var half = LANES / 2u; half > 0u; half = half >> 1u) {
    if (lane < half) { partial[lid] += partial[lid + half]; }
    workgroupBarrier();
  }
  if (lane == 0u && real) { emit(c, partial[lid]); }`;
}

const entry = (v, body) => `
fn emit(c: u32, a: vec2<f32>) { if (SWIGLU) { y[c] = a.x / (1.0 + exp(-a.x)) * a.y; } else { y[c] = a.x; } }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32${v.reduce === 'subgroup' ? ', @builtin(subgroup_invocation_id) sid: u32' : ''}) {
  let lane = lid % LANES;
  let real = wid.x * ROWS + lid / LANES < N;
  let c = min(wid.x * ROWS + lid / LANES, N - 1u);
  var rstd = 1.0;
${body}
}`;

const wordDot = (v) => (v.decode === 'shift' ? 'word_dot_shift' : 'word_dot_inplace');

// linear.wgsl's Q4_0_STREAM layout: lane l % 32 takes word l % 32 of each group (block l / 4's word l % 4).
function streamKernel(s, v) {
  const rows = v.rows ?? (s.K > 2048 && !s.prep ? 4 : 8);
  const U = v.unroll ?? 8;
  const pro = prologue(s, v);
  const early = !!(v.early || v.defer);
  const dot = v.decode === 'bytes' ? 'vec4<f32>(bitcast<f32>(q ^ sw)) * x0.x' : `${wordDot(v)}(q, x0, x1) * block_scale(j, sw)`;
  return `${header(s, v, rows)}
@group(0) @binding(1) var<storage, read> w: array<u32>;
${pro.decl}
const U: u32 = ${U}u; const WARPS: u32 = max(LANES / 32u, 1u); const STEPS: u32 = GROUPS / WARPS;
fn seg(b: u32, s: u32, j: u32, sw: u32, q: u32) -> vec4<f32> {
  let x0 = input4(8u * b + s);
  let x1 = input4(8u * b + 4u + s);
  return ${dot};
}
struct Loads { qa: array<u32, U>, sa: array<u32, U>, qb: array<u32, U>, sb: array<u32, U> }
fn fetch(c: u32, lane: u32, m: u32) -> Loads {
  var o: Loads;
  let l = lane % 32u; let t0 = lane / 32u; let j = l / 4u;
  for (var u = 0u; u < U; u++) {
    if (m + u < STEPS) {
      let oa = (c * GROUPS + (m + u) * WARPS + t0) * 36u;
      o.qa[u] = w[oa + 4u + l]; o.sa[u] = w[oa + j / 2u];
      if (SWIGLU) { let ob = ((N + c) * GROUPS + (m + u) * WARPS + t0) * 36u; o.qb[u] = w[ob + 4u + l]; o.sb[u] = w[ob + j / 2u]; }
    }
  }
  return o;
}
${entry(v, `  ${early ? 'var ld = fetch(c, lane, 0u);' : ''}${pro.body}
  let l = lane % 32u; let t0 = lane / 32u; let j = l / 4u; let sg = l % 4u;
  var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0);
  for (var m = 0u; m < STEPS; m += U) {
    ${early ? 'if (m > 0u) { ld = fetch(c, lane, m); }' : 'let ld = fetch(c, lane, m);'}
    for (var u = 0u; u < U; u++) {
      if (m + u < STEPS) {
        let b = 8u * ((m + u) * WARPS + t0) + j;
        s0 += seg(b, sg, j, ld.sa[u], ld.qa[u]);
        if (SWIGLU) { s1 += seg(b, sg, j, ld.sb[u], ld.qb[u]); }
      }
    }
  }
  var acc = vec2<f32>(s0.x + s0.y + s0.z + s0.w, s1.x + s1.y + s1.z + s1.w) * rstd;
${reduction(v)}`)}`;
}

// A lane per block: block b of a row is group b / 8's 16-byte slot 1 + b % 8 (scales in slot 0).
function blocksKernel(s, v) {
  const L = v.L;
  const per = s.K / 32 / L;  // blocks per lane per row
  const U = Math.min(v.unroll ?? 8, per);
  const pro = prologue(s, v);
  const early = !!(v.early || v.defer);
  const dot = v.decode === 'bytes' ? 'return vec4<f32>(bitcast<f32>(q.x ^ q.y ^ q.z ^ q.w ^ sw)) * input4(8u * b).x;' : `
  var s = ${wordDot(v)}(q.x, input4(8u * b), input4(8u * b + 4u));
  s += ${wordDot(v)}(q.y, input4(8u * b + 1u), input4(8u * b + 5u));
  s += ${wordDot(v)}(q.z, input4(8u * b + 2u), input4(8u * b + 6u));
  s += ${wordDot(v)}(q.w, input4(8u * b + 3u), input4(8u * b + 7u));
  return s * block_scale(b & 7u, sw);`;
  return `${header(s, v, 256 / L)}
@group(0) @binding(1) var<storage, read> w4: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> w: array<u32>;
${pro.decl}
const U: u32 = ${U}u; const PER: u32 = ${per}u;
fn block_dot(b: u32, sw: u32, q: vec4<u32>) -> vec4<f32> {${dot}
}
struct Loads { qa: array<vec4<u32>, U>, sa: array<u32, U>, qb: array<vec4<u32>, U>, sb: array<u32, U> }
fn fetch(c: u32, lane: u32, i0: u32) -> Loads {
  var o: Loads;
  for (var u = 0u; u < U; u++) {
    let b = lane + (i0 + u) * LANES;
    let ga = c * GROUPS + b / 8u;
    o.qa[u] = w4[ga * 9u + 1u + (b & 7u)]; o.sa[u] = w[ga * 36u + (b & 7u) / 2u];
    if (SWIGLU) { let gb = (N + c) * GROUPS + b / 8u; o.qb[u] = w4[gb * 9u + 1u + (b & 7u)]; o.sb[u] = w[gb * 36u + (b & 7u) / 2u]; }
  }
  return o;
}
${entry(v, `  ${early ? 'var ld = fetch(c, lane, 0u);' : ''}${pro.body}
  var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0);
  for (var i0 = 0u; i0 < PER; i0 += U) {
    ${early ? 'if (i0 > 0u) { ld = fetch(c, lane, i0); }' : 'let ld = fetch(c, lane, i0);'}
    for (var u = 0u; u < U; u++) {
      let b = lane + (i0 + u) * LANES;
      s0 += block_dot(b, ld.sa[u], ld.qa[u]);
      if (SWIGLU) { s1 += block_dot(b, ld.sb[u], ld.qb[u]); }
    }
  }
  var acc = vec2<f32>(s0.x + s0.y + s0.z + s0.w, s1.x + s1.y + s1.z + s1.w) * rstd;
${reduction(v)}`)}`;
}

// A lane per block of R rows at once: the block's 32 inputs are read once for R rows (for gate|up,
// R gate rows and their R up rows), so input reads per weight fall R times. 256 / L lanes-groups a
// workgroup, each R consecutive rows.
function blocksRowsKernel(s, v) {
  const L = v.L, R = v.R;
  const per = s.K / 32 / L;
  const U = Math.min(v.unroll ?? 2, per);
  const pro = prologue(s, v);
  const early = !!(v.early || v.defer);
  const M = s.swiglu ? 2 * R : R;  // rows a lane reads per block
  const dot = v.decode === 'bytes' ? 'return vec4<f32>(bitcast<f32>(q.x ^ q.y ^ q.z ^ q.w ^ sw)) * xs[0].x;' : `
  var s = ${wordDot(v)}(q.x, xs[0], xs[4]);
  s += ${wordDot(v)}(q.y, xs[1], xs[5]);
  s += ${wordDot(v)}(q.z, xs[2], xs[6]);
  s += ${wordDot(v)}(q.w, xs[3], xs[7]);
  return s * block_scale(b & 7u, sw);`;
  return `${header(s, v, 256 / L)}
@group(0) @binding(1) var<storage, read> w4: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> w: array<u32>;
${pro.decl}
const U: u32 = ${U}u; const PER: u32 = ${per}u; const R: u32 = ${R}u; const M: u32 = ${M}u;
fn block_dot(b: u32, sw: u32, q: vec4<u32>, xs: array<vec4<f32>, 8>) -> vec4<f32> {${dot}
}
fn row_of(base: u32, m: u32) -> u32 { return select(min(base + m, N - 1u), N + min(base + m - R, N - 1u), m >= R); }
fn emit(c: u32, a: vec2<f32>) { if (SWIGLU) { y[c] = a.x / (1.0 + exp(-a.x)) * a.y; } else { y[c] = a.x; } }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32${v.reduce === 'subgroup' ? ', @builtin(subgroup_invocation_id) sid: u32' : ''}) {
  let lane = lid % LANES;
  let base = (wid.x * ROWS + lid / LANES) * R;
  var rstd = 1.0;
${pro.body}
  var sums: array<vec4<f32>, M>;
  for (var i0 = 0u; i0 < PER; i0 += U) {
    var qs: array<vec4<u32>, U * M>; var ss: array<u32, U * M>;
    for (var u = 0u; u < U; u++) {
      let b = lane + (i0 + u) * LANES;
      for (var m = 0u; m < M; m++) {
        let g = row_of(base, m) * GROUPS + b / 8u;
        qs[u * M + m] = w4[g * 9u + 1u + (b & 7u)]; ss[u * M + m] = w[g * 36u + (b & 7u) / 2u];
      }
    }
    for (var u = 0u; u < U; u++) {
      let b = lane + (i0 + u) * LANES;
      var xs: array<vec4<f32>, 8>;
      for (var k = 0u; k < 8u; k++) { xs[k] = input4(8u * b + k); }
      for (var m = 0u; m < M; m++) { sums[m] += block_dot(b, ss[u * M + m], qs[u * M + m], xs); }
    }
  }
  for (var r = 0u; r < R; r++) {
    let c = min(base + r, N - 1u);
    let real = base + r < N;
    let g = sums[r];
    var up = vec4<f32>(0.0);
    if (SWIGLU) { up = sums[min(R + r, M - 1u)]; }
    var acc = vec2<f32>(g.x + g.y + g.z + g.w, up.x + up.y + up.z + up.w) * rstd;
${reduction(v)}
  }
}`;
}

// ------------------------------------------------------------------------------------ running
const FILL = `
@group(0) @binding(0) var<storage, read_write> w: array<u32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  for (var i = g.x; i < arrayLength(&w); i += n.x * 256u) {
    var h = i * 747796405u + 2891336453u; h = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u; h = (h >> 22u) ^ h;
    if (i % 36u < 4u) { h = 0x20002000u | (h & 0x83ff83ffu); if (i % 3600u == 1u) { h = h & 0x83ff83ffu; } }  // scales ~1/128, some subnormal
    w[i] = h;
  }
}`;
const S = GPUBufferUsage.STORAGE, COPY_SRC = GPUBufferUsage.COPY_SRC, COPY_DST = GPUBufferUsage.COPY_DST;
const buffer = (size, usage) => device.createBuffer({ size, usage });
const usPerRep = passTimer(device, stamps);
const usPerDispatch = (pipeline, group, workgroups, reps) => usPerRep((pass) => {
  pass.setPipeline(pipeline); pass.setBindGroup(0, group); pass.dispatchWorkgroups(workgroups);
}, reps);

for (const shapeName of shapeNames) {
  const s = SHAPES[shapeName];
  const weightBytes = (s.swiglu ? 2 : 1) * s.N * (s.K / 256) * 144;
  const w = buffer(weightBytes, S);
  const fill = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: FILL }), entryPoint: 'main' } });
  {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(fill);
    pass.setBindGroup(0, device.createBindGroup({ layout: fill.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: w } }] }));
    pass.dispatchWorkgroups(1024);
    pass.end();
    device.queue.submit([enc.finish()]);
  }
  const x = buffer(s.K * 4, S | COPY_DST);
  device.queue.writeBuffer(x, 0, Float32Array.from({ length: s.K }, (_, i) => Math.sin(i * 0.37) * 2));
  const normW = buffer(s.K * 4, S | COPY_DST);
  device.queue.writeBuffer(normW, 0, Float32Array.from({ length: s.K }, (_, i) => 1 + 0.01 * Math.cos(i)));
  let reference = null;
  for (const v of variants) {
    const out = { shape: shapeName, variant: v.name };
    const L = v.layout === 'blocks' ? v.L : 256 / (v.rows ?? (s.K > 2048 && !s.prep ? 4 : 8));
    if (v.reduce === 'subgroup' && !subgroups) { console.log(JSON.stringify({ ...out, skipped: 'no subgroups of 32' })); continue; }
    if (v.layout === 'blocks' && s.K / 32 < L) { console.log(JSON.stringify({ ...out, skipped: 'fewer blocks than lanes' })); continue; }
    deviceError = null;
    device.pushErrorScope('validation');
    const y = buffer(s.N * 4, S | COPY_SRC);
    const code = v.layout === 'blocks' ? (v.R ? blocksRowsKernel(s, v) : blocksKernel(s, v)) : streamKernel(s, v);
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
    const used = code.includes('norm_w: array');
    const entries = [[0, x], [1, w], [2, y], ...(used ? [[3, normW]] : []), ...(v.layout === 'blocks' ? [[4, w]] : [])];
    const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0),
      entries: entries.map(([binding, b]) => ({ binding, resource: { buffer: b } })) });
    const invalid = await device.popErrorScope();
    if (invalid || deviceError) { console.log(JSON.stringify({ ...out, error: (invalid && invalid.message) || deviceError })); continue; }
    try {
      const us = await usPerDispatch(pipeline, group, Math.ceil(s.N / (256 / L) / (v.R ?? 1)), REPS);
      const ys = await readFloats(device, y, s.N);
      let rel_err = null;
      if (v.decode !== 'bytes' && !v.noprep) {
        if (reference === null) reference = ys;
        let diff = 0, big = 0;
        for (let i = 0; i < s.N; i++) { diff = Math.max(diff, Math.abs(ys[i] - reference[i])); big = Math.max(big, Math.abs(reference[i])); }
        rel_err = big > 0 ? diff / big : diff;
      }
      console.log(JSON.stringify({ ...out, us: +us.toFixed(2), weight_tbs: +(weightBytes / us / 1e6).toFixed(3), rel_err }));
    } catch (e) {
      console.log(JSON.stringify({ ...out, error: e.message }));
    }
    y.destroy();
  }
  w.destroy();
}
process.exit(0);
