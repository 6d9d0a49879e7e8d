// linear.wgsl — Y = epilogue(X @ W^T + b) for nn.Linear weights, W [N, K] (one row per output): the
// projections of the Llama family (q|k|v, o, gate|up, down), as Hugging Face stores them, and GPT-2's
// (c_attn, c_proj, c_fc, mlp.c_proj: Conv1D [K, N] in the file, transposed on load by
// shaders/transpose.wgsl, so that a GEMV reads each output's weights as one contiguous row).
// Entry points over the same bindings:
//   linear_tiled  prefill: many rows; 64x64 output tiles, K in steps of 16 through workgroup memory,
//                 the next step's loads issued before this step's math; 256 invocations as 16x16,
//                 each computing 4 rows x 4 columns. Dispatch (ceil(N / 64), ceil(rows / 64), 1).
//                 With SPLIT_K > 1 workgroup z covers k in [z SPLIT_KS, (z + 1) SPLIT_KS) and writes its
//                 partial sums to y as scratch [SPLIT_K, rows, N], and linear_split_k_sum adds them up:
//                 a long K with few output tiles (GPT-2's 3072-deep, 768-wide MLP projection, Llama's
//                 down) otherwise runs one long serial loop per tile on a few of the GPU's cores.
//                 Dispatch (ceil(N / 64), ceil(rows / 64), SPLIT_K).
//   linear_split_k_sum  Y = epilogue(sum of the partial sums + b). Dispatch (ceil(N / 64), rows, 1).
//   linear_rows   prefill on CPU adapters: no workgroup memory, no barriers; invocation (cb, rb) of
//                 16 per workgroup computes output columns 4cb..4cb+3 of rows 4rb..4rb+3 (a float
//                 format: each pack of the 4 input rows and 4 weight rows loaded once for all 16; a
//                 block format: column by column, each block dequantized once for the 4 rows).
//                 Dispatch (ceil(N / 64), ceil(rows / 4), 1).
//   gemv          decode: one row, each weight read once. A workgroup owns GEMV_ROWS output rows;
//                 the 256 / GEMV_ROWS lanes of a row split K (each reading consecutive packs, so a
//                 row's reads are contiguous) and are summed in a tree (GEMV_ROWS = 256 on a CPU
//                 adapter: one invocation per row, no reduction). Optionally RMS-normalizes the
//                 input row first (RMS_INPUT, with norm_w: RMSNorm fused into the projection) or
//                 LayerNorms it (LN_INPUT, with norm_w and norm_b: GPT-2's ln_1 / ln_2), or
//                 merges the blocks of the split decode attention (ATT_INPUT: x holds
//                 attention.wgsl attention_split's per-block results, [H, ATT_SPLITS, HD + 2]).
//                 Dispatch (GEMV_GROUPS, 1, 1): the workgroups stride over the ceil(N / GEMV_ROWS)
//                 blocks of rows (all of them on a GPU); with one invocation per row (GEMV_ROWS =
//                 256, a CPU adapter's few workgroups) they take the rows in turn instead.
//                 GEMV_ROWS is 8 on a GPU, 4 for a GEMV deeper than 2048 whose input is read as it is
//                 (Llama's down, GPT-2's MLP projection: 64 lanes to a row's long K; app/shapes.py
//                 KernelShapes.deep_gemv_k, gemv_deep_rows).
//                 GPU variants (app/shapes.py KernelShapes, all off by default): F16 / BF16 rows as
//                 blocks of 8 in one 16-byte load (weights_f16_wide.wgsl); GEMV_UNROLL loads per lane
//                 before the math; GEMV_ROW_TILE rows per lane; Q8_0 / Q4_1 rows staged through workgroup memory
//                 (STAGE_BLOCKS); the plain input row copied into workgroup memory (COPY_INPUT).
// Layout: X f32 [rows, K]; W [N_W, K] in the weight format of the module's snippet (N_W = N, or 2 N
//   with swiglu): f32 / f16 / bf16 as WPacks (K4 = K / 4 packs per row), or ggml's Q8_0 / Q4_0 / Q4_1 /
//   Q5_0 / Q5_1 blocks of 32 weights or Q4_K / Q5_K / Q6_K super-blocks of 256 (8 blocks of 32 to the
//   kernels) as stored in GGUF (Q4_0 regrouped on load, weights_q4_0.wgsl; K a multiple of 32, or 256),
//   read through the snippet's block interface
//   (weights_f32.wgsl) and dequantized in registers; b f32 [Y_COLS] (HAS_BIAS; 2 N with swiglu);
//   Y f32 [rows, Y_COLS], of which this dispatch writes columns Y_COL0 .. Y_COL0 + N - 1 (and adds
//   b[Y_COL0 + c]).
//   linear_tiled loads single packs (load4: for a block format, the block's scale and the pack's
//   words). gemv on a GPU gives the lanes of a row consecutive segments of a block (a pack of Q8_0,
//   or a k-quant, a word of nibbles of Q4_0 / Q4_1 / Q5_0 / Q5_1: 8 or 4 lanes per block), so that a warp reads W
//   and the input contiguously; one block per lane read W and x 34 / 128 bytes apart per lane and ran 1.5-2x
//   slower on an H200. On a CPU adapter (one invocation per row) gemv and linear_rows read whole
//   blocks with one load per word, dequantizing a block once (for 4 rows in linear_rows). The
//   float formats keep their pack-by-pack loops, compiled to the same loads as before.
// Epilogues (constant EPILOGUE, named in app/contract.py EPILOGUES):
//   0 store     Y[r, c] = v
//   1 gelu_tanh Y[r, c] = gelu_new(v)     (GPT-2's tanh approximation)
//   2 gelu_erf  Y[r, c] = gelu(v)         (the exact erf form)
//   3 residual  Y[r, c] += v              (Y is the residual stream)
//   4 qkv       GPT-2's fused c_attn: columns [0, C) -> Y[r, c] (Y is [rows, C]); [C, 2C) -> the K
//               cache and [2C, 3C) -> the V cache (kv [2, NH, N_CTX, HD]) at position pos0 + r
//   5 swiglu    Y[r, c] = silu(g) * u     with g from W's row c and u from row N + c (gate | up)
//   (v includes the bias.)
// Constants:
//   K: u32           inner dimension (a multiple of 4; of 32 or 256 for the block formats)
//   K4: u32          K / 4
//   N: u32           outputs per row (rows of W this dispatch reads)
//   Y_COLS: u32      columns of a row of Y (N, or more when several dispatches write one Y: the parts
//                    of a fused q|k|v or gate|up whose weights are stored in different formats)
//   Y_COL0: u32      the first column of Y (and element of b) this dispatch writes (0 with swiglu)
//   EPILOGUE: u32    see above
//   HAS_BIAS: bool   add b
//   RMS_INPUT: bool  gemv: RMS-normalize the input row first (norm_w, EPS)
//   LN_INPUT: bool   gemv: LayerNorm the input row first (norm_w = gamma, norm_b = beta, EPS)
//   C: u32           qkv epilogue: the width of each of q, k and v (n_embd)
//   NH: u32          qkv epilogue: heads (of HD each)
//   N_CTX: u32       qkv epilogue: KV cache positions
//   ATT_INPUT: bool  gemv: the input is the split attention's blocks, merged on the way in
//   ATT_SPLITS: u32  blocks of the split attention
//   HD: u32          head size (ATT_INPUT: input column i is head i / HD; the qkv epilogue's heads)
//   EPS: f32         RMSNorm epsilon (RMS_INPUT)
//   SPLIT_K: u32     linear_tiled / linear_split_k_sum: K splits (1: none)
//   SPLIT_KS: u32    linear_tiled: k per split, a multiple of 16
//   GEMV_ROWS: u32   gemv: output rows per workgroup (a power of two)
//   GEMV_GROUPS: u32 gemv: workgroups
//   COPY_INPUT: bool gemv: copy the plain input row into workgroup memory first (read once per
//                    workgroup instead of once per output row; a GPU variant, see below)
//   XN4_LEN: u32     gemv: packs of the prepared input row in workgroup memory (K4 with RMS_INPUT, LN_INPUT,
//                    ATT_INPUT or COPY_INPUT, else 1)
//   Q4_0_STREAM: bool gemv on a GPU, Q4_0 rows with K a multiple of 256 and GEMV_LANES a multiple of
//                    32: the lanes' words addressed as one stream per row (see gemv_row_q4_0)
//   GEMV_ROW_TILE: u32 gemv: output rows per lane, from the same input reads (on a GPU 1, 2 or 4, a
//                    variant: see "several rows per lane" below; a CPU adapter's one invocation per
//                    1, 2, 4 or 8 adjacent rows: gemv_rows_cpu)
//   GEMV_UNROLL: u32 gemv on a GPU: packs or segments a lane loads before multiplying them (1, 2, 4
//                    or 8: more bytes in flight per lane; the same additions in the same order)
//   STAGE_BLOCKS: u32    gemv: blocks of each row staged through workgroup memory at a time (0: not
//                        staged; Q8_0 / Q4_1 on a GPU, see "weights staged" below)
//   STAGE_ROW_WORDS: u32 gemv: WPacks a staged row holds (at least the words STAGE_BLOCKS blocks span)
//   STAGE_WORDS: u32     gemv: STAGE_ROW_WORDS x the staged rows (GEMV_ROWS, 2 GEMV_ROWS with swiglu;
//                        1 when not staged)
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py tests/test_kernels_llama.py -k linear, tests/test_kernels_quant.py -k linear and tests/test_kernels_gemv_variants.py
// A CPU adapter's F32 gemv gets w and x declared with their lengths instead (app/kernels.py
// _linear_kernel, app/wgsl.py module_source's `fixed`: N_W K4 packs and one row of K4).
@group(0) @binding(0) var<storage, read> step: Step;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;  // read 4 floats at a time (x4)
@group(0) @binding(2) var<storage, read> w: array<WPack>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> norm_w: array<f32>;
@group(0) @binding(6) var<storage, read> norm_b: array<f32>;
@group(0) @binding(7) var<storage, read_write> kv: array<f32>;

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

fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }

fn bias_of(c: u32) -> f32 {
  if (HAS_BIAS) { return bias[c]; }
  return 0.0;
}

fn store(r: u32, c: u32, v: f32) {
  let i = r * Y_COLS + Y_COL0 + c;
  let b = v + bias_of(Y_COL0 + c);
  if (EPILOGUE == 0u) { y[i] = b; }
  if (EPILOGUE == 1u) { y[i] = gelu_tanh(b); }
  if (EPILOGUE == 2u) { y[i] = gelu_erf(b); }
  if (EPILOGUE == 3u) { y[i] = y[i] + b; }
  if (EPILOGUE == 4u) {
    let part = (Y_COL0 + c) / C;
    let within = (Y_COL0 + c) % C;
    if (part == 0u) {
      y[r * C + within] = b;
    } else {
      kv[(((part - 1u) * NH + within / HD) * N_CTX + step.pos0 + r) * HD + within % HD] = b;
    }
  }
}

fn store_swiglu(r: u32, c: u32, g: f32, u: f32) {
  y[r * N + c] = silu(g + bias_of(c)) * (u + bias_of(N + c));
}

// The weight-format snippet's block interface over this kernel's binding w (KB blocks per row).
const KB: u32 = K4 / WBlockPacks;
const SEGS: u32 = WBlockPacks / WSegPacks;  // segments per block

// Block g's WPacks (a format needing fewer than 20 repeats its last: the same load, made once).
fn block_words(g: u32) -> array<WPack, 20> {
  return array<WPack, 20>(w[w_block_word(g, 0u)], w[w_block_word(g, 1u)], w[w_block_word(g, 2u)],
                          w[w_block_word(g, 3u)], w[w_block_word(g, 4u)], w[w_block_word(g, 5u)],
                          w[w_block_word(g, 6u)], w[w_block_word(g, 7u)], w[w_block_word(g, 8u)],
                          w[w_block_word(g, 9u)], w[w_block_word(g, 10u)], w[w_block_word(g, 11u)],
                          w[w_block_word(g, 12u)], w[w_block_word(g, 13u)], w[w_block_word(g, 14u)],
                          w[w_block_word(g, 15u)], w[w_block_word(g, 16u)], w[w_block_word(g, 17u)],
                          w[w_block_word(g, 18u)], w[w_block_word(g, 19u)]);
}

