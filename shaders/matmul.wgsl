// matmul.wgsl — Y = epilogue(X @ W + b), the projections of a GPT-2 block (HF Conv1D layout).
// Entry points over the same bindings:
//   matmul_tiled  prefill: many rows; 64x64 output tiles, K in steps of 16 through workgroup
//                 memory, the next step's loads issued before this step's math; 256 invocations
//                 as 16x16, each computing 4 rows x 4 columns. With SPLIT_K > 1 workgroup z
//                 covers k in [z * SPLIT_KS, (z + 1) * SPLIT_KS) and writes its partial sums to y
//                 as scratch [SPLIT_K, rows, N]; matmul_split_k_sum adds them up (a long K, the
//                 MLP's 3072-deep projection, otherwise runs one long serial loop per tile).
//                 Dispatch (ceil(N / 64), ceil(rows / 64), SPLIT_K).
//   matmul_split_k_sum  Y = epilogue(sum of the partial sums + b); see below.
//   matmul_rows   prefill on CPU adapters: no workgroup memory, no barriers (see below).
//   gemv          decode: one row; each weight is read once. A workgroup owns GEMV_COLS4 packs
//                 (4 columns each) and splits K over GEMV_SLICES = 256 / GEMV_COLS4 invocations,
//                 then reduces them in a tree (GEMV_COLS4, a power of two: 2 for the wide
//                 projections and 1 for those with N = n_embd on a GPU; 256 on a CPU adapter: no
//                 reduction).
//                 Optionally normalizes the input row first (LN_INPUT: LayerNorm fused into the
//                 projection, saving a dispatch and a buffer round trip per LayerNorm), or
//                 merges the blocks of the split decode attention (ATT_INPUT: x holds
//                 attention.wgsl attention_split's per-block results, [NH, ATT_SPLITS, HD + 2]).
//                 Dispatch (GEMV_GROUPS, 1, 1): the workgroups stride over the ceil(N4 / 16)
//                 column blocks (GEMV_GROUPS = all of them on a GPU, a few on a CPU adapter).
// Layout: X f32 [rows, K]; W [K, N] as WPack (N4 = N / 4 packs per row); b f32 [N];
//   Y f32, see the epilogues; kv f32 [2, NH, N_CTX, HD] (this layer's K and V caches).
// Epilogues (constant EPILOGUE, named in app/contract.py EPILOGUES):
//   0 store          Y[r, c] = v                     (Y is [rows, N])
//   1 gelu_tanh      Y[r, c] = gelu_new(v)           (GPT-2's tanh approximation)
//   2 gelu_erf       Y[r, c] = gelu(v)               (exact erf form)
//   3 residual       Y[r, c] += v                    (Y is the residual stream)
//   4 qkv            columns [0, C) -> Y[r, c] (Y is [rows, C]); [C, 2C) -> K cache and
//                    [2C, 3C) -> V cache at position pos0 + r, head-major
// Constants:
//   K: u32           inner dimension (a multiple of 4: the CPU GEMV reads 4 rows per step)
//   N: u32           output columns
//   N4: u32          N / 4
//   EPILOGUE: u32    see above
//   C: u32           n_embd (the qkv epilogue's part width)
//   NH: u32          heads (qkv epilogue)
//   HD: u32          head size (qkv epilogue)
//   N_CTX: u32       KV cache positions (qkv epilogue)
//   LN_INPUT: bool   gemv: normalize the input row first (LayerNorm with ln_gamma, ln_beta, EPS)
//   ATT_INPUT: bool  gemv: the input is the split attention's blocks, merged on the way in
//   ATT_SPLITS: u32  blocks of the split attention (ceil(N_CTX / ATT_BLOCK))
//   EPS: f32         LayerNorm epsilon (LN_INPUT)
//   GEMV_COLS4: u32  gemv: column packs per workgroup (a power of two)
//   GEMV_GROUPS: u32 gemv: workgroups
//   XN_LEN: u32      gemv: length of the normalized input row (K with LN_INPUT or ATT_INPUT, else 1)
//   SPLIT_K: u32     matmul_tiled: K splits (1: none)
//   SPLIT_KS: u32    matmul_tiled: k per split, a multiple of 16
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<WPack>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> kv: array<f32>;
@group(0) @binding(6) var<storage, read> ln_gamma: array<f32>;
@group(0) @binding(7) var<storage, read> ln_beta: array<f32>;

