// Scalar functions the kernels need, built from + - * /, floor, ldexp and select only.
// WGSL's own f64 exp/log pass naga but emit invalid SPIR-V on Vulkan (gfx-rs/wgpu#6087),
// and lavapipe's f32 exp/log are not correctly rounded, so one polynomial serves both
// precisions. `Real` (f32 or f64) and REAL_EPSILON (its unit round-off / 2) are defined by
// the host before this file.

// ln 2 = LN2_A + LN2_B, LN2_A with 16 significant bits so that k * LN2_A is exact.
const LN2_A: Real = 0.693145751953125;
const LN2_B: Real = 1.428606820309417232121458176568e-6;
const INV_LN2: Real = 1.4426950408889634073599246810019;
// exp underflows to 0 below this; above EXP_MAX it is clamped (no caller goes there).
const EXP_MIN: Real = -745.0;
const EXP_MAX: Real = 709.0;

// e^x: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to degree 14
// (truncation < 1e-18 relative), then scaled by 2^k.
fn exp_real(x: Real) -> Real {
    if (x < EXP_MIN) {
        return Real(0.0);
    }
    let xc = min(x, EXP_MAX);
    let k = floor(xc * INV_LN2 + Real(0.5));
    let r = (xc - k * LN2_A) - k * LN2_B;
    var p = Real(1.0);
    for (var i = 14; i >= 1; i--) {
        p = Real(1.0) + p * r / Real(i);
    }
    return ldexp(p, i32(k));
}

// log(1 + t) for t in [0, 1]: 2 atanh(s) with s = t / (2 + t) <= 1/3, odd series to s^37.
fn log1p_unit(t: Real) -> Real {
    let s = t / (Real(2.0) + t);
    let s2 = s * s;
    var sum = Real(0.0);
    for (var n = 37; n >= 3; n -= 2) {
        sum = (sum + Real(1.0) / Real(n)) * s2;
    }
    return Real(2.0) * s * (Real(1.0) + sum);
}

// log(1 + e^z) without overflow or cancellation.
fn softplus(z: Real) -> Real {
    return max(z, Real(0.0)) + log1p_unit(exp_real(-abs(z)));
}

// e^d - 1 - d for |d| < 1 by its series from d^2/2, without cancellation.
fn expm1_minus_x(d: Real) -> Real {
    var term = d * d / Real(2.0);
    var sum = term;
    for (var i = 3; i <= 24; i++) {
        term *= d / Real(i);
        sum += term;
        if (abs(term) <= REAL_EPSILON * abs(sum)) {
            break;
        }
    }
    return sum;
}

// log(1 + v) - v for v in [-0.64, 1.72]: -v s + 2 (s^3/3 + s^5/5 + ...), s = v / (2 + v),
// without cancellation (2 s - v = -v s exactly).
fn log1p_minus_x(v: Real) -> Real {
    let s = v / (Real(2.0) + v);
    let s2 = s * s;
    var power = s * s2;
    var sum = power / Real(3.0);
    for (var n = 5; n <= 61; n += 2) {
        power *= s2;
        let term = power / Real(n);
        sum += term;
        if (abs(term) <= REAL_EPSILON * abs(sum)) {
            break;
        }
    }
    return Real(2.0) * sum - v * s;
}

// softplus(z + d) - softplus(z) - sigma d, the convex remainder of a cost term's change
// beyond its linear part: sigma (e^d - 1 - d) + (log(1 + v) - v) with v = sigma (e^d - 1),
// each free of cancellation, for |d| < 1; directly beyond. A term's whole change is
// r d + this, with r = sigma - y computed on the host in f64.
fn softplus_remainder(z: Real, sigma: Real, d: Real) -> Real {
    if (abs(d) < Real(1.0)) {
        let beyond = expm1_minus_x(d);
        return sigma * beyond + log1p_minus_x(sigma * (d + beyond));
    }
    return softplus(z + d) - softplus(z) - sigma * d;
}
