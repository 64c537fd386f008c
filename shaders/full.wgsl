// The full method: one workgroup evaluates one perturbed forward pass (parameter i, sign
// +/-) of the whole network over every example, and writes its cost J(theta +/- eps e_i).
// The weights are shared by all workgroups; the perturbation is applied as a correction
// (w + d) a = w a + d a on the one row it touches, so theta is never copied.
//
// Prepended by the host: `alias Real`, WG (threads per workgroup, a power of two) and
// SCRATCH (workgroup-memory activations, in Reals). Then math.wgsl and config.wgsl.
//
// Perturbation p (global) = 2 i + s: s = 0 is theta_i + eps, s = 1 is theta_i - eps.



@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read> layer_info: array<LayerInfo>;
@group(0) @binding(2) var<storage, read> theta: array<Real>;
// X is n0 x m and Y is nL x m, row-major (examples are columns).
@group(0) @binding(3) var<storage, read> x: array<Real>;
@group(0) @binding(4) var<storage, read> y: array<Real>;
// [eps]
@group(0) @binding(5) var<storage, read> step: array<Real>;
// One cost per global perturbation.
@group(0) @binding(6) var<storage, read_write> costs: array<Real>;

// Two halves: the activations going into the current layer and those coming out.
var<workgroup> act: array<Real, SCRATCH>;
var<workgroup> partial: array<Real, WG>;

// Input c of layer l for the four examples k0 + tt: X for the first layer, else the
// activations of the previous layer in workgroup memory (at in_base).
fn inputs4(l: u32, c: u32, k0: u32, in_base: u32, tt: vec4<u32>) -> vec4<Real> {
    if (l == 0u) {
        let row = c * cfg.examples + k0;
        return vec4<Real>(x[row + tt.x], x[row + tt.y], x[row + tt.z], x[row + tt.w]);
    }
    let row = in_base + c * cfg.tile;
    return vec4<Real>(act[row + tt.x], act[row + tt.y], act[row + tt.z], act[row + tt.w]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local_p = wid.y * cfg.grid_x + wid.x;
    if (local_p >= cfg.count) {
        return;
    }
    let p = cfg.base + local_p;
    let param = p / 2u;
    let eps = step[0];
    let perturbed = select(theta[param] + eps, theta[param] - eps, (p & 1u) == 1u);
    // The step as taken in Real arithmetic, so the pass evaluates J exactly at `perturbed`.
    let delta = perturbed - theta[param];

    let m = cfg.examples;
    let tile = cfg.tile;
    let half = SCRATCH / 2u;
    var acc = Real(0.0);
    for (var k0 = 0u; k0 < m; k0 += tile) {
        let tcount = min(tile, m - k0);
        var in_base = 0u;
        var out_base = half;
        for (var l = 0u; l < cfg.layers; l++) {
            let info = layer_info[l];
            let last = l + 1u == cfg.layers;
            let in_w = param >= info.w_offset && param < info.b_offset;
            let hit_row = select(0xffffffffu, (param - info.w_offset) / info.cols, in_w);
            let hit_col = select(0u, (param - info.w_offset) % info.cols, in_w);
            let in_b = param >= info.b_offset && param < info.b_offset + info.rows;
            let hit_bias = select(0xffffffffu, param - info.b_offset, in_b);
            // Each thread computes 4 rows x 4 examples per step: every weight it loads
            // serves 4 examples and every input 4 rows (loads, not FLOPs, bound lavapipe).
            let row_blocks = (info.rows + 3u) / 4u;
            let ex_blocks = (tcount + 3u) / 4u;
            for (var e = lid; e < row_blocks * ex_blocks; e += WG) {
                let r0 = (e / ex_blocks) * 4u;
                let t0 = (e % ex_blocks) * 4u;
                // Rows and examples past the edge are clamped for loading, dropped on output.
                let rr = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(info.rows - 1u));
                let tt = min(vec4<u32>(t0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(tcount - 1u));
                var z0 = vec4<Real>(theta[info.b_offset + rr.x]);
                var z1 = vec4<Real>(theta[info.b_offset + rr.y]);
                var z2 = vec4<Real>(theta[info.b_offset + rr.z]);
                var z3 = vec4<Real>(theta[info.b_offset + rr.w]);
                let w0 = info.w_offset + rr * info.cols;
                for (var c = 0u; c < info.cols; c++) {
                    let a = inputs4(l, c, k0, in_base, tt);
                    z0 += theta[w0.x + c] * a;
                    z1 += theta[w0.y + c] * a;
                    z2 += theta[w0.z + c] * a;
                    z3 += theta[w0.w + c] * a;
                }
                var zs = array<vec4<Real>, 4>(z0, z1, z2, z3);
                for (var i = 0u; i < 4u; i++) {
                    let r = r0 + i;
                    if (r >= info.rows) {
                        break;
                    }
                    var zr = zs[i];
                    if (r == hit_row) {
                        zr += delta * inputs4(l, hit_col, k0, in_base, tt);
                    }
                    if (r == hit_bias) {
                        zr += vec4<Real>(delta);
                    }
                    for (var j = 0u; j < 4u; j++) {
                        let t = t0 + j;
                        if (t >= tcount) {
                            break;
                        }
                        let z = zr[j];
                        if (last) {
                            acc += softplus(z) - y[r * m + k0 + t] * z;
                        } else {
                            act[out_base + r * tile + t] = max(z, Real(0.0));
                        }
                    }
                }
            }
            workgroupBarrier();
            let swap = in_base;
            in_base = out_base;
            out_base = swap;
        }
    }

    // Fixed-order tree reduction: the same sum, bit for bit, on every run.
    partial[lid] = acc;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        costs[p] = partial[0] / Real(m);
    }
}
