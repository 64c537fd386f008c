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