// The WPacks pack i of block g needs (those of segment i of a block, for w_seg_dot).
fn seg_words(g: u32, i: u32) -> array<WPack, 6> {
  let w0 = w[w_pack_word(g, i, 0u)];
  var w1 = w0;
  var w2 = w0;
  var w3 = w0;
  var w4 = w0;
  var w5 = w0;
  if (WPackWords > 1u) { w1 = w[w_pack_word(g, i, 1u)]; }
  if (WPackWords > 2u) { w2 = w[w_pack_word(g, i, 2u)]; }
  if (WPackWords > 3u) { w3 = w[w_pack_word(g, i, 3u)]; }
  if (WPackWords > 4u) { w4 = w[w_pack_word(g, i, 4u)]; }
  if (WPackWords > 5u) { w5 = w[w_pack_word(g, i, 5u)]; }
  return array<WPack, 6>(w0, w1, w2, w3, w4, w5);
}

// Pack p (4 weights) of W's row `row` (a float format: the one WPack, as unpack4(w[row * K4 + p])).
fn load4(row: u32, p: u32) -> vec4<f32> {
  let g = row * KB + p / WBlockPacks;
  let i = p % WBlockPacks;
  return w_unpack(g, i, seg_words(g, i));
}

fn x4(r: u32, p: u32) -> vec4<f32> {
  let i = r * K + p * 4u;
  return x[i / 4u];
}

// Element i of x read as floats (the split attention's blocks, the split-K partial sums): x is bound
// as vec4s because a GEMV reads its input row 4 floats at a time, one load instead of four (SwiftShader
// emulates each of the four as a gather across the invocations of its SIMD group).
fn x1(i: u32) -> f32 { return x[i / 4u][i % 4u]; }

// ---------------------------------------------------------------------------------- prefill
const SWIGLU: bool = EPILOGUE == 5u;
var<workgroup> a_tile: array<array<vec4<f32>, 16>, 16>;  // [k][group of 4 rows]
var<workgroup> b_tile: array<array<vec4<f32>, 16>, 16>;  // [k][group of 4 columns]

@compute @workgroup_size(256)
fn linear_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let rows = step.rows;
  let tx = lid % 16u;   // group of 4 columns within the tile
  let ty = lid / 16u;   // group of 4 rows within the tile
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  // What this invocation loads: A row ar, 4 consecutive k from ak; W row n0 + bn, pack bp.
  let ar = lid / 4u;
  let ak = (lid % 4u) * 4u;
  let bn = lid / 4u;
  let bp = lid % 4u;
  // Split K: workgroup z sums k in [k_begin, k_end) only (SPLIT_K = 1: all of K).
  let k_begin = wid.z * SPLIT_KS;
  let k_end = min(K, k_begin + SPLIT_KS);
  var a_next = load_a(m0 + ar, k_begin + ak, rows, k_end);
  var b_next = load_b(n0 + bn, k_begin / 4u + bp, k_end);
  var acc: array<vec4<f32>, 4>;
  for (var k0 = k_begin; k0 < k_end; k0 += 16u) {
    a_tile[ak][ar / 4u][ar % 4u] = a_next.x;
    a_tile[ak + 1u][ar / 4u][ar % 4u] = a_next.y;
    a_tile[ak + 2u][ar / 4u][ar % 4u] = a_next.z;
    a_tile[ak + 3u][ar / 4u][ar % 4u] = a_next.w;
    b_tile[bp * 4u][bn / 4u][bn % 4u] = b_next.x;
    b_tile[bp * 4u + 1u][bn / 4u][bn % 4u] = b_next.y;
    b_tile[bp * 4u + 2u][bn / 4u][bn % 4u] = b_next.z;
    b_tile[bp * 4u + 3u][bn / 4u][bn % 4u] = b_next.w;
    workgroupBarrier();
    if (k0 + 16u < k_end) {  // the next tile's loads overlap this tile's math
      a_next = load_a(m0 + ar, k0 + 16u + ak, rows, k_end);
      b_next = load_b(n0 + bn, (k0 + 16u) / 4u + bp, k_end);
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
  let c = n0 + tx * 4u;
  for (var i = 0u; i < 4u; i++) {
    let r = m0 + ty * 4u + i;
    if (r >= rows) { continue; }
    for (var j = 0u; j < 4u; j++) {
      if (c + j >= N) { continue; }
      if (SPLIT_K == 1u) {
        store(r, c + j, acc[i][j]);
      } else {  // a partial sum, to y as scratch [SPLIT_K, rows, N]; linear_split_k_sum finishes
        y[(wid.z * rows + r) * N + c + j] = acc[i][j];
      }
    }
  }
}

fn load_a(r: u32, k: u32, rows: u32, k_end: u32) -> vec4<f32> {
  if (r < rows && k < k_end) { return x4(r, k / 4u); }
  return vec4<f32>(0.0);
}

fn load_b(n: u32, p: u32, k_end: u32) -> vec4<f32> {
  if (n < N && p * 4u < k_end) { return load4(n, p); }
  return vec4<f32>(0.0);
}

// The second half of a split-K linear_tiled: Y = epilogue(sum of the SPLIT_K partial sums + b), the
// partial sums bound as x ([SPLIT_K, rows, N]). One invocation per output.
@compute @workgroup_size(64)
fn linear_split_k_sum(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  let rows = step.rows;
  if (c >= N || r >= rows) { return; }
  var v = 0.0;
  for (var s = 0u; s < SPLIT_K; s++) { v += x1((s * rows + r) * N + c); }
  store(r, c, v);
}

// 4 rows x 4 columns per invocation for the float formats: each pack of the 4 input rows and of the 4
// weight rows loaded once for 16 products (one column per invocation loaded the input rows again for
// every column: 5 loads per 4 products). 16 invocations a workgroup keep the grid at 64 columns each.
@compute @workgroup_size(16)
fn linear_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c0 = gid.x * 4u;
  let r0 = gid.y * 4u;
  let rows = step.rows;
  if (c0 >= N || r0 >= rows) { return; }
  let n = min(4u, rows - r0);
  if (WBlockPacks == 1u) {
    linear_rows_float(c0, r0, n);
    return;
  }
  for (var c = c0; c < min(c0 + 4u, N); c++) { linear_rows_block(c, r0, n); }
}

