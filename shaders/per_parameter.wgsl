// What the one-thread-per-parameter kernels (delta.wgsl, series.wgsl) share: the bindings
// 0-2 and where a parameter sits. A step of W_p[row, col] changes one pre-activation row by
// s_e = eps * A_(p-1)[col, e] (eps for a bias).

@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read> layer_info: array<LayerInfo>;
// Per layer, at in_offset: its input A_(p-1) (X for the first), m x n_(p-1), example-major
// so that neighbouring threads (neighbouring columns) read neighbouring words.
@group(0) @binding(2) var<storage, read> inputs: array<Real>;

// The flat parameter this thread perturbs, or none past the last work item.
fn thread_item(wid: vec3<u32>, lid: u32) -> u32 {
    let local_w = wid.y * cfg.grid_x + wid.x;
    if (local_w >= cfg.count) {
        return 0xffffffffu;
    }
    let item = (cfg.base + local_w) * WG + lid;
    return select(0xffffffffu, item, item < cfg.items);
}

// Where flat parameter q sits: (layer, row, column, 1 for a weight), by the layer table
// (the kernels' copy of model::layout::ParamLayout::locate).
fn locate(q: u32) -> vec4<u32> {
    var p = 0u;
    for (var l = 0u; l < cfg.layers; l++) {
        if (q < layer_info[l].b_offset + layer_info[l].rows) {
            p = l;
            break;
        }
    }
    let info = layer_info[p];
    let is_weight = q < info.b_offset;
    let cols = max(info.cols, 1u);
    let row = select(q - info.b_offset, (q - info.w_offset) / cols, is_weight);
    let col = select(0u, (q - info.w_offset) % cols, is_weight);
    return vec4<u32>(p, row, col, select(0u, 1u, is_weight));
}

// The step s_e of example e for the parameter at `at` (from locate).
fn step_at(at: vec4<u32>, e: u32, eps: Real) -> Real {
    if (at.w == 0u) {
        return eps;
    }
    let info = layer_info[at.x];
    return eps * inputs[info.in_offset + e * info.cols + at.z];
}