fn gelu_tanh(v: f32) -> f32 {
  // x * x * x, not pow(x, 3.0): pow is undefined for negative bases in WGSL.
  let inner = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
  return 0.5 * v * (1.0 + tanh(inner));
}

fn erf_approx(z: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: WGSL has no erf.
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(z) * (1.0 - poly * exp(-a * a));
}

fn gelu_erf(v: f32) -> f32 { return 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)); }

fn store(r: u32, c: u32, v: f32) {
  if (EPILOGUE == 0u) { y[r * N + c] = v; }
  if (EPILOGUE == 1u) { y[r * N + c] = gelu_tanh(v); }
  if (EPILOGUE == 2u) { y[r * N + c] = gelu_erf(v); }
  if (EPILOGUE == 3u) { y[r * N + c] = y[r * N + c] + v; }
  if (EPILOGUE == 4u) {
    let part = c / C;
    let within = c % C;
    if (part == 0u) {
      y[r * C + within] = v;
    } else {
      let head = within / HD;
      let d = within % HD;
      let pos = step.pos0 + r;
      kv[(((part - 1u) * NH + head) * N_CTX + pos) * HD + d] = v;
    }
  }
}

fn store4(r: u32, c4: u32, v: vec4<f32>) {
  let c = c4 * 4u;
  store(r, c, v.x);
  store(r, c + 1u, v.y);
  store(r, c + 2u, v.z);
  store(r, c + 3u, v.w);
}

// ---------------------------------------------------------------------------------- prefill
var<workgroup> a_tile: array<array<vec4<f32>, 16>, 16>;  // [k][group of 4 rows]
var<workgroup> b_tile: array<array<vec4<f32>, 16>, 16>;  // [k][col pack]

