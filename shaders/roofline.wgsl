// roofline.wgsl — what the adapter can do at best, measured by app/roofline.py through the engine's own
// GPU code in the same run as the model, so that every decode figure can be given as a fraction of
// the read bandwidth and every prefill figure as a fraction of the f32 FMA rate; and random weights
// for synthetic models (shapes whose real files are too big to carry to a lent GPU).
// Entry points:
//   read_stream  the read roofline: the invocations stream the whole of `src` with vec4<u32> loads
//                (16 bytes each), grid-stride (consecutive invocations read consecutive 16 bytes, so a
//                warp reads 512 contiguous bytes per load), READ_UNROLL independent loads in flight per
//                invocation, XOR-accumulated so that no load can be dropped; as
//                ../shared/gpu/readbw.mjs does outside the engine. READ_CHUNKED instead gives each
//                invocation one contiguous range (what a CPU adapter streams best: SwiftShader runs
//                the invocations of a workgroup a few at a time, so a grid-stride pattern has little
//                in flight there). Dispatch (G, 1, 1), any G. `src` may be a window of a larger
//                buffer (app/roofline.py read_by_size: one dispatch per window, as a GEMV per matrix).
//   fma_rate     the f32 FMA roofline: each invocation runs FMA_ITERS iterations of two rounds of 8
//                independent vec4 fma chains (64 FMA = 128 FLOP per iteration), from values the
//                compiler cannot know, and writes nothing (a test it cannot decide guards the store).
//                Dispatch (G, 1, 1): 256 G FMA_ITERS 128 FLOP.
//   dispatch_step the cost of one dispatch in a chain of them: invocation 0 adds 1 to sink[0], so each
//                dispatch of a pass depends on the one before (the pass puts a barrier between them, as
//                between the dispatches of a decode step); the rest of the G workgroups do nothing.
//                Dispatch (G, 1, 1): G = 1 the bare launch and barrier, G = a GEMV's grid their cost
//                with the workgroups a decode kernel launches.
//   fill_random  words [0, arrayLength(dst)) of dst get random weights in format FILL_FORMAT, seeded
//                by params[0], spread params[1] and centre params[2] (f32 bits): floats uniform in
//                centre +- spread; Q8_0 / Q4_0 / Q4_1 blocks whose f16 scales (random in [0.5, 1] of
//                the largest) make the dequantized weights span about +- spread around the centre
//                (0 for Q8_0 / Q4_0), their int8 / nibbles uniform. The scale bytes fall wherever the
//                GPU's layout puts them (34 / 20-byte blocks from byte 0; Q4_0 in groups of 8 blocks,
//                scales first: weights_q4_0.wgsl), so a buffer holds valid blocks. Grid-stride: dispatch (G, 1, 1),
//                any G. The seed, spread and centre come in a buffer (not constants) so that one
//                pipeline per format fills every weight of a model.
// Layout: src vec4<u32> [any]; sink u32 [>= 1] (never written in practice); dst u32 [any];
//   params u32 [3].
// Workgroup: 256 invocations.
// Constants:
//   READ_UNROLL: u32   loads in flight per invocation of read_stream (>= 1; with READ_CHUNKED 1, 2, 4 or 8)
//   READ_CHUNKED: bool read_stream: a contiguous range per invocation instead of grid-stride
//   FMA_ITERS: u32     iterations of fma_rate
//   FILL_FORMAT: u32   fill_random's format: 0 F32, 1 F16, 2 BF16, 3 Q8_0, 4 Q4_0, 5 Q4_1
// Run alone: python3 -m pytest -q tests/test_kernels_quant.py -k random_fill (the fill, decoded in numpy) and tests/test_bench.py (the probes)
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> params: array<u32>;

@compute @workgroup_size(256)
fn read_stream(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = arrayLength(&src);
  let stride = groups.x * 256u;
  var acc = vec4<u32>(0u);
  if (READ_CHUNKED) {
    // READ_UNROLL (1, 2, 4 or 8) loads an iteration, written out: SwiftShader pays for every loop
    // iteration (its lanes' masks), and 8 loads an iteration read ~40% faster there than 1
    let per = (total + stride - 1u) / stride;
    let end = min(total, (gid.x + 1u) * per);
    var i = gid.x * per;
    for (; i + READ_UNROLL <= end; i += READ_UNROLL) {
      acc ^= src[i];
      if (READ_UNROLL > 1u) { acc ^= src[i + 1u]; }
      if (READ_UNROLL > 2u) { acc ^= src[i + 2u] ^ src[i + 3u]; }
      if (READ_UNROLL > 4u) { acc ^= src[i + 4u] ^ src[i + 5u] ^ src[i + 6u] ^ src[i + 7u]; }
    }
    for (; i < end; i++) { acc ^= src[i]; }
  } else {
    var i = gid.x;
    for (; i + (READ_UNROLL - 1u) * stride < total; i += READ_UNROLL * stride) {
      for (var k = 0u; k < READ_UNROLL; k++) { acc ^= src[i + k * stride]; }
    }
    for (; i < total; i += stride) { acc ^= src[i]; }
  }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9e3779b9u) { sink[0] = gid.x; }
}

