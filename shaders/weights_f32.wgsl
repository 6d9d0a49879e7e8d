// weights_f32.wgsl — weight format snippet: matrices stored as f32. A WPack is 4 consecutive
// elements along a matrix row; unpack4 widens a pack to vec4<f32>.
//
// The block interface, which every weights_*.wgsl implements (the float formats trivially, a block
// being one pack; weights_q8_0 / q4_0 / q4_1 with ggml's blocks of 32). A row of K weights is stored
// as K / (4 WBlockPacks) blocks; block g of a table (g = row * blocks per row + b: rows are whole blocks,
// back to back) lies in the WPacks w_first(g) .. w_first(g) + WBlockWords - 1. The functions are pure:
// the kernel reads the WPacks from its own binding (every module gets a snippet, and only some
// kernels have a weight table) and hands them over.
//   WBlockPacks: u32        packs of 4 weights per block
//   WBlockWords: u32        WPacks holding one block (whatever its alignment)
//   WPackWords: u32   WPacks one pack of a block needs (random access)
//   w_first(g) -> u32                       the first WPack of block g
//   w_block(g, ws) -> array<vec4<f32>, WBlockPacks>       the block's weights, as the format defines them
//   w_dot(g, ws, xs) -> vec4<f32>           sum over packs i of xs[i] * weights of pack i (not reduced
//                                           across the 4 components: the caller sums them at the end)
//   w_pack_word(g, i, j) -> u32             the j-th WPack pack i of block g needs (j < WPackWords)
//   w_unpack(g, i, ws) -> vec4<f32>         pack i's 4 weights from those WPacks
// For the float formats these compile to exactly the single loads and unpack4 calls they replace.
alias WPack = vec4<f32>;
fn unpack4(p: WPack) -> vec4<f32> { return p; }

const WBlockPacks: u32 = 1u;
const WBlockWords: u32 = 1u;
const WPackWords: u32 = 1u;
fn w_first(g: u32) -> u32 { return g; }
fn w_block(g: u32, ws: array<WPack, 1>) -> array<vec4<f32>, 1> { return array<vec4<f32>, 1>(unpack4(ws[0])); }
fn w_dot(g: u32, ws: array<WPack, 1>, xs: array<vec4<f32>, 1>) -> vec4<f32> { return xs[0] * unpack4(ws[0]); }
fn w_pack_word(g: u32, i: u32, j: u32) -> u32 { return g; }
fn w_unpack(g: u32, i: u32, ws: array<WPack, 1>) -> vec4<f32> { return unpack4(ws[0]); }