@compute @workgroup_size(256)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let rows = step.rows;
  let tx = lid % 16u;   // column pack within the tile
  let ty = lid / 16u;   // group of 4 rows within the tile
  let m0 = wid.y * 64u;
  let n0 = wid.x * 16u; // in packs
  // Split K: workgroup z sums k in [k_begin, k_end) only (SPLIT_K = 1: all of K).
  let k_begin = wid.z * SPLIT_KS;
  let k_end = min(K, k_begin + SPLIT_KS);
  // What this invocation loads: A row ar, 4 consecutive k from ak; B row bk, column pack bc.
  let ar = lid / 4u;
  let ak = (lid % 4u) * 4u;
  let bk = lid / 16u;
  let bc = lid % 16u;
  var a_next = vec4<f32>(0.0);
  var b_next = vec4<f32>(0.0);
  if (k_begin < k_end) {
    a_next = load_a(m0 + ar, k_begin + ak, k_end, rows);
    b_next = load_b(k_begin + bk, n0 + bc, k_end);
  }
  var acc: array<vec4<f32>, 4>;
  for (var k0 = k_begin; k0 < k_end; k0 += 16u) {
    // A tile stored so that one vec4 load in the inner loop gives 4 rows (two workgroup loads
    // per 16 multiply-adds).
    a_tile[ak][ar / 4u][ar % 4u] = a_next.x;
    a_tile[ak + 1u][ar / 4u][ar % 4u] = a_next.y;
    a_tile[ak + 2u][ar / 4u][ar % 4u] = a_next.z;
    a_tile[ak + 3u][ar / 4u][ar % 4u] = a_next.w;
    b_tile[bk][bc] = b_next;
    workgroupBarrier();
    // Fetch the next tile into registers now, so its memory latency overlaps this tile's math.
    if (k0 + 16u < k_end) {
      a_next = load_a(m0 + ar, k0 + 16u + ak, k_end, rows);
      b_next = load_b(k0 + 16u + bk, n0 + bc, k_end);
    }
    for (var kk = 0u; kk < 16u; kk++) {
      let bv = b_tile[kk][tx];
      let av = a_tile[kk][ty];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  let c4 = n0 + tx;
  if (c4 >= N4) { return; }
  for (var i = 0u; i < 4u; i++) {
    let r = m0 + ty * 4u + i;
    if (r >= rows) { continue; }
    if (SPLIT_K == 1u) {
      store4(r, c4, acc[i] + bias[c4]);
    } else {  // a partial sum, to y as scratch [SPLIT_K, rows, N]; matmul_split_k_sum finishes
      let o = ((wid.z * rows + r) * N4 + c4) * 4u;
      y[o] = acc[i].x;
      y[o + 1u] = acc[i].y;
      y[o + 2u] = acc[i].z;
      y[o + 3u] = acc[i].w;
    }
  }
}

fn load_a(r: u32, k: u32, k_end: u32, rows: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (r < rows) {
    let base = r * K;
    if (k < k_end) { v.x = x[base + k]; }
    if (k + 1u < k_end) { v.y = x[base + k + 1u]; }
    if (k + 2u < k_end) { v.z = x[base + k + 2u]; }
    if (k + 3u < k_end) { v.w = x[base + k + 3u]; }
  }
  return v;
}

fn load_b(k: u32, c4: u32, k_end: u32) -> vec4<f32> {
  if (k < k_end && c4 < N4) { return unpack4(w[k * N4 + c4]); }
  return vec4<f32>(0.0);
}

// matmul_split_k_sum: the second half of a split-K matmul_tiled: Y = epilogue(sum of the SPLIT_K
// partial sums + b), with the partial sums bound as x ([SPLIT_K, rows, N]). One invocation per
// column pack and row: dispatch (ceil(N4 / 64), rows, 1).
@compute @workgroup_size(64)
fn matmul_split_k_sum(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c4 = gid.x;
  let r = gid.y;
  let rows = step.rows;
  if (c4 >= N4 || r >= rows) { return; }
  var v = bias[c4];
  for (var s = 0u; s < SPLIT_K; s++) {
    let o = ((s * rows + r) * N4 + c4) * 4u;
    v += vec4<f32>(x[o], x[o + 1u], x[o + 2u], x[o + 3u]);
  }
  store4(r, c4, v);
}

// matmul_rows: prefill for CPU adapters, without workgroup memory or barriers: invocation
// (c4, rb) computes column pack c4 of rows 4rb..4rb+3, reading each weight pack once for 4 rows.
// Dispatch (ceil(N4 / 64), ceil(rows / 4), 1).
@compute @workgroup_size(64)
fn matmul_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c4 = gid.x;
  let r0 = gid.y * 4u;
  let rows = step.rows;
  if (c4 >= N4 || r0 >= rows) { return; }
  let n = min(4u, rows - r0);
  if (n == 4u) {
    // Four full rows: named accumulators (SwiftShader keeps an indexed array in memory) and four
    // rows of W per iteration (a quarter of the loop overhead, which dominates in its JIT code).
    let x0 = r0 * K;
    let x1 = x0 + K;
    let x2 = x1 + K;
    let x3 = x2 + K;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var k = 0u;
    for (; k + 4u <= K; k += 4u) {
      let i = k * N4 + c4;
      let w0 = unpack4(w[i]);
      let w1 = unpack4(w[i + N4]);
      let w2 = unpack4(w[i + 2u * N4]);
      let w3 = unpack4(w[i + 3u * N4]);
      a0 += x[x0 + k] * w0 + x[x0 + k + 1u] * w1 + x[x0 + k + 2u] * w2 + x[x0 + k + 3u] * w3;
      a1 += x[x1 + k] * w0 + x[x1 + k + 1u] * w1 + x[x1 + k + 2u] * w2 + x[x1 + k + 3u] * w3;
      a2 += x[x2 + k] * w0 + x[x2 + k + 1u] * w1 + x[x2 + k + 2u] * w2 + x[x2 + k + 3u] * w3;
      a3 += x[x3 + k] * w0 + x[x3 + k + 1u] * w1 + x[x3 + k + 2u] * w2 + x[x3 + k + 3u] * w3;
    }
    for (; k < K; k++) {
      let wv = unpack4(w[k * N4 + c4]);
      a0 += x[x0 + k] * wv;
      a1 += x[x1 + k] * wv;
      a2 += x[x2 + k] * wv;
      a3 += x[x3 + k] * wv;
    }
    let b = bias[c4];
    store4(r0, c4, a0 + b);
    store4(r0 + 1u, c4, a1 + b);
    store4(r0 + 2u, c4, a2 + b);
    store4(r0 + 3u, c4, a3 + b);
    return;
  }
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < K; k++) {
    let wv = unpack4(w[k * N4 + c4]);
    for (var i = 0u; i < n; i++) { acc[i] += x[(r0 + i) * K + k] * wv; }
  }
  for (var i = 0u; i < n; i++) { store4(r0 + i, c4, acc[i] + bias[c4]); }
}