@compute @workgroup_size(256)
fn fma_rate(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = f32(gid.x & 1023u) * 1e-6;
  let m = vec4<f32>(0.999999 - s);
  let c = vec4<f32>(1e-7 + s);
  var a0 = vec4<f32>(s, s + 0.01, s + 0.02, s + 0.03);
  var a1 = a0 + 0.1;
  var a2 = a0 + 0.2;
  var a3 = a0 + 0.3;
  var a4 = a0 + 0.4;
  var a5 = a0 + 0.5;
  var a6 = a0 + 0.6;
  var a7 = a0 + 0.7;
  for (var i = 0u; i < FMA_ITERS; i++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  let t = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
  if (t.x + t.y + t.z + t.w == -1.0) { sink[0] = gid.x; }
}

@compute @workgroup_size(256)
fn dispatch_step(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x == 0u) { sink[0] = sink[0] + 1u; }
}

// lowbias32 (Chris Wellons): a cheap 32-bit hash whose low and high bits are both well mixed.
fn fill_hash(x: u32) -> u32 {
  var h = x ^ params[0];
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

fn fill_unit(h: u32) -> f32 { return f32(h >> 8u) * (1.0 / 16777216.0); }  // [0, 1)

fn fill_value(h: u32) -> f32 {
  return bitcast<f32>(params[2]) + bitcast<f32>(params[1]) * (2.0 * fill_unit(h) - 1.0);
}

const FILL_BLOCK_BYTES: u32 = select(20u, 34u, FILL_FORMAT == 3u);  // Q8_0, Q4_1 (Q4_0: groups of 144, below)
const FILL_HEAD_BYTES: u32 = select(2u, 4u, FILL_FORMAT == 5u);  // d (and m for Q4_1), f16 each

// The scale bytes of block `b` of a block format, as a u32 (d in the low half, Q4_1's m in the high).
fn fill_block_head(b: u32) -> u32 {
  let spread = bitcast<f32>(params[1]);
  let r = 0.5 + 0.5 * fill_unit(fill_hash(0x85ebca6bu ^ (b * 2654435761u)));
  if (FILL_FORMAT == 3u) { return pack2x16float(vec2<f32>(spread * r / 127.0, 0.0)); }
  if (FILL_FORMAT == 4u) { return pack2x16float(vec2<f32>(spread * r / 8.0, 0.0)); }
  let centre = bitcast<f32>(params[2]);
  return pack2x16float(vec2<f32>(2.0 * spread * r / 15.0, centre - spread * r));
}

@compute @workgroup_size(256)
fn fill_random(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = arrayLength(&dst);
  let stride = groups.x * 256u;
  for (var i = gid.x; i < total; i += stride) {
    let h = fill_hash(i);
    if (FILL_FORMAT == 0u) {
      dst[i] = bitcast<u32>(fill_value(h));
    } else if (FILL_FORMAT == 1u) {
      dst[i] = pack2x16float(vec2<f32>(fill_value(h << 8u), fill_value(h & 0xffffff00u)));
    } else if (FILL_FORMAT == 2u) {
      let lo = bitcast<u32>(fill_value(h << 8u)) >> 16u;
      dst[i] = lo | (bitcast<u32>(fill_value(h & 0xffffff00u)) & 0xffff0000u);
    } else {
      // random int8 / nibbles, then the bytes of this word that are some block's scale
      var word = h;
      for (var j = 0u; j < 4u; j++) {
        let byte = 4u * i + j;
        var block = byte / FILL_BLOCK_BYTES;
        var at = byte % FILL_BLOCK_BYTES;
        if (FILL_FORMAT == 4u) {  // Q4_0 in the GPU's groups of 8 (weights_q4_0.wgsl): the scales first
          let o = byte % (4u * Q4_0_GROUP_WORDS);
          block = 8u * (byte / (4u * Q4_0_GROUP_WORDS)) + o / 2u;
          at = select(FILL_HEAD_BYTES, o % 2u, o < 16u);
        }
        if (at < FILL_HEAD_BYTES) {
          let head = fill_block_head(block);
          word = (word & ~(0xffu << (8u * j))) | (((head >> (8u * at)) & 0xffu) << (8u * j));
        }
      }
      dst[i] = word;
    }
  }
}
