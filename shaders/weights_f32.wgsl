// weights_f32.wgsl — weight format snippet: matrices stored as f32. A WPack is 4 consecutive
// elements along a matrix row; unpack4 widens a pack to vec4<f32>.
//
// The block interface, which every weights_*.wgsl implements (the float formats trivially, a block
// being one pack; weights_q8_0 / q4_0 / q4_1 / q5_0 / q5_1 with ggml's blocks of 32; weights_q4_k /
// q5_k / q6_k with the 32-weight sub-blocks of ggml's super-blocks of 256). A row of K weights is stored as K / (4
// WBlockPacks) blocks; block g of a table (g = row * blocks per row + b: rows are whole blocks, or
// whole super-blocks, back to back) lies in the WPacks w_block_word(g, k), k < WBlockWords. The functions
// are pure: the kernel reads the WPacks from its own binding (every module gets a snippet, and only
// some kernels have a weight table) and hands them over as value arrays of fixed sizes (the most any
// format needs; a format reads the first WBlockWords / WPackWords of them and fills the first
// WBlockPacks packs). Value arrays with constant indices stay in registers; a `var` array indexed in
// a loop is kept in memory by SwiftShader's compiler (4x slower GEMV there).
//   WBlockPacks: u32   packs of 4 weights per block (at most 8)
//   WBlockWords: u32   WPacks one block needs, whatever its alignment (at most 20)
//   WPackWords: u32    WPacks one pack of a block needs (at most 6)
//   w_block_word(g, k) -> u32      the k-th WPack of block g (k < 20: from k = WBlockWords on, the last)
//   w_block(g, ws: array<WPack, 20>) -> array<vec4<f32>, 8>   the block's weights from those WPacks
//   w_dot(g, ws: array<WPack, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32>
//                                  sum over packs i of xs[i] * the weights of pack i, per component
//                                  (the caller adds the 4 components up at the end)
//   w_pack_word(g, i, j) -> u32    the j-th WPack that pack i of block g needs (j < WPackWords)
//   w_unpack(g, i, ws: array<WPack, 6>) -> vec4<f32>   pack i's 4 weights from those WPacks
//   WSegPacks: u32     packs of a segment: the packs of a block that share their WPacks (Q4_0 / Q4_1 / Q5_0 / Q5_1:
//                      the low and high nibbles of a word, packs s and s + 4; else 1)
//   w_seg_pack(s, j) -> u32        the j-th pack of segment s (j < WSegPacks; segment s's WPacks are
//                                  those of its pack 0)
//   w_seg_dot(g, s, ws: array<WPack, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32>
//                                  sum over the segment's packs j of xs[j] * their weights, per component
// A GPU kernel gives consecutive lanes consecutive segments (coalesced reads of W and of the input);
// a CPU adapter's one invocation per row reads whole blocks.
// For the float formats the kernels' pack-by-pack paths (w_pack_word, w_unpack) compile to exactly
// the single load and unpack4 they replace.
// Run alone (checked against numpy): python3 -m pytest -q tests/test_kernels.py tests/test_kernels_llama.py -k f32
alias WPack = vec4<f32>;
fn unpack4(p: WPack) -> vec4<f32> { return p; }

const WBlockPacks: u32 = 1u;
const WBlockWords: u32 = 1u;
const WPackWords: u32 = 1u;
fn w_block_word(g: u32, k: u32) -> u32 { return g; }
fn w_block(g: u32, ws: array<WPack, 20>) -> array<vec4<f32>, 8> {
  return array<vec4<f32>, 8>(unpack4(ws[0]), vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>(),
                             vec4<f32>(), vec4<f32>());
}
fn w_dot(g: u32, ws: array<WPack, 20>, xs: array<vec4<f32>, 8>) -> vec4<f32> { return xs[0] * unpack4(ws[0]); }
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return g; }
fn w_unpack(g: u32, i: u32, ws: array<WPack, 6>) -> vec4<f32> { return unpack4(ws[0]); }
const WSegPacks: u32 = 1u;
fn w_seg_pack(s: u32, j: u32) -> u32 { return 0u; }
fn w_seg_dot(g: u32, s: u32, ws: array<WPack, 6>, xs: array<vec4<f32>, 2>) -> vec4<f32> { return xs[0] * unpack4(ws[0]); }
