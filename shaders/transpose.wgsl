// transpose.wgsl — transpose-on-load: a matrix a file stores as [K, N] (GPT-2's HF Conv1D, [in, out])
// lands on the GPU as [N, K], one row per output as linear.wgsl reads W: dst[n, k] = src[k, n]. The
// same dtype, bits moved as they are, or an f16 / bf16 source widened to f32 exactly: every number
// as app/weights.py widen_to_f32 widens it on the CPU, NaN payloads kept as numpy keeps them (CPython's
// struct, under widen_to_f32, may canonicalize a NaN). f16 is widened with integer arithmetic, not
// unpack2x16float, which an adapter may run through an f16 path that flushes subnormals.
// Layout: src holds source rows k0 .. k1 - 1 only (app/runner.py stages a source in chunks of whole
//   rows, k0 even; chunk holds [k0, k1], read at run time so that one pipeline serves every chunk),
//   row-major from word 0: f32 words, or two f16 / bf16 per word, the lower-indexed one in the low
//   half. dst is the whole [N, K] matrix from word 0: f32 words (transpose_f32), or
//   two 16-bit values per word the same way (transpose_16). With K odd a 16-bit word may hold the end
//   of one row and the start of the next, which another chunk writes: halves outside the chunk keep
//   what dst has (the queue runs one chunk's dispatch after another's).
// Workgroup: 64 invocations, each writing one dst word: invocation t writes word t % R of those row
//   t / R spans within the chunk's columns, R = k1 - k0 (f32) or (k1 - k0) / 2 + 1 (16-bit: the most
//   words k1 - k0 values from an even or odd element can span). A 16-bit word holding the last column
//   of row n - 1 and the first of row n is written by row n - 1's invocation, so no two write one
//   word. Dispatch (X, Y, 1) with X * Y >= ceil(N * R / 64), X <= 65535: app/weights.py
//   transpose_workgroups.
// Entry points: transpose_f32 (dst f32; src F32 as it is, F16 / BF16 widened), transpose_16 (dst and
//   src the same 16-bit dtype, f16 or bf16: the bits as they are, SRC unused).
// Constants:
//   K: u32     columns of dst (rows of the source)
//   N: u32     rows of dst (columns of the source)
//   SRC: u32   dtype of src: 0 F32, 1 F16, 2 BF16 (app/weights.py TRANSPOSE_SOURCES)
// Run alone: python3 -m pytest tests/test_transpose_load.py -q
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<storage, read> chunk: array<u32>;  // [k0, k1] of this dispatch

fn chunk_k0() -> u32 { return chunk[0]; }  // the chunk's first source row (even)
fn chunk_k1() -> u32 { return chunk[1]; }  // one past its last

fn tr_index(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * groups.x + wid.x) * 64u + lid;
}

// Element i of the chunk (row-major, 16-bit values) as its bits.
fn tr_half(i: u32) -> u32 {
  return (src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
}

// The chunk's element i (source row k0 + i / N, column i % N) as f32 bits.
fn tr_f32_bits(i: u32) -> u32 {
  if (SRC == 0u) { return src[i]; }
  if (SRC == 2u) { return tr_half(i) << 16u; }
  return f16_to_f32_bits(tr_half(i));
}

fn tr_row_words_f32() -> u32 { return chunk_k1() - chunk_k0(); }

@compute @workgroup_size(64)
fn transpose_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let t = tr_index(wid, groups, lid);
  if (t >= N * tr_row_words_f32()) { return; }
  let n = t / tr_row_words_f32();
  let j = t % tr_row_words_f32();
  dst[n * K + chunk_k0() + j] = tr_f32_bits(j * N + n);
}

// A row's elements k0 .. k1 - 1 span at most this many words (k0 even, any row parity).
fn tr_row_words_16() -> u32 { return (chunk_k1() - chunk_k0()) / 2u + 1u; }

@compute @workgroup_size(64)
fn transpose_16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let t = tr_index(wid, groups, lid);
  if (t >= N * tr_row_words_16()) { return; }
  let n = t / tr_row_words_16();
  let w = (n * K + chunk_k0()) / 2u + t % tr_row_words_16();
  if (2u * w > n * K + chunk_k1() - 1u) { return; }  // past the row's part of the chunk
  // The word's low half is row n - 1's last column (K odd, k0 = 0): that row's invocation writes it when the
  // chunk holds that column too.
  if (2u * w < n * K && chunk_k1() == K) { return; }
  var word = 0u;
  var keep = 0u;  // the bits of halves this chunk does not hold
  for (var h = 0u; h < 2u; h++) {
    let e = 2u * w + h;
    let r = e / K;
    let c = e % K;
    if (r < N && c >= chunk_k0() && c < chunk_k1()) {
      word |= tr_half((c - chunk_k0()) * N + r) << (16u * h);
    } else {
      keep |= 0xffffu << (16u * h);
    }
  }
  if (keep != 0u) { word |= dst[w] & keep; }
  dst[w] = word;
}
