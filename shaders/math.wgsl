// Scalar functions the kernels need, built from + - * /, trunc and select only.
// WGSL's own f64 exp/log pass naga but emit invalid SPIR-V on Vulkan (gfx-rs/wgpu#6087),
// and lavapipe's f32 exp/log are not correctly rounded, so one polynomial serves both
// precisions. `Real` (f32 or f64) and REAL_EPSILON (its unit round-off / 2) are defined by
// the host before this file.

// exp underflows to 0 below this; above EXP_MAX it is clamped (no caller goes there).
const EXP_MIN: Real = -745.0;
const EXP_MAX: Real = 709.0;
// e^(2^j), j = 0..6, for e^n by the binary digits of n (all within f32's range).
const E1: Real = 2.7182818284590452353602874713527;
const E2: Real = 7.3890560989306502272304274605750;
const E4: Real = 54.598150033144239078110261202861;
const E8: Real = 2980.9579870417282747435920994529;
const E16: Real = 8886110.5205078726367630237407815;
const E32: Real = 78962960182680.695160978022635108;
const E64: Real = 6235149080811616882909238708.9285;

// e^x = e^f * e^n with n = trunc(x) and f = x - n exact (|f| < 1): e^f by its Taylor series
// to degree 20 (truncation < 2e-20 relative), e^|n| as a product of e^(2^j) by the binary
// digits of |n|. No step relies on the order of evaluation (a Cody-Waite reduction,
// (x - k ln2_hi) - k ln2_lo, does, and loses up to 68 ulp in f32 when a fast-math compiler
// reassociates it, as Metal's may), so reassociation moves the result by a few roundings.
fn exp_real(x: Real) -> Real {
    if (x < EXP_MIN) {
        return Real(0.0);
    }
    let xc = min(x, EXP_MAX);
    let n = trunc(xc);
    let f = xc - n;
    var p = Real(1.0);
    for (var i = 20; i >= 1; i--) {
        p = Real(1.0) + p * f / Real(i);
    }
    var m = u32(abs(n));
    var big = Real(1.0);
    for (; m >= 64u; m -= 64u) {
        big *= E64;
    }
    big *= select(Real(1.0), E32, (m & 32u) != 0u);
    big *= select(Real(1.0), E16, (m & 16u) != 0u);
    big *= select(Real(1.0), E8, (m & 8u) != 0u);
    big *= select(Real(1.0), E4, (m & 4u) != 0u);
    big *= select(Real(1.0), E2, (m & 2u) != 0u);
    big *= select(Real(1.0), E1, (m & 1u) != 0u);
    return select(p * big, p / big, n < Real(0.0));
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