fn linear_rows_float(c0: u32, r0: u32, n: u32) {
  // rows past the last read the last row again (and are not stored); columns past N read column N - 1
  let r1 = r0 + min(1u, n - 1u);
  let r2 = r0 + min(2u, n - 1u);
  let r3 = r0 + min(3u, n - 1u);
  let c1 = min(c0 + 1u, N - 1u);
  let c2 = min(c0 + 2u, N - 1u);
  let c3 = min(c0 + 3u, N - 1u);
  var a00 = vec4<f32>(0.0); var a01 = vec4<f32>(0.0); var a02 = vec4<f32>(0.0); var a03 = vec4<f32>(0.0);
  var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0); var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0);
  var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0); var a22 = vec4<f32>(0.0); var a23 = vec4<f32>(0.0);
  var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0); var a32 = vec4<f32>(0.0); var a33 = vec4<f32>(0.0);
  for (var p = 0u; p < K4; p++) {
    let w0 = load4(c0, p);
    let w1 = load4(c1, p);
    let w2 = load4(c2, p);
    let w3 = load4(c3, p);
    let x0 = x4(r0, p);
    let x1v = x4(r1, p);
    let x2 = x4(r2, p);
    let x3 = x4(r3, p);
    a00 += x0 * w0; a01 += x0 * w1; a02 += x0 * w2; a03 += x0 * w3;
    a10 += x1v * w0; a11 += x1v * w1; a12 += x1v * w2; a13 += x1v * w3;
    a20 += x2 * w0; a21 += x2 * w1; a22 += x2 * w2; a23 += x2 * w3;
    a30 += x3 * w0; a31 += x3 * w1; a32 += x3 * w2; a33 += x3 * w3;
  }
  store_rows_col(r0, n, c0, a00, a10, a20, a30);
  if (c0 + 1u < N) { store_rows_col(r0, n, c0 + 1u, a01, a11, a21, a31); }
  if (c0 + 2u < N) { store_rows_col(r0, n, c0 + 2u, a02, a12, a22, a32); }
  if (c0 + 3u < N) { store_rows_col(r0, n, c0 + 3u, a03, a13, a23, a33); }
}

fn store_rows_col(r0: u32, n: u32, c: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
  store(r0, c, a0.x + a0.y + a0.z + a0.w);
  if (n > 1u) { store(r0 + 1u, c, a1.x + a1.y + a1.z + a1.w); }
  if (n > 2u) { store(r0 + 2u, c, a2.x + a2.y + a2.z + a2.w); }
  if (n > 3u) { store(r0 + 3u, c, a3.x + a3.y + a3.z + a3.w); }
}

// Column c of rows r0 .. r0 + n - 1 from a block format: each block dequantized once for the rows.
fn linear_rows_block(c: u32, r0: u32, n: u32) {
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  for (var b = 0u; b < KB; b++) {
    let wb = w_block(c * KB + b, block_words(c * KB + b));
    for (var i = 0u; i < WBlockPacks; i++) {
      let p = b * WBlockPacks + i;
      let wv = wb[i];
      a0 += x4(r0, p) * wv;
      if (n > 1u) { a1 += x4(r0 + 1u, p) * wv; }
      if (n > 2u) { a2 += x4(r0 + 2u, p) * wv; }
      if (n > 3u) { a3 += x4(r0 + 3u, p) * wv; }
    }
  }
  store_rows_col(r0, n, c, a0, a1, a2, a3);
}

// ---------------------------------------------------------------------------------- decode
const GEMV_LANES: u32 = 256u / GEMV_ROWS;
const GEMV_BLOCKS: u32 = (N + GEMV_ROWS * GEMV_ROW_TILE - 1u) / (GEMV_ROWS * GEMV_ROW_TILE);
const GEMV_SEGS: u32 = KB * SEGS;  // segments of a row
// no reduction where a row has one lane (a CPU adapter, whose 8 rows an invocation would need 16 KB)
const GEMV_PARTIALS: u32 = max(256u * GEMV_ROW_TILE * min(GEMV_LANES - 1u, 1u), 1u);
var<workgroup> gemv_partial: array<vec2<f32>, GEMV_PARTIALS>;
var<workgroup> x_prep: array<vec4<f32>, XN4_LEN>;  // the input row, normalized (RMS_INPUT) or merged (ATT_INPUT)
const PREP_INPUT: bool = RMS_INPUT || LN_INPUT || ATT_INPUT || COPY_INPUT;

fn input4(p: u32) -> vec4<f32> {
  if (PREP_INPUT) { return x_prep[p]; }
  return x4(0u, p);
}

// The 8 packs of the input that block b of a row multiplies (a block format).
fn input_block(b: u32) -> array<vec4<f32>, 8> {
  let p = b * WBlockPacks;
  return array<vec4<f32>, 8>(input4(p), input4(p + 1u), input4(p + 2u), input4(p + 3u), input4(p + 4u),
                             input4(p + 5u), input4(p + 6u), input4(p + 7u));
}

// The input packs segment u of a row (segment u % SEGS of block u / SEGS) multiplies.
fn input_seg(u: u32) -> array<vec4<f32>, 2> {
  let p = (u / SEGS) * WBlockPacks;
  let sg = u % SEGS;
  return array<vec4<f32>, 2>(input4(p + w_seg_pack(sg, 0u)), input4(p + w_seg_pack(sg, WSegPacks - 1u)));
}

// Segment u of W's row `row` times the input (a block format).
fn row_seg_dot(row: u32, u: u32, ws: array<WPack, 6>) -> vec4<f32> {
  return w_seg_dot(row * KB + u / SEGS, u % SEGS, ws, input_seg(u));
}

fn row_seg_words(row: u32, u: u32) -> array<WPack, 6> { return seg_words(row * KB + u / SEGS, u % SEGS); }

