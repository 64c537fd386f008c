// What every batched kernel reads: the per-dispatch configuration (Rust mirror:
// KernelConfig) and one LayerInfo per layer (Rust mirror: LayerInfo).
struct Config {
    layers: u32,
    examples: u32,
    // Examples per tile: their activations fit in workgroup memory.
    tile: u32,
    // Workgroups in this dispatch, and the global index of the first.
    count: u32,
    base: u32,
    // Workgroups along x in this dispatch (the grid is 2-D past 65535).
    grid_x: u32,
    // Work items of the whole evaluation, for kernels with one item per thread (delta).
    items: u32,
    // The examples this dispatch sums, [e_begin, e_end): a kernel continues the sums an
    // earlier dispatch of the same items left in its output, so that no invocation loops
    // long enough to meet a driver's loop limit (llvmpipe stops every loop of an
    // invocation after 65535 iterations in all).
    e_begin: u32,
    e_end: u32,
    // Iterations of the closing probe loop (2): fewer show that a loop limit cut the
    // invocation's loops short.
    probe: u32,
    _pad1: u32,
}

struct LayerInfo {
    rows: u32,
    cols: u32,
    // Flat offsets of W_l and b_l in theta.
    w_offset: u32,
    b_offset: u32,
    // Offset of this layer's n_l x m block in per-unit, per-example arrays (the delta
    // method's reach; its gain, n_L values per entry, starts at z_offset * n_L).
    z_offset: u32,
    // Offset of this layer's m x n_(l-1) input block (delta method).
    in_offset: u32,
    // Offset of this hidden layer's dropout mask (n_l x m) in the X buffer.
    mask_offset: u32,
    _pad2: u32,
}

// Whether this invocation's loops all ran to their end: the closing loop runs `probe`
// times only if no loop limit has expired (a limiter shared by every loop of an
// invocation, as llvmpipe's is, stops this one short too). `probe` comes from the config,
// so that no compiler can unroll the loop away.
fn loops_completed(probe: u32) -> bool {
    var n = 0u;
    for (var k = 0u; k < probe; k++) {
        n++;
    }
    return n == probe;
}

// An item's status word after one more block of examples: the blocks whose loops all
// completed, `before` counting the blocks before.
fn status_word(before: Real, completed: bool) -> Real {
    return before + select(Real(0.0), Real(1.0), completed);
}