// ---------------------------------------------------------------------------------- decode
const GEMV_SLICES: u32 = 256u / GEMV_COLS4;
const_assert GEMV_COLS4 * GEMV_SLICES == 256u && (GEMV_SLICES & (GEMV_SLICES - 1u)) == 0u;  // a power of two
const GEMV_BLOCKS: u32 = (N4 + GEMV_COLS4 - 1u) / GEMV_COLS4;
var<workgroup> gemv_partial: array<vec4<f32>, 256>;
var<workgroup> x_norm: array<f32, XN_LEN>;  // the input row, normalized (LN_INPUT) or merged (ATT_INPUT)
const XN_INPUT: bool = LN_INPUT || ATT_INPUT;

@compute @workgroup_size(256)
fn gemv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  if (LN_INPUT) {
    var s = 0.0;
    for (var i = lid; i < K; i += 256u) { s += x[i]; }
    let mean = workgroup_sum(lid, s) / f32(K);
    var q = 0.0;
    for (var i = lid; i < K; i += 256u) { let d = x[i] - mean; q += d * d; }
    let rstd = inverseSqrt(workgroup_sum(lid, q) / f32(K) + EPS);
    for (var i = lid; i < K; i += 256u) { x_norm[i] = (x[i] - mean) * rstd * ln_gamma[i] + ln_beta[i]; }
    workgroupBarrier();
  }
  if (ATT_INPUT) {
    // Every workgroup merges the attention blocks itself (a few KB from cache) instead of paying
    // a dispatch for it: input column i is head i / HD, dimension i % HD.
    let splits = (step.pos0 + ATT_BLOCK) / ATT_BLOCK;  // blocks holding positions 0..pos0
    for (var i = lid; i < K; i += 256u) {
      let base = (i / HD) * ATT_SPLITS * (HD + 2u);
      let d = i % HD;
      var m = NEG_INF;
      for (var s = 0u; s < splits; s++) { m = max(m, x[base + s * (HD + 2u) + HD]); }
      var l = 0.0;
      var a = 0.0;
      for (var s = 0u; s < splits; s++) {
        let o = base + s * (HD + 2u);
        let e = exp(x[o + HD] - m);
        l += e * x[o + HD + 1u];
        a += e * x[o + d];
      }
      x_norm[i] = a / l;
    }
    workgroupBarrier();
  }
  // GEMV_GROUPS workgroups walk the column blocks: one block each on a GPU, many on a CPU
  // adapter, where every extra workgroup costs far more than the loop.
  for (var blk = wid.x; blk < GEMV_BLOCKS; blk += GEMV_GROUPS) {
    let c4 = blk * GEMV_COLS4 + lid % GEMV_COLS4;
    let slice = lid / GEMV_COLS4;
    var acc = vec4<f32>(0.0);
    if (c4 < N4 && GEMV_SLICES == 1u) {
      // CPU adapters: four rows of W per iteration (K is a multiple of 4), a quarter of the loop
      // overhead, which dominates in SwiftShader's JIT code.
      for (var k = 0u; k < K; k += 4u) {
        var xv: vec4<f32>;
        if (XN_INPUT) { xv = vec4<f32>(x_norm[k], x_norm[k + 1u], x_norm[k + 2u], x_norm[k + 3u]); }
        else { xv = vec4<f32>(x[k], x[k + 1u], x[k + 2u], x[k + 3u]); }
        let i = k * N4 + c4;
        acc += xv.x * unpack4(w[i]) + xv.y * unpack4(w[i + N4]) + xv.z * unpack4(w[i + 2u * N4])
             + xv.w * unpack4(w[i + 3u * N4]);
      }
    } else if (c4 < N4) {
      for (var k = slice; k < K; k += GEMV_SLICES) {
        var xv: f32;
        if (XN_INPUT) { xv = x_norm[k]; } else { xv = x[k]; }
        acc += xv * unpack4(w[k * N4 + c4]);
      }
    }
    if (GEMV_SLICES == 1u) {  // one invocation per column pack: nothing to reduce, no barrier
      if (c4 < N4) { store4(0u, c4, acc + bias[c4]); }
      continue;
    }
    // Tree reduction over the slices (log2 steps, not one invocation summing GEMV_SLICES values).
    gemv_partial[lid] = acc;
    workgroupBarrier();
    for (var half = GEMV_SLICES / 2u; half > 0u; half = half >> 1u) {
      if (slice < half) { gemv_partial[lid] += gemv_partial[lid + half * GEMV_COLS4]; }
      workgroupBarrier();
    }
    if (slice == 0u && c4 < N4) { store4(0u, c4, gemv_partial[lid] + bias[c4]); }
    workgroupBarrier();
  }
}
