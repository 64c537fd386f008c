// Test kernel: evaluates math.wgsl's functions so tests can compare them with Rust's f64.
// out[3i] = exp_real(in[i]), out[3i+1] = log1p_unit(clamp(in[i], 0, 1)), out[3i+2] = softplus(in[i]).

@group(0) @binding(0) var<storage, read> probe_in: array<Real>;
@group(0) @binding(1) var<storage, read_write> probe_out: array<Real>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= arrayLength(&probe_in)) {
        return;
    }
    let v = probe_in[i];
    probe_out[3u * i] = exp_real(v);
    probe_out[3u * i + 1u] = log1p_unit(clamp(v, Real(0.0), Real(1.0)));
    probe_out[3u * i + 2u] = softplus(v);
}
