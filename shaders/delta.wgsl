// The delta method: one workgroup per parameter evaluates both perturbations (+eps, -eps)
// at once as vec2 lanes, propagating only the change they make from the unperturbed pass
// (precomputed: Z_l, A_l and sigmoid(Z_L)). Layer p's change is one row; the next layer's is
// rank one (a column of W times that row); deeper layers are dense. ReLUs are crossed
// exactly, and any crossing of 0 is flagged. The cost change is computed without
// cancellation (math.wgsl: cost_term_change).
//
// Prepended by the host: `alias Real`, WG (a power of two) and DSCRATCH (vec2 entries of
// workgroup memory for the activation changes). Then math.wgsl and config.wgsl.



@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read> layer_info: array<LayerInfo>;
@group(0) @binding(2) var<storage, read> theta: array<Real>;
@group(0) @binding(3) var<storage, read> x: array<Real>;
@group(0) @binding(4) var<storage, read> y: array<Real>;
// Unperturbed Z_l of every layer.
@group(0) @binding(5) var<storage, read> zs: array<Real>;
// Unperturbed A_l = relu(Z_l) of hidden layers; sigmoid(Z_L) for the output layer.
@group(0) @binding(6) var<storage, read> acts: array<Real>;
// The parameter each workgroup perturbs.
@group(0) @binding(7) var<storage, read> indices: array<u32>;
@group(0) @binding(8) var<storage, read> step: array<Real>;
// Four per entry of `indices`: dJ(+eps), dJ(-eps), magnitude of the terms, kink (0 or 1).
@group(0) @binding(9) var<storage, read_write> out: array<Real>;

var<workgroup> dact: array<vec2<Real>, DSCRATCH>;
var<workgroup> partial: array<vec4<Real>, WG>;
var<workgroup> kinked: atomic<u32>;

// relu(z + d) - relu(z) for both lanes, flagging a crossing of the kink at 0. On the same
// side it is d or 0 exactly: (z + d) - z would cancel away d's digits when |d| << |z|.
fn relu_change(z: Real, d: vec2<Real>, crossed: ptr<function, bool>) -> vec2<Real> {
    let moved = vec2<Real>(z) + d;
    let zero = vec2<Real>(Real(0.0));
    let was_active = vec2<bool>(z > Real(0.0));
    let crossing = (moved > zero) != was_active;
    if (any(crossing)) {
        *crossed = true;
    }
    let same_side = select(zero, d, was_active);
    return select(same_side, max(moved, zero) - vec2<Real>(max(z, Real(0.0))), crossing);
}

// Adds both lanes' cost-term changes at output unit r, example k, to acc (and magnitudes).
fn add_cost(acc: ptr<function, vec3<Real>>, out_info: LayerInfo, r: u32, k: u32, dz: vec2<Real>) {
    let at = out_info.z_offset + r * cfg.examples + k;
    let z = zs[at];
    let s = acts[at];
    let yy = y[r * cfg.examples + k];
    let plus = cost_term_change(z, s, yy, dz.x);
    let minus = cost_term_change(z, s, yy, dz.y);
    *acc += vec3<Real>(plus, minus, abs(plus) + abs(minus) + abs(yy * dz.x) + abs(yy * dz.y));
}

// Input `col` of layer l at example k: X for the first layer, else A_(l-1).
fn layer_input(l: u32, col: u32, k: u32) -> Real {
    if (l == 0u) {
        return x[col * cfg.examples + k];
    }
    return acts[layer_info[l - 1u].z_offset + col * cfg.examples + k];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local_w = wid.y * cfg.grid_x + wid.x;
    if (local_w >= cfg.count) {
        return;
    }
    let w = cfg.base + local_w;
    if (lid == 0u) {
        atomicStore(&kinked, 0u);
    }
    workgroupBarrier();
    let q = indices[w];

    // Which layer, row and column q perturbs.
    var p = 0u;
    for (var l = 0u; l < cfg.layers; l++) {
        let info = layer_info[l];
        if (q < info.b_offset + info.rows) {
            p = l;
            break;
        }
    }
    let pinfo = layer_info[p];
    let is_weight = q < pinfo.b_offset;
    let row = select(q - pinfo.b_offset, (q - pinfo.w_offset) / max(pinfo.cols, 1u), is_weight);
    let col = select(0u, (q - pinfo.w_offset) % max(pinfo.cols, 1u), is_weight);
    let eps = step[0];
    let d = vec2<Real>(eps, -eps);
    let last = cfg.layers - 1u;
    let out_info = layer_info[last];
    let m = cfg.examples;
    let tile = cfg.tile;
    let half = DSCRATCH / 2u;

    var acc = vec3<Real>(Real(0.0));
    var crossed = false;
    for (var k0 = 0u; k0 < m; k0 += tile) {
        let tcount = min(tile, m - k0);
        if (p == last) {
            for (var t = lid; t < tcount; t += WG) {
                let a = select(Real(1.0), layer_input(p, col, k0 + t), is_weight);
                add_cost(&acc, out_info, row, k0 + t, d * a);
            }
            continue;
        }
        // Layer p: only `row` changes.
        for (var t = lid; t < tcount; t += WG) {
            let k = k0 + t;
            let a = select(Real(1.0), layer_input(p, col, k), is_weight);
            let z = zs[pinfo.z_offset + row * m + k];
            dact[t] = relu_change(z, d * a, &crossed);
        }
        workgroupBarrier();
        // Layer p + 1: rank one, W_(p+1)[:, row] times that row.
        let next = layer_info[p + 1u];
        for (var e = lid; e < next.rows * tcount; e += WG) {
            let r = e / tcount;
            let t = e % tcount;
            let dz = theta[next.w_offset + r * next.cols + row] * dact[t];
            if (p + 1u == last) {
                add_cost(&acc, out_info, r, k0 + t, dz);
            } else {
                dact[half + r * tile + t] = relu_change(zs[next.z_offset + r * m + k0 + t], dz, &crossed);
            }
        }
        workgroupBarrier();
        // Deeper layers: dense.
        var in_base = half;
        var out_base = 0u;
        for (var l = p + 2u; l <= last; l++) {
            let info = layer_info[l];
            for (var e = lid; e < info.rows * tcount; e += WG) {
                let r = e / tcount;
                let t = e % tcount;
                var dz = vec2<Real>(Real(0.0));
                let w_row = info.w_offset + r * info.cols;
                for (var c = 0u; c < info.cols; c++) {
                    dz += theta[w_row + c] * dact[in_base + c * tile + t];
                }
                if (l == last) {
                    add_cost(&acc, out_info, r, k0 + t, dz);
                } else {
                    dact[out_base + r * tile + t] = relu_change(zs[info.z_offset + r * m + k0 + t], dz, &crossed);
                }
            }
            workgroupBarrier();
            let swap = in_base;
            in_base = out_base;
            out_base = swap;
        }
    }

    if (crossed) {
        atomicOr(&kinked, 1u);
    }
    // Fixed-order tree reduction: bit-identical sums on every run.
    partial[lid] = vec4<Real>(acc, Real(0.0));
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let total = partial[0] / Real(m);
        out[4u * w] = total.x;
        out[4u * w + 1u] = total.y;
        out[4u * w + 2u] = total.z;
        out[4u * w + 3u] = Real(atomicLoad(&kinked));
    }
}
