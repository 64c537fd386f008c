// The forward pass one workgroup runs for one perturbed network, shared by the kernels
// that evaluate whole passes (full.wgsl, directions.wgsl), with the bindings 0-6 they
// share; each kernel declares its own from 7 on and defines
//
//     fn correction(l: u32, r: u32, k0: u32, in_base: u32, tt: vec4<u32>) -> vec4<Real>
//
// what its perturbation adds to z of layer l, row r, for the four examples k0 + tt. The
// shared weights are never copied: a perturbation is always such a correction.
//
// Needs WG (threads, a power of two) and SCRATCH (workgroup-memory activations, in Reals),
// and the model's ops (activations.wgsl, losses.wgsl, and the host's LOSS, MEAN, DROPOUT,
// KEEP_SCALE and `activate`).

@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read> layer_info: array<LayerInfo>;
@group(0) @binding(2) var<storage, read> theta: array<Real>;
// X is n0 x m and Y is nL x m, row-major (examples are columns). With dropout, the masks
// follow X in the same buffer, n_l x m each, at their layer's mask_offset.
@group(0) @binding(3) var<storage, read> x: array<Real>;
@group(0) @binding(4) var<storage, read> y: array<Real>;
// [eps]
@group(0) @binding(5) var<storage, read> step: array<Real>;
// Two per global perturbation: its cost, and its status word (config.wgsl: status_word).
// A dispatch sums the examples [cfg.e_begin, cfg.e_end) and adds them to what the
// dispatches before left here: no invocation loops long enough to meet a driver's loop
// limit.
@group(0) @binding(6) var<storage, read_write> costs: array<Real>;

// Two halves: the activations going into the current layer and those coming out.
var<workgroup> act: array<Real, SCRATCH>;
var<workgroup> partial: array<Real, WG>;
// Invocations of this workgroup whose loops a loop limit cut short.
var<workgroup> faults: atomic<u32>;

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

// The perturbed network's summed losses over this dispatch's examples; valid on thread 0.
// Every thread of the workgroup must call it.
fn forward_cost(lid: u32) -> Real {
    let m = cfg.examples;
    let tile = cfg.tile;
    let half = SCRATCH / 2u;
    var acc = Real(0.0);
    // Workgroup memory is not zeroed (gpu::context); the barriers below order this first.
    if (lid == 0u) {
        atomicStore(&faults, 0u);
    }
    for (var k0 = cfg.e_begin; k0 < cfg.e_end; k0 += tile) {
        let tcount = min(tile, cfg.e_end - k0);
        var in_base = 0u;
        var out_base = half;
        for (var l = 0u; l < cfg.layers; l++) {
            let info = layer_info[l];
            let last = l + 1u == cfg.layers;
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
                    let zr = zs[i] + correction(l, r, k0, in_base, tt);
                    for (var j = 0u; j < 4u; j++) {
                        let t = t0 + j;
                        if (t >= tcount) {
                            break;
                        }
                        let z = zr[j];
                        if (!last) {
                            var a = activate(l, z);
                            if (DROPOUT) {
                                a *= x[info.mask_offset + r * m + k0 + t] * KEEP_SCALE;
                            }
                            act[out_base + r * tile + t] = a;
                        } else if (LOSS == 1u) {
                            // Softmax needs every logit of the example: kept for below.
                            act[out_base + r * tile + t] = z;
                        } else {
                            acc += unit_loss(z, y[r * m + k0 + t]);
                        }
                    }
                }
            }
            workgroupBarrier();
            let swap = in_base;
            in_base = out_base;
            out_base = swap;
        }
        if (LOSS == 1u) {
            // Softmax cross-entropy per example: log-sum-exp of its logits minus y . z.
            let rows = layer_info[cfg.layers - 1u].rows;
            for (var t = lid; t < tcount; t += WG) {
                var top = act[in_base + t];
                for (var r = 1u; r < rows; r++) {
                    top = max(top, act[in_base + r * tile + t]);
                }
                var sum = Real(0.0);
                var yz = Real(0.0);
                for (var r = 0u; r < rows; r++) {
                    let z = act[in_base + r * tile + t];
                    sum += exp_real(z - top);
                    yz += y[r * m + k0 + t] * z;
                }
                acc += top + log_real(sum) - yz;
            }
            // The next tile overwrites these logits.
            workgroupBarrier();
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
    return partial[0];
}

// Stores perturbation p's cost after this dispatch's examples (`sum`, valid on thread 0):
// added to the sum the dispatches before left, divided by m after the last with the mean
// reduction, and its status word. Every thread of the workgroup must call it.
fn store_cost(p: u32, lid: u32, sum: Real) {
    if (!loops_completed(cfg.probe)) {
        atomicAdd(&faults, 1u);
    }
    workgroupBarrier();
    if (lid == 0u) {
        var total = sum;
        var before = Real(0.0);
        if (cfg.e_begin > 0u) {
            total = costs[2u * p] + sum;
            before = costs[2u * p + 1u];
        }
        if (MEAN && cfg.e_end == cfg.examples) {
            total = total / Real(cfg.examples);
        }
        costs[2u * p] = total;
        costs[2u * p + 1u] = status_word(before, atomicLoad(&faults) == 0u);
    }
}
