// The delta method: one thread per parameter evaluates both perturbations (+eps, -eps).
// A step of W_p[row, col] changes one pre-activation row by s_e = eps * A_(p-1)[col, e]
// (eps for a bias); until a ReLU input crosses 0 the network is linear, so the output
// logits change by exactly s_e * gain[row, e, o], and no ReLU crosses while
// |s_e| < reach[row, e]. Both are precomputed per row on the host (cpu/sensitivity.rs),
// shared by every parameter of the row. A crossing is flagged; each cost term changes by
// r d + R(d), with r = sigma - y from the host and R the remainder (math.wgsl:
// softplus_remainder), both free of cancellation, summed over examples in a fixed order, so
// results are bit-identical whatever the dispatch chunking.
//
// Prepended by the host: `alias Real`, REAL_EPSILON and WG. Then math.wgsl, config.wgsl and
// per_parameter.wgsl.

// Bindings 0-2 (cfg, layer_info, inputs) and the parameter's place: per_parameter.wgsl.
// Per layer, at z_offset * n_L: d z_L[o, e] / d z_p[row, e], indexed [row, e, o].
@group(0) @binding(3) var<storage, read> gain: array<Real>;
// Per layer, at z_offset: the |change| of z_p[row, e] at which a ReLU first crosses.
@group(0) @binding(4) var<storage, read> reach: array<Real>;
// The unperturbed output logits z, their sigmoid, and sigma - y (from f64), n_L x m each,
// one after the other: one binding, so that the kernel stays within WebGPU's 8 storage
// buffers per stage.
@group(0) @binding(5) var<storage, read> logits: array<Real>;
// The parameter each thread perturbs.
@group(0) @binding(6) var<storage, read> indices: array<u32>;
// [eps]: the one input that changes between rounds (the kink re-check).
@group(0) @binding(7) var<storage, read> step: array<Real>;
// Four per entry of `indices`: dJ(+eps), dJ(-eps), magnitude of the terms, kink (0 or 1).
@group(0) @binding(8) var<storage, read_write> out: array<Real>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let item = thread_item(wid, lid);
    if (item == 0xffffffffu) {
        return;
    }
    let at = locate(indices[item]);
    let info = layer_info[at.x];
    let row = at.y;
    let m = cfg.examples;
    let outs = layer_info[cfg.layers - 1u].rows;
    let block = outs * m;
    let eps = step[0];
    let row_at = row * m;
    let gain_base = info.z_offset * outs;

    var plus = Real(0.0);
    var minus = Real(0.0);
    var magnitude = Real(0.0);
    var kinked = false;
    for (var e = 0u; e < m; e++) {
        let s = step_at(at, e, eps);
        if (s == Real(0.0)) {
            continue;
        }
        if (abs(s) >= reach[info.z_offset + row_at + e]) {
            kinked = true;
        }
        for (var o = 0u; o < outs; o++) {
            let d = s * gain[gain_base + (row_at + e) * outs + o];
            let at = o * m + e;
            let zz = logits[at];
            let sg = logits[block + at];
            let linear = logits[2u * block + at] * d;
            let rest_up = softplus_remainder(zz, sg, d);
            let rest_down = softplus_remainder(zz, sg, -d);
            plus += linear + rest_up;
            minus += rest_down - linear;
            magnitude += Real(2.0) * abs(linear) + abs(rest_up) + abs(rest_down);
        }
    }
    out[4u * item] = plus / Real(m);
    out[4u * item + 1u] = minus / Real(m);
    out[4u * item + 2u] = magnitude / Real(m);
    out[4u * item + 3u] = select(Real(0.0), Real(1.0), kinked);
}
