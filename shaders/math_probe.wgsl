// Test kernel: evaluates math.wgsl's functions so tests can compare them with Rust's f64.
// out[6i] = exp_real(v), out[6i+1] = log1p_unit(clamp(v, 0, 1)), out[6i+2] = softplus(v),
// out[6i+3] = expm1_small(clamp(v, -0.99, 0.99)), out[6i+4] = log1p_minus_x(clamp(v, -0.64,
// 1.72)), out[6i+5] = expm1_minus_x(clamp(v, -0.99, 0.99)).

@group(0) @binding(0) var<storage, read> probe_in: array<Real>;
@group(0) @binding(1) var<storage, read_write> probe_out: array<Real>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= arrayLength(&probe_in)) {
        return;
    }
    let v = probe_in[i];
    probe_out[6u * i] = exp_real(v);
    probe_out[6u * i + 1u] = log1p_unit(clamp(v, Real(0.0), Real(1.0)));
    probe_out[6u * i + 2u] = softplus(v);
    probe_out[6u * i + 3u] = expm1_small(clamp(v, Real(-0.99), Real(0.99)));
    probe_out[6u * i + 4u] = log1p_minus_x(clamp(v, Real(-0.64), Real(1.72)));
    probe_out[6u * i + 5u] = expm1_minus_x(clamp(v, Real(-0.99), Real(0.99)));
}
