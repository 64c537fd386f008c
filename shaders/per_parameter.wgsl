// What the one-thread-per-parameter kernels (delta.wgsl, series.wgsl) share: the bindings
// 0-5, where a parameter sits, and the entry point. A step of W_p[row, col] changes one
// pre-activation row by s_e = eps * A_(p-1)[col, e] (eps for a bias); each kernel adds one
// example's cost change in `add_example`, and sets MEAN_OF_EXAMPLES when the sums are
// divided by m at the end. The examples [cfg.e_begin, cfg.e_end) are summed per dispatch,
// continuing the sums an earlier dispatch left in `out`, in the same order as one long
// loop: the results are bit-identical whatever the blocks and the chunking.

@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read> layer_info: array<LayerInfo>;
// Per layer, at in_offset: its input A_(p-1) (X for the first), m x n_(p-1), example-major
// so that neighbouring threads (neighbouring columns) read neighbouring words.
@group(0) @binding(2) var<storage, read> inputs: array<Real>;
// The parameter each thread perturbs.
@group(0) @binding(3) var<storage, read> indices: array<u32>;
// [eps]: the one input that changes between rounds.
@group(0) @binding(4) var<storage, read> step: array<Real>;
// Five per entry of `indices`: dJ(+eps), dJ(-eps), the sum of their terms' sizes (what each
// term's own round-off is relative to), the sum of the magnitudes of their running sums
// (what bounds the additions' round-off), and the status word
// (config.wgsl: status_word).
@group(0) @binding(5) var<storage, read_write> out: array<Real>;

// One parameter's running sums over the examples.
struct Sums {
    plus: Real,
    minus: Real,
    sizes: Real,
    partials: Real,
}

// Adds a term to both running sums (`down` to the minus step's); `size` is what their own
// roundings are relative to. A rounding may also flush a result below the smallest normal
// to 0: TINY_OVER_U (that number over u) per `live` term (one whose factors are nonzero,
// so that its exact value is too, whatever was computed) and its additions covers it; a
// term with a zero factor, a dead unit's, is exactly 0.
fn add_terms(sums: ptr<function, Sums>, up: Real, down: Real, size: Real, live: bool) {
    (*sums).plus += up;
    (*sums).minus += down;
    let floor = select(Real(0.0), TINY_OVER_U, live);
    (*sums).sizes += size + floor;
    (*sums).partials += abs((*sums).plus) + abs((*sums).minus) + Real(2.0) * floor;
}

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let item = thread_item(wid, lid);
    if (item == 0xffffffffu) {
        return;
    }
    let at = locate(indices[item]);
    let eps = step[0];
    let slot = 5u * item;
    var sums = Sums(Real(0.0), Real(0.0), Real(0.0), Real(0.0));
    var before = Real(0.0);
    if (cfg.e_begin > 0u) {
        sums.plus = out[slot];
        sums.minus = out[slot + 1u];
        sums.sizes = out[slot + 2u];
        sums.partials = out[slot + 3u];
        before = out[slot + 4u];
    }
    for (var e = cfg.e_begin; e < cfg.e_end; e++) {
        let s = step_at(at, e, eps);
        if (s == Real(0.0)) {
            continue;
        }
        add_example(at, e, s, &sums);
    }
    if (MEAN_OF_EXAMPLES && cfg.e_end == cfg.examples) {
        let m = Real(cfg.examples);
        sums.plus = sums.plus / m;
        sums.minus = sums.minus / m;
        sums.sizes = sums.sizes / m;
        sums.partials = sums.partials / m;
    }
    out[slot] = sums.plus;
    out[slot + 1u] = sums.minus;
    out[slot + 2u] = sums.sizes;
    out[slot + 3u] = sums.partials;
    out[slot + 4u] = status_word(before, loops_completed(cfg.probe));
}
