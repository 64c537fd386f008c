// Test kernel: evaluates math.wgsl's functions and the smooth activations so tests can compare them with Rust's f64.
// out[7i] = exp_real(v), out[7i+1] = log1p_unit(clamp(v, 0, 1)), out[7i+2] = softplus(v),
// out[7i+3] = log1p_minus_x(clamp(v, -0.64, 1.72)), out[7i+4] = expm1_minus_x(clamp(v, -0.99,
// 0.99)), out[7i+5] = act_tanh(v), out[7i+6] = act_sigmoid(v) (activations.wgsl).

@group(0) @binding(0) var<storage, read> probe_in: array<Real>;
@group(0) @binding(1) var<storage, read_write> probe_out: array<Real>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= arrayLength(&probe_in)) {
        return;
    }
    let v = probe_in[i];
    probe_out[7u * i] = exp_real(v);
    probe_out[7u * i + 1u] = log1p_unit(clamp(v, Real(0.0), Real(1.0)));
    probe_out[7u * i + 2u] = softplus(v);
    probe_out[7u * i + 3u] = log1p_minus_x(clamp(v, Real(-0.64), Real(1.72)));
    probe_out[7u * i + 4u] = expm1_minus_x(clamp(v, Real(-0.99), Real(0.99)));
    probe_out[7u * i + 5u] = act_tanh(v);
    probe_out[7u * i + 6u] = act_sigmoid(v);
}
