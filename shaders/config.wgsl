// The per-dispatch configuration every batched kernel reads (Rust mirror: KernelConfig).
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
