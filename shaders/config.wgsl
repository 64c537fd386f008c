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
    _pad0: u32,
    _pad1: u32,
}

struct LayerInfo {
    rows: u32,
    cols: u32,
    // Flat offsets of W_l and b_l in theta.
    w_offset: u32,
    b_offset: u32,
    // Offset of this layer's n_l x m block in the unperturbed Z and A (delta method).
    z_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
