// The delta method for any model: one thread per parameter evaluates both perturbations
// (+eps, -eps). A step of W_p[row, col] changes one pre-activation row by
// s_e = eps * A_(p-1)[col, e] (eps for a bias), and the cost by sum_e g_(row, e)(s_e), with
// g a polynomial of degree ORDER per unit and example, computed once on the host
// (cpu/series.rs) and shared by every parameter of the row. Sums run over the examples in a fixed order:
// results are bit-identical whatever the dispatch chunking.
//
// Prepended by the host: `alias Real`, REAL_EPSILON, WG and ORDER. Then math.wgsl,
// config.wgsl and per_parameter.wgsl (bindings 0-5 and the entry point, which calls
// add_example).

// The series carry the reduction already.
const MEAN_OF_EXAMPLES: bool = false;

// Per layer, at z_offset * ORDER: the coefficients of s^1 .. s^ORDER, indexed [row, e, k].
@group(0) @binding(6) var<storage, read> coeff: array<Real>;

// Example e's cost changes for the parameter at `at` (step s_e = s), added to `sums`.
fn add_example(at: vec4<u32>, e: u32, s: Real, sums: ptr<function, Sums>) {
    let info = layer_info[at.x];
    let at_e = info.z_offset + at.y * cfg.examples + e;
    var power = Real(1.0);
    for (var k = 0u; k < ORDER; k++) {
        power *= s;
        let c = coeff[at_e * ORDER + k];
        let term = c * power;
        // Odd powers (k even) change sign with the step.
        add_terms(
            sums,
            term,
            select(term, -term, (k & 1u) == 0u),
            Real(2.0) * abs(term),
            c != Real(0.0),
        );
    }
}
