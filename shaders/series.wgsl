// The delta method for any model: one thread per parameter evaluates both perturbations
// (+eps, -eps). A step of W_p[row, col] changes one pre-activation row by
// s_e = eps * A_(p-1)[col, e] (eps for a bias), and the cost by sum_e g_(row, e)(s_e), with
// g a polynomial of degree ORDER per unit and example, computed once on the host
// (cpu/series.rs) and shared by every parameter of the row. A step that may reach a
// kinked unit's kink (MARGIN * |s_e| >= reach) is flagged. Sums run over the examples in a
// fixed order: results are bit-identical whatever the dispatch chunking.
//
// Prepended by the host: `alias Real`, REAL_EPSILON, WG, ORDER and MARGIN. Then math.wgsl,
// config.wgsl and per_parameter.wgsl.

// Bindings 0-2 (cfg, layer_info, inputs) and the parameter's place: per_parameter.wgsl.
// Per layer, at z_offset * ORDER: the coefficients of s^1 .. s^ORDER, indexed [row, e, k].
@group(0) @binding(3) var<storage, read> coeff: array<Real>;
// Per layer, at z_offset: the |change| of z_p[row, e] at which a kinked unit may cross.
@group(0) @binding(4) var<storage, read> reach: array<Real>;
// The parameter each thread perturbs.
@group(0) @binding(5) var<storage, read> indices: array<u32>;
// [eps]: the one input that changes between rounds (the kink re-check).
@group(0) @binding(6) var<storage, read> step: array<Real>;
// Four per entry of `indices`: dJ(+eps), dJ(-eps), magnitude of the terms, kink (0 or 1).
@group(0) @binding(7) var<storage, read_write> out: array<Real>;

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
    let eps = step[0];

    var plus = Real(0.0);
    var minus = Real(0.0);
    var magnitude = Real(0.0);
    var kinked = false;
    for (var e = 0u; e < m; e++) {
        let s = step_at(at, e, eps);
        if (s == Real(0.0)) {
            continue;
        }
        let at = info.z_offset + row * m + e;
        if (Real(MARGIN) * abs(s) >= reach[at]) {
            kinked = true;
        }
        var power = Real(1.0);
        for (var k = 0u; k < ORDER; k++) {
            power *= s;
            let term = coeff[at * ORDER + k] * power;
            plus += term;
            // Odd powers (k even) change sign with the step.
            minus += select(term, -term, (k & 1u) == 0u);
            magnitude += Real(2.0) * abs(term);
        }
    }
    out[4u * item] = plus;
    out[4u * item + 1u] = minus;
    out[4u * item + 2u] = magnitude;
    out[4u * item + 3u] = select(Real(0.0), Real(1.0), kinked);
}
