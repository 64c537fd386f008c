// The delta method: one thread per parameter evaluates both perturbations (+eps, -eps).
// A step of W_p[row, col] changes one pre-activation row by s_e = eps * A_(p-1)[col, e]
// (eps for a bias); between kinks the network is linear, so the output logits change by
// exactly s_e * gain[row, e, o], precomputed per row on the host (cpu/sensitivity.rs) and
// shared by every parameter of the row; each cost term changes by
// r d + R(d), with r = sigma - y from the host and R the remainder (math.wgsl:
// softplus_remainder), both free of cancellation, summed over examples in a fixed order, so
// results are bit-identical whatever the dispatch chunking.
//
// Prepended by the host: `alias Real`, REAL_EPSILON and WG. Then math.wgsl, config.wgsl and
// per_parameter.wgsl (bindings 0-5 and the entry point, which calls add_example).

const MEAN_OF_EXAMPLES: bool = true;

// Per layer, at z_offset * n_L: d z_L[o, e] / d z_p[row, e], indexed [row, e, o].
@group(0) @binding(6) var<storage, read> gain: array<Real>;
// The unperturbed output logits z, their sigmoid, and sigma - y (from f64), n_L x m each,
// one after the other: one binding, so that the kernel stays within WebGPU's 8 storage
// buffers per stage.
@group(0) @binding(7) var<storage, read> logits: array<Real>;

// Example e's cost changes for the parameter at `at` (step s_e = s), added to `sums`.
fn add_example(at: vec4<u32>, e: u32, s: Real, sums: ptr<function, Sums>) {
    let info = layer_info[at.x];
    let row = at.y;
    let m = cfg.examples;
    let outs = layer_info[cfg.layers - 1u].rows;
    let block = outs * m;
    let row_at = row * m;
    let gain_base = info.z_offset * outs;
    for (var o = 0u; o < outs; o++) {
        let g = gain[gain_base + (row_at + e) * outs + o];
        let d = s * g;
        let at = o * m + e;
        let zz = logits[at];
        let sg = logits[block + at];
        let linear = logits[2u * block + at] * d;
        let rest_up = softplus_remainder(zz, sg, d);
        let rest_down = softplus_remainder(zz, sg, -d);
        add_terms(
            sums,
            linear + rest_up,
            rest_down - linear,
            Real(2.0) * abs(linear) + abs(rest_up) + abs(rest_down),
            g != Real(0.0),
        );
    }
}
