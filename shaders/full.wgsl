// The full method: one workgroup evaluates one perturbed forward pass (parameter i, sign
// +/-) of the whole network over every example, and writes its cost J(theta +/- eps e_i).
// The perturbation is a correction (w + d) a = w a + d a on the one row it touches
// (forward.wgsl runs the pass).
//
// Prepended by the host: `alias Real`, WG, SCRATCH, then math.wgsl, config.wgsl and
// forward.wgsl.
//
// Perturbation p (global) = 2 i + s: s = 0 is theta_i + eps, s = 1 is theta_i - eps.

// Bindings 0-6 (cfg, layer_info, theta, x, y, step, costs): forward.wgsl.

// This workgroup's perturbed parameter and the step as taken in Real arithmetic, so that
// the pass evaluates J exactly at theta_i +/- eps rounded.
var<private> param: u32;
var<private> delta: Real;

fn correction(l: u32, r: u32, k0: u32, in_base: u32, tt: vec4<u32>) -> vec4<Real> {
    let info = layer_info[l];
    if (param >= info.w_offset && param < info.b_offset) {
        let local = param - info.w_offset;
        if (r == local / info.cols) {
            return delta * inputs4(l, local % info.cols, k0, in_base, tt);
        }
    } else if (param >= info.b_offset && param < info.b_offset + info.rows && r == param - info.b_offset) {
        return vec4<Real>(delta);
    }
    return vec4<Real>(Real(0.0));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local_p = wid.y * cfg.grid_x + wid.x;
    if (local_p >= cfg.count) {
        return;
    }
    let p = cfg.base + local_p;
    param = p / 2u;
    let eps = step[0];
    let perturbed = select(theta[param] + eps, theta[param] - eps, (p & 1u) == 1u);
    delta = perturbed - theta[param];
    store_cost(p, lid, forward_cost(lid));
}
