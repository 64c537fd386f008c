// The delta method's per-parameter sums as tiled matrix products. A step eps of
// W_p[i, j] changes the cost by sum_e g_(i,e)(s_(j,e)), s = eps * A_(p-1)[j, e], each g a
// series with coefficients c_k[i, e] (the host's cpu/series.rs), so the change's order-k
// part is
//
//     T_k[i, j] = sum_e c_k[i, e] * s[j, e]^k      (one matrix product per order)
//
// computed here for a block of a layer's rows and all its columns, with the first order's
// magnitudes sum_e |c_1| |s| (what its round-off is relative to); the host combines the
// orders into the two steps' changes (cpu/products.rs: combine). One thread per (i, j),
// TILE x TILE per workgroup; each step of TILE examples stages the coefficients of the
// workgroup's rows and the inputs of its columns in workgroup memory. Each thread adds its
// examples in order, continuing the sums an earlier dispatch of the same block left in
// `out`: the results are bit-identical whatever the example blocks.
//
// Prepended by the host: `alias Real`, REAL_EPSILON, TINY_OVER_U, TILE and ORDER. Then
// math.wgsl and config.wgsl.

@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read> layer_info: array<LayerInfo>;
// Per layer, at in_offset: its input A_(p-1), m x n_(p-1), example-major.
@group(0) @binding(2) var<storage, read> inputs: array<Real>;
// Per layer, at z_offset * ORDER: the coefficients of s^1 .. s^ORDER, indexed [row, e, k].
@group(0) @binding(3) var<storage, read> coeff: array<Real>;
// The block: [layer, its first row, its rows].
@group(0) @binding(4) var<storage, read> block: array<u32>;
// [eps]: what changes between rounds.
@group(0) @binding(5) var<storage, read> step: array<Real>;
// Per (row of the block, column), STRIDE scalars: T_1 .. T_ORDER, sum_e |c_1 s|, and the
// status word (config.wgsl: status_word).
@group(0) @binding(6) var<storage, read_write> out: array<Real>;

// The sums below are written out for five orders: the host composes this kernel with
// ORDER = 5 only.
const STRIDE: u32 = ORDER + 2u;
// One order's coefficients in the tile.
const PLANE: u32 = TILE * TILE;

// The block rows' coefficients, [k][row][e], and the columns' steps, [e][column].
var<workgroup> c_tile: array<Real, ORDER * TILE * TILE>;
var<workgroup> s_tile: array<Real, TILE * TILE>;

@compute @workgroup_size(TILE, TILE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let local_w = wid.y * cfg.grid_x + wid.x;
    if (local_w >= cfg.count) {
        return;
    }
    let info = layer_info[block[0]];
    let first_row = block[1];
    let rows = block[2];
    let cols = info.cols;
    let m = cfg.examples;
    let eps = step[0];
    let col_tiles = (cols + TILE - 1u) / TILE;
    let t = cfg.base + local_w;
    let row_tile = (t / col_tiles) * TILE;
    let col_tile = (t % col_tiles) * TILE;
    let r = row_tile + lid.y;
    let j = col_tile + lid.x;
    let live = r < rows && j < cols;
    let slot = (r * cols + j) * STRIDE;

    // The orders' sums and the first order's magnitudes, in registers (a loop over an
    // array would keep them in memory on some drivers).
    var t1 = Real(0.0);
    var t2 = Real(0.0);
    var t3 = Real(0.0);
    var t4 = Real(0.0);
    var t5 = Real(0.0);
    var size = Real(0.0);
    var before = Real(0.0);
    if (live && cfg.e_begin > 0u) {
        t1 = out[slot];
        t2 = out[slot + 1u];
        t3 = out[slot + 2u];
        t4 = out[slot + 3u];
        t5 = out[slot + 4u];
        size = out[slot + 5u];
        before = out[slot + 6u];
    }
    // What this thread stages: the step of column col_tile + lid.x at example
    // e0 + lid.y, and the coefficients of row row_tile + lid.y at example e0 + lid.x.
    let staged_col = col_tile + lid.x;
    let staged_row = row_tile + lid.y;
    for (var e0 = cfg.e_begin; e0 < cfg.e_end; e0 += TILE) {
        var s = Real(0.0);
        let e_s = e0 + lid.y;
        if (e_s < cfg.e_end && staged_col < cols) {
            s = eps * inputs[info.in_offset + e_s * cols + staged_col];
        }
        s_tile[lid.y * TILE + lid.x] = s;
        let e_c = e0 + lid.x;
        let has_c = e_c < cfg.e_end && staged_row < rows;
        let at = (info.z_offset + (first_row + staged_row) * m + e_c) * ORDER;
        for (var k = 0u; k < ORDER; k++) {
            var c = Real(0.0);
            if (has_c) {
                c = coeff[at + k];
            }
            c_tile[(k * TILE + lid.y) * TILE + lid.x] = c;
        }
        workgroupBarrier();
        let n = min(TILE, cfg.e_end - e0);
        let c_row = lid.y * TILE;
        for (var q = 0u; q < n; q++) {
            let s1 = s_tile[q * TILE + lid.x];
            let s2 = s1 * s1;
            let s3 = s2 * s1;
            let s4 = s3 * s1;
            let s5 = s4 * s1;
            let c1 = c_tile[c_row + q];
            t1 += c1 * s1;
            t2 += c_tile[PLANE + c_row + q] * s2;
            t3 += c_tile[2u * PLANE + c_row + q] * s3;
            t4 += c_tile[3u * PLANE + c_row + q] * s4;
            t5 += c_tile[4u * PLANE + c_row + q] * s5;
            size += abs(c1 * s1);
        }
        workgroupBarrier();
    }
    if (live) {
        out[slot] = t1;
        out[slot + 1u] = t2;
        out[slot + 2u] = t3;
        out[slot + 3u] = t4;
        out[slot + 4u] = t5;
        out[slot + 5u] = size;
        out[slot + 6u] = status_word(before, loops_completed(cfg.probe));
    }
}