// Row c's dot product with the input on a GPU: (gate or plain, up), per component. Lane `lane` of
// the row's GEMV_LANES takes packs (a float format) or segments (a block format) lane, lane +
// GEMV_LANES, ...; with GEMV_UNROLL > 1 it loads GEMV_UNROLL of them before multiplying any (more
// bytes in flight per lane), in the same order of additions.
fn gemv_row_gpu(c: u32, lane: u32) -> array<vec4<f32>, 2> {
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  if (WBlockPacks == 1u) {  // a float format: pack by pack
    var p = lane;
    if (GEMV_UNROLL > 1u) {
      for (; p + (GEMV_UNROLL - 1u) * GEMV_LANES < K4; p += GEMV_UNROLL * GEMV_LANES) {
        var wa: array<vec4<f32>, GEMV_UNROLL>;
        var wb: array<vec4<f32>, GEMV_UNROLL>;
        for (var j = 0u; j < GEMV_UNROLL; j++) {
          wa[j] = load4(c, p + j * GEMV_LANES);
          if (SWIGLU) { wb[j] = load4(N + c, p + j * GEMV_LANES); }
        }
        for (var j = 0u; j < GEMV_UNROLL; j++) {
          let xv = input4(p + j * GEMV_LANES);
          s0 += xv * wa[j];
          if (SWIGLU) { s1 += xv * wb[j]; }
        }
      }
      // The lane's last packs (fewer than GEMV_UNROLL), their loads issued together as well: one
      // more round of memory latency, not one per pack.
      var wa: array<vec4<f32>, GEMV_UNROLL>;
      var wb: array<vec4<f32>, GEMV_UNROLL>;
      for (var j = 0u; j < GEMV_UNROLL; j++) {
        let q = p + j * GEMV_LANES;
        if (q < K4) {
          wa[j] = load4(c, q);
          if (SWIGLU) { wb[j] = load4(N + c, q); }
        }
      }
      for (var j = 0u; j < GEMV_UNROLL; j++) {
        let q = p + j * GEMV_LANES;
        if (q < K4) {
          let xv = input4(q);
          s0 += xv * wa[j];
          if (SWIGLU) { s1 += xv * wb[j]; }
        }
      }
    } else {
      for (; p < K4; p += GEMV_LANES) {
        let xv = input4(p);
        s0 += xv * load4(c, p);
        if (SWIGLU) { s1 += xv * load4(N + c, p); }
      }
    }
  } else {  // a block format: lanes on consecutive segments
    var u = lane;
    if (GEMV_UNROLL > 1u) {
      for (; u + (GEMV_UNROLL - 1u) * GEMV_LANES < GEMV_SEGS; u += GEMV_UNROLL * GEMV_LANES) {
        var wa: array<array<WPack, 6>, GEMV_UNROLL>;
        var wb: array<array<WPack, 6>, GEMV_UNROLL>;
        for (var j = 0u; j < GEMV_UNROLL; j++) {
          wa[j] = row_seg_words(c, u + j * GEMV_LANES);
          if (SWIGLU) { wb[j] = row_seg_words(N + c, u + j * GEMV_LANES); }
        }
        for (var j = 0u; j < GEMV_UNROLL; j++) {
          s0 += row_seg_dot(c, u + j * GEMV_LANES, wa[j]);
          if (SWIGLU) { s1 += row_seg_dot(N + c, u + j * GEMV_LANES, wb[j]); }
        }
      }
      var wa: array<array<WPack, 6>, GEMV_UNROLL>;  // the last segments, as for the float formats
      var wb: array<array<WPack, 6>, GEMV_UNROLL>;
      for (var j = 0u; j < GEMV_UNROLL; j++) {
        let q = u + j * GEMV_LANES;
        if (q < GEMV_SEGS) {
          wa[j] = row_seg_words(c, q);
          if (SWIGLU) { wb[j] = row_seg_words(N + c, q); }
        }
      }
      for (var j = 0u; j < GEMV_UNROLL; j++) {
        let q = u + j * GEMV_LANES;
        if (q < GEMV_SEGS) {
          s0 += row_seg_dot(c, q, wa[j]);
          if (SWIGLU) { s1 += row_seg_dot(N + c, q, wb[j]); }
        }
      }
    } else {
      for (; u < GEMV_SEGS; u += GEMV_LANES) {
        s0 += row_seg_dot(c, u, row_seg_words(c, u));
        if (SWIGLU) { s1 += row_seg_dot(N + c, u, row_seg_words(N + c, u)); }
      }
    }
  }
  return array<vec4<f32>, 2>(s0, s1);
}

// ------------------------------------------------------- decode, several rows per lane (GEMV_ROW_TILE > 1)
// A GPU GEMV reads the input row once per output row: as many load passes as it makes for the
// weights of an F16 row, and most of a Q4_0 row's (BENCH.md). With GEMV_ROW_TILE = R a lane
// computes R rows (GEMV_ROWS apart: (blk R + r) GEMV_ROWS + its row of the workgroup) from each
// input pack or segment it reads, so the input is read once per R rows, and the R rows' weight loads
// are in flight together (no GEMV_UNROLL here). A row past N is computed from row N - 1 and not
// stored. The R partial sums of a lane are reduced in one tree.
fn gemv_tile_row(blk: u32, r: u32, q: u32) -> u32 { return (blk * GEMV_ROW_TILE + r) * GEMV_ROWS + q; }

