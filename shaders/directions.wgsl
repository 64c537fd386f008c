// Directional checks (--directions): workgroup p = 2k + s evaluates one whole perturbed
// forward pass, J(theta + eps v_k) for s = 0 and J(theta - eps v_k) for s = 1, where v_k is
// a unit vector over the coordinates of one tensor (a weight matrix or a bias). The
// perturbation is the correction eps (V_k a) on its layer (forward.wgsl runs the pass).
//
// Prepended by the host: `alias Real`, WG, SCRATCH, then math.wgsl, config.wgsl and
// forward.wgsl.

// Bindings 0-6 (cfg, layer_info, theta, x, y, step, costs): forward.wgsl.
// The directions' entries, one tensor's worth each, back to back (row-major for weights).
@group(0) @binding(7) var<storage, read> dirs: array<Real>;
// Per direction: its layer, 1 for a bias (0 for weights), its offset in `dirs`, unused.
@group(0) @binding(8) var<storage, read> dir_info: array<vec4<u32>>;

// This workgroup's direction and signed step.
var<private> dir: vec4<u32>;
var<private> signed_step: Real;

fn correction(l: u32, r: u32, k0: u32, in_base: u32, tt: vec4<u32>) -> vec4<Real> {
    if (l != dir.x) {
        return vec4<Real>(Real(0.0));
    }
    if (dir.y == 1u) {
        return vec4<Real>(signed_step * dirs[dir.z + r]);
    }
    let info = layer_info[l];
    let row = dir.z + r * info.cols;
    var sum = vec4<Real>(Real(0.0));
    for (var c = 0u; c < info.cols; c++) {
        sum += dirs[row + c] * inputs4(l, c, k0, in_base, tt);
    }
    return signed_step * sum;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local_p = wid.y * cfg.grid_x + wid.x;
    if (local_p >= cfg.count) {
        return;
    }
    let p = cfg.base + local_p;
    dir = dir_info[p / 2u];
    signed_step = select(step[0], -step[0], (p & 1u) == 1u);
    store_cost(p, lid, forward_cost(lid));
}