fn gemv_tile(blk: u32, lid: u32) {
  let lane = lid % GEMV_LANES;
  let q = lid / GEMV_LANES;
  var s0: array<vec4<f32>, GEMV_ROW_TILE>;
  var s1: array<vec4<f32>, GEMV_ROW_TILE>;
  var rows: array<u32, GEMV_ROW_TILE>;
  for (var r = 0u; r < GEMV_ROW_TILE; r++) { rows[r] = min(gemv_tile_row(blk, r, q), N - 1u); }
  if (WBlockPacks == 1u) {  // a float format: pack by pack
    for (var p = lane; p < K4; p += GEMV_LANES) {
      let xv = input4(p);
      for (var r = 0u; r < GEMV_ROW_TILE; r++) {
        s0[r] += xv * load4(rows[r], p);
        if (SWIGLU) { s1[r] += xv * load4(N + rows[r], p); }
      }
    }
  } else {  // a block format: segments
    for (var u = lane; u < GEMV_SEGS; u += GEMV_LANES) {
      let xs = input_seg(u);
      for (var r = 0u; r < GEMV_ROW_TILE; r++) {
        s0[r] += w_seg_dot(rows[r] * KB + u / SEGS, u % SEGS, row_seg_words(rows[r], u), xs);
        if (SWIGLU) { s1[r] += w_seg_dot((N + rows[r]) * KB + u / SEGS, u % SEGS, row_seg_words(N + rows[r], u), xs); }
      }
    }
  }
  for (var r = 0u; r < GEMV_ROW_TILE; r++) {
    let a = s0[r];
    let b = s1[r];
    gemv_partial[r * 256u + lid] = vec2<f32>(a.x + a.y + a.z + a.w, b.x + b.y + b.z + b.w);
  }
  workgroupBarrier();
  for (var half = GEMV_LANES / 2u; half > 0u; half = half >> 1u) {
    if (lane < half) {
      for (var r = 0u; r < GEMV_ROW_TILE; r++) { gemv_partial[r * 256u + lid] += gemv_partial[r * 256u + lid + half]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    for (var r = 0u; r < GEMV_ROW_TILE; r++) {
      let c = gemv_tile_row(blk, r, q);
      let acc = gemv_partial[r * 256u + lid];
      if (c < N) {
        if (SWIGLU) { store_swiglu(0u, c, acc.x, acc.y); } else { store(0u, c, acc.x); }
      }
    }
  }
  workgroupBarrier();
}

// ------------------------------------------------------- decode, weights staged through workgroup memory
// With STAGE_BLOCKS > 0 (Q8_0 / Q4_1 on a GPU) the workgroup copies its rows' bytes for
// STAGE_BLOCKS blocks of K at a time into w_stage with coalesced one-word loads (consecutive
// invocations on consecutive words of a row, STAGE_LOADS loads per invocation issued together), the
// next chunk's loads issued before this chunk's math; the lanes then read their segments' words from
// workgroup memory (the block interface's word indices minus the staged row's first word).
// Staged row s < GEMV_ROWS is W's row blk * GEMV_ROWS + s; with swiglu, s >= GEMV_ROWS is the
// matching up row (N + ...). STAGE_ROW_WORDS bounds the words STAGE_BLOCKS blocks span.
var<workgroup> w_stage: array<WPack, STAGE_WORDS>;
const STAGED: bool = STAGE_BLOCKS > 0u;
const STAGE_LOADS: u32 = (STAGE_WORDS + 255u) / 256u;

// W's row held by staged row s of row block blk, and whether it exists.
fn staged_row(blk: u32, s: u32) -> vec2<u32> {
  let r = blk * GEMV_ROWS + s % GEMV_ROWS;
  return vec2<u32>(select(r, N + r, s >= GEMV_ROWS), select(0u, 1u, r < N));
}

// The first word of W's row `row` staged for the chunk of blocks from b0.
fn staged_first(row: u32, b0: u32) -> u32 { return w_block_word(row * KB + b0, 0u); }

// This invocation's share of the chunk of blocks from b0 of row block blk (zeros past a row's words).
fn stage_fetch(blk: u32, b0: u32, lid: u32) -> array<WPack, STAGE_LOADS> {
  var out: array<WPack, STAGE_LOADS>;
  let b1 = min(b0 + STAGE_BLOCKS, KB);
  for (var k = 0u; k < STAGE_LOADS; k++) {
    let i = lid + k * 256u;
    let s = i / STAGE_ROW_WORDS;
    let row = staged_row(blk, s);
    if (i < STAGE_WORDS && row.y == 1u) {
      let first = staged_first(row.x, b0);
      let last = w_block_word(row.x * KB + b1 - 1u, 19u);
      let word = first + i % STAGE_ROW_WORDS;
      if (word <= last) { out[k] = w[word]; }
    }
  }
  return out;
}

// The staged twin of seg_words: the WPacks pack i of block g needs, from staged row s whose first
// word is W's word `first`.
fn staged_seg_words(s: u32, first: u32, g: u32, i: u32) -> array<WPack, 6> {
  let base = s * STAGE_ROW_WORDS - first;
  let w0 = w_stage[base + w_pack_word(g, i, 0u)];
  var w1 = w0;
  var w2 = w0;
  var w3 = w0;
  var w4 = w0;
  var w5 = w0;
  if (WPackWords > 1u) { w1 = w_stage[base + w_pack_word(g, i, 1u)]; }
  if (WPackWords > 2u) { w2 = w_stage[base + w_pack_word(g, i, 2u)]; }
  if (WPackWords > 3u) { w3 = w_stage[base + w_pack_word(g, i, 3u)]; }
  if (WPackWords > 4u) { w4 = w_stage[base + w_pack_word(g, i, 4u)]; }
  if (WPackWords > 5u) { w5 = w_stage[base + w_pack_word(g, i, 5u)]; }
  return array<WPack, 6>(w0, w1, w2, w3, w4, w5);
}

// Row c's dot products (as gemv_row_gpu) with every workgroup invocation taking part in the staging
// (so called in uniform control flow, for every c: nothing is added for c >= N).
fn gemv_row_staged(blk: u32, c: u32, lane: u32, lid: u32) -> array<vec4<f32>, 2> {
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  let r = c - blk * GEMV_ROWS;
  var next = stage_fetch(blk, 0u, lid);
  for (var b0 = 0u; b0 < KB; b0 += STAGE_BLOCKS) {
    for (var k = 0u; k < STAGE_LOADS; k++) {
      let i = lid + k * 256u;
      if (i < STAGE_WORDS) { w_stage[i] = next[k]; }
    }
    workgroupBarrier();
    if (b0 + STAGE_BLOCKS < KB) { next = stage_fetch(blk, b0 + STAGE_BLOCKS, lid); }
    if (c < N) {
      let gate_first = staged_first(c, b0);
      let up_first = staged_first(N + c, b0);
      let u1 = min(b0 + STAGE_BLOCKS, KB) * SEGS;
      for (var u = b0 * SEGS + lane; u < u1; u += GEMV_LANES) {
        let g = c * KB + u / SEGS;
        s0 += w_seg_dot(g, u % SEGS, staged_seg_words(r, gate_first, g, u % SEGS), input_seg(u));
        if (SWIGLU) {
          let gu = (N + c) * KB + u / SEGS;
          s1 += w_seg_dot(gu, u % SEGS, staged_seg_words(GEMV_ROWS + r, up_first, gu, u % SEGS), input_seg(u));
        }
      }
    }
    workgroupBarrier();
  }
  return array<vec4<f32>, 2>(s0, s1);
}

// The running sums of one CPU invocation's rows (GEMV_ROW_TILE of c0 .. c0 + 7): a of the plain (or
// gate) rows, u of their up rows (SWIGLU); lo rows c0 .. c0 + 3, hi the next four. Vectors named,
// not an array: SwiftShader keeps a private array indexed in a loop in memory (one row ran 1.8x
// slower so).
struct CpuSums { a_lo: vec4<f32>, a_hi: vec4<f32>, u_lo: vec4<f32>, u_hi: vec4<f32> }

// Step p of the input: pack p of a float format (in [0]), or the 8 packs block p multiplies.
fn cpu_input(p: u32) -> array<vec4<f32>, 8> {
  if (WBlockPacks == 1u) {
    let z = vec4<f32>(0.0);
    return array<vec4<f32>, 8>(input4(p), z, z, z, z, z, z, z);
  }
  return input_block(p);
}

// Step p of row c (of W's N_W rows: pack p, or block p) dotted with the input's step p.
fn cpu_dot(c: u32, p: u32, xs: array<vec4<f32>, 8>) -> f32 {
  if (WBlockPacks == 1u) { return dot(xs[0], load4(c, p)); }
  let d = w_dot(c * KB + p, block_words(c * KB + p), xs);
  return d.x + d.y + d.z + d.w;
}

// Step p of the input, read once, dotted with step p of each of the invocation's rows (lo, hi:
// common.wgsl cpu_tile_rows), added to the sums.
fn cpu_step(s: ptr<function, CpuSums>, lo: vec4<u32>, hi: vec4<u32>, p: u32) {
  let xs = cpu_input(p);
  (*s).a_lo.x += cpu_dot(lo.x, p, xs);
  if (SWIGLU) { (*s).u_lo.x += cpu_dot(N + lo.x, p, xs); }
  if (GEMV_ROW_TILE > 1u) {
    (*s).a_lo.y += cpu_dot(lo.y, p, xs);
    if (SWIGLU) { (*s).u_lo.y += cpu_dot(N + lo.y, p, xs); }
  }
  if (GEMV_ROW_TILE > 2u) {
    (*s).a_lo.z += cpu_dot(lo.z, p, xs);
    (*s).a_lo.w += cpu_dot(lo.w, p, xs);
    if (SWIGLU) { (*s).u_lo.z += cpu_dot(N + lo.z, p, xs); (*s).u_lo.w += cpu_dot(N + lo.w, p, xs); }
  }
  if (GEMV_ROW_TILE > 4u) {
    (*s).a_hi += vec4<f32>(cpu_dot(hi.x, p, xs), cpu_dot(hi.y, p, xs), cpu_dot(hi.z, p, xs), cpu_dot(hi.w, p, xs));
    if (SWIGLU) {
      (*s).u_hi += vec4<f32>(cpu_dot(N + hi.x, p, xs), cpu_dot(N + hi.y, p, xs), cpu_dot(N + hi.z, p, xs),
                             cpu_dot(N + hi.w, p, xs));
    }
  }
}

// Rows c0 .. c0 + GEMV_ROW_TILE - 1 (1, 2, 4 or 8) by one invocation (a CPU adapter), each input pack
// or block read once for all of them: a SwiftShader invocation spends a load on the input for every
// load of weights when it computes one row, and each row's dot products go to one f32 sum (vec4 sums
// of 8 rows left the streamed rows slower: BENCH.md). A row past N is computed from row N - 1 and
// not stored.
fn gemv_rows_cpu(c0: u32) {
  let rows = cpu_tile_rows(c0, N - 1u);
  var s = CpuSums();
  for (var p = 0u; p < KB; p++) { cpu_step(&s, rows[0], rows[1], p); }  // KB = K4 for a float format
  store_cpu_row(c0, s.a_lo.x, s.u_lo.x);
  if (GEMV_ROW_TILE > 1u && c0 + 1u < N) { store_cpu_row(c0 + 1u, s.a_lo.y, s.u_lo.y); }
  if (GEMV_ROW_TILE > 2u && c0 + 2u < N) { store_cpu_row(c0 + 2u, s.a_lo.z, s.u_lo.z); }
  if (GEMV_ROW_TILE > 2u && c0 + 3u < N) { store_cpu_row(c0 + 3u, s.a_lo.w, s.u_lo.w); }
  if (GEMV_ROW_TILE > 4u && c0 + 4u < N) { store_cpu_row(c0 + 4u, s.a_hi.x, s.u_hi.x); }
  if (GEMV_ROW_TILE > 4u && c0 + 5u < N) { store_cpu_row(c0 + 5u, s.a_hi.y, s.u_hi.y); }
  if (GEMV_ROW_TILE > 4u && c0 + 6u < N) { store_cpu_row(c0 + 6u, s.a_hi.z, s.u_hi.z); }
  if (GEMV_ROW_TILE > 4u && c0 + 7u < N) { store_cpu_row(c0 + 7u, s.a_hi.w, s.u_hi.w); }
}

fn store_cpu_row(c: u32, a: f32, u: f32) {
  if (SWIGLU) { store_swiglu(0u, c, a, u); }
  else { store(0u, c, a); }
}

// Lane `lane`'s share of row c's dot products with the input: (gate or plain, up).
// Q4_0_STREAM: row c's dot products for a Q4_0 row whose blocks fill whole groups of 8
// (common.wgsl: 36 words a group, 4 of scales then 8 blocks x 4 words of nibbles). The lanes
// take the same segments in the same order as gemv_row_gpu (segment lane + i GEMV_LANES, a word of
// nibbles each), so the sums are the same bits; but with whole groups the 32 lanes of a warp read one
// group's 36 words a step, and lane l's words are the step's base + 4 + l % 32 (nibbles) and + (l %
// 32) / 8 (its block's scale): one add per load instead of the generic block addressing's
// divisions, masks and multiplications per segment, which left a Q4_0 GEMV instruction-bound on an
// H200 (as slow as F16 while reading 3.5x fewer bytes).
fn gemv_row_q4_0(c: u32, lane: u32) -> array<vec4<f32>, 2> {
  const Q4_GROUPS: u32 = KB / 8u;                     // groups of 8 blocks a row
  const Q4_WARPS: u32 = max(GEMV_LANES / 32u, 1u);   // groups a step covers (1 where Q4_0_STREAM is off)
  const Q4_STEPS: u32 = Q4_GROUPS / Q4_WARPS;          // groups a lane visits
  let l = lane % 32u;
  let t0 = lane / 32u;
  let j = l / 4u;                                 // the lane's block within a group
  let s = l % 4u;                                 // its word of nibbles within the block
  let row_a = c * Q4_GROUPS * Q4_0_GROUP_WORDS;
  let row_b = (N + c) * Q4_GROUPS * Q4_0_GROUP_WORDS;
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  for (var m = 0u; m < Q4_STEPS; m += GEMV_UNROLL) {
    var wa: array<array<WPack, 6>, GEMV_UNROLL>;
    var wb: array<array<WPack, 6>, GEMV_UNROLL>;
    for (var u = 0u; u < GEMV_UNROLL; u++) {
      if (m + u < Q4_STEPS) {
        let t = (m + u) * Q4_WARPS + t0;
        let oa = row_a + Q4_0_GROUP_WORDS * t;
        let qa = w[q4_0_nibble_word(oa, l)];
        wa[u] = array<WPack, 6>(w[q4_0_scale_word(oa, j)], qa, qa, qa, qa, qa);
        if (SWIGLU) {
          let ob = row_b + Q4_0_GROUP_WORDS * t;
          let qb = w[q4_0_nibble_word(ob, l)];
          wb[u] = array<WPack, 6>(w[q4_0_scale_word(ob, j)], qb, qb, qb, qb, qb);
        }
      }
    }
    for (var u = 0u; u < GEMV_UNROLL; u++) {
      if (m + u < Q4_STEPS) {
        let b = 8u * ((m + u) * Q4_WARPS + t0) + j;  // the block within the row
        let xs = array<vec4<f32>, 2>(input4(8u * b + s), input4(8u * b + 4u + s));
        s0 += w_seg_dot(b, s, wa[u], xs);
        if (SWIGLU) { s1 += w_seg_dot(b, s, wb[u], xs); }
      }
    }
  }
  return array<vec4<f32>, 2>(s0, s1);
}

fn gemv_row(c: u32, lane: u32) -> vec2<f32> {
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  if (Q4_0_STREAM) {
    let s = gemv_row_q4_0(c, lane);
    s0 = s[0];
    s1 = s[1];
  } else if (GEMV_LANES >= 8u || WBlockPacks == 1u) {  // a GPU (or a float format): packs or segments
    let s = gemv_row_gpu(c, lane);
    s0 = s[0];
    s1 = s[1];
  } else {  // a block format on 2 or 4 lanes a row (linear_gemv_rows 128 or 64): a block per lane per step
    for (var b = lane; b < KB; b += GEMV_LANES) {
      let xs = input_block(b);
      s0 += w_dot(c * KB + b, block_words(c * KB + b), xs);
      if (SWIGLU) { s1 += w_dot((N + c) * KB + b, block_words((N + c) * KB + b), xs); }
    }
  }
  return vec2<f32>(s0.x + s0.y + s0.z + s0.w, s1.x + s1.y + s1.z + s1.w);
}

@compute @workgroup_size(256)
fn gemv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  if (LN_INPUT) {
    var s = 0.0;
    for (var p = lid; p < K4; p += 256u) { let v = x4(0u, p); s += v.x + v.y + v.z + v.w; }
    let mean = workgroup_sum(lid, s) / f32(K);
    var q = 0.0;
    for (var p = lid; p < K4; p += 256u) { let d = x4(0u, p) - mean; q += dot(d, d); }
    let rstd = norm_rstd(workgroup_sum(lid, q), K, EPS);
    for (var p = lid; p < K4; p += 256u) {
      let i = p * 4u;
      x_prep[p] = layer_norm4(x4(0u, p), mean, rstd, vec4<f32>(norm_w[i], norm_w[i + 1u], norm_w[i + 2u], norm_w[i + 3u]),
                              vec4<f32>(norm_b[i], norm_b[i + 1u], norm_b[i + 2u], norm_b[i + 3u]));
    }
    workgroupBarrier();
  }
  if (RMS_INPUT) {
    var q = 0.0;
    for (var p = lid; p < K4; p += 256u) { let v = x4(0u, p); q += dot(v, v); }
    let rstd = norm_rstd(workgroup_sum(lid, q), K, EPS);
    for (var p = lid; p < K4; p += 256u) {
      let i = p * 4u;
      x_prep[p] = rms_norm4(x4(0u, p), rstd, vec4<f32>(norm_w[i], norm_w[i + 1u], norm_w[i + 2u], norm_w[i + 3u]));
    }
    workgroupBarrier();
  }
  if (COPY_INPUT) {
    for (var p = lid; p < K4; p += 256u) { x_prep[p] = x4(0u, p); }
    workgroupBarrier();
  }
  if (ATT_INPUT) {
    // Every workgroup merges the attention blocks itself (a few KB from cache) instead of paying a
    // dispatch for it: input column i is head i / HD, dimension i % HD.
    let splits = (step.pos0 + ATT_BLOCK) / ATT_BLOCK;  // blocks holding positions 0..pos0
    for (var p = lid; p < K4; p += 256u) {
      var out = vec4<f32>(0.0);
      for (var j = 0u; j < 4u; j++) {
        let i = p * 4u + j;
        let base = (i / HD) * ATT_SPLITS * (HD + 2u);
        let d = i % HD;
        var m = NEG_INF;
        for (var s = 0u; s < splits; s++) { m = max(m, x1(base + s * (HD + 2u) + HD)); }
        var l = 0.0;
        var a = 0.0;
        for (var s = 0u; s < splits; s++) {
          let o = base + s * (HD + 2u);
          let e = exp(x1(o + HD) - m);
          l += e * x1(o + HD + 1u);
          a += e * x1(o + d);
        }
        out[j] = a / l;
      }
      x_prep[p] = out;
    }
    workgroupBarrier();
  }
  if (GEMV_LANES == 1u) {
    // One invocation per GEMV_ROW_TILE rows (a CPU adapter): tiles dealt out one at a time across
    // the workgroups, so each of the few workgroups (a CPU thread each) gets an equal share, however
    // few blocks of GEMV_ROWS rows N makes (GPT-2 117M's N = 768 is 3 blocks: as blocks, 3
    // workgroups and on 2 cores one thread doing two thirds of the work).
    for (var t = wid.x + lid * GEMV_GROUPS; t * GEMV_ROW_TILE < N; t += 256u * GEMV_GROUPS) {
      gemv_rows_cpu(t * GEMV_ROW_TILE);
    }
    return;
  }
  if (GEMV_ROW_TILE > 1u) {
    for (var blk = wid.x; blk < GEMV_BLOCKS; blk += GEMV_GROUPS) { gemv_tile(blk, lid); }
    return;
  }
  let lane = lid % GEMV_LANES;
  for (var blk = wid.x; blk < GEMV_BLOCKS; blk += GEMV_GROUPS) {
    let c = blk * GEMV_ROWS + lid / GEMV_LANES;
    var acc = vec2<f32>(0.0);  // (gate or plain, up)
    if (STAGED) {
      let s = gemv_row_staged(blk, c, lane, lid);
      acc = vec2<f32>(s[0].x + s[0].y + s[0].z + s[0].w, s[1].x + s[1].y + s[1].z + s[1].w);
    } else if (c < N) {
      acc = gemv_row(c, lane);
    }
    gemv_partial[lid] = acc;  // a tree over the lanes of each row
    workgroupBarrier();
    for (var half = GEMV_LANES / 2u; half > 0u; half = half >> 1u) {
      if (lane < half) { gemv_partial[lid] += gemv_partial[lid + half]; }
      workgroupBarrier();
    }
    acc = gemv_partial[lid];
    if (lane == 0u && c < N) {
      if (SWIGLU) { store_swiglu(0u, c, acc.x, acc.y); } else { store(0u, c, acc.x); }
    }
    workgroupBarrier();
  }
}
