// The output's loss terms, each with a CPU twin in cpu::forward::example_loss. The host
// sets LOSS (0 sigmoid + cross-entropy, 1 softmax + cross-entropy, 2 squared error, of
// SQUARED_FACTOR times (z - y)^2 per output: 1/2, 1/n_L or 1) and MEAN (divide the summed
// losses by m) before this file.

// e^(1/2), for the last step of log_real's reduction.
const SQRT_E: Real = 1.6487212707001281468486507878142;

// log(v) for v >= 1 (a softmax's sum of e^(z - max z)): v divided by e^(2^j) down to
// [1, e), then by e^(1/2) once, leaves log1p of a number below 0.65.
fn log_real(v: Real) -> Real {
    var x = v;
    var n = Real(0.0);
    for (; x >= E64; n += Real(64.0)) {
        x /= E64;
    }
    if (x >= E32) { x /= E32; n += Real(32.0); }
    if (x >= E16) { x /= E16; n += Real(16.0); }
    if (x >= E8) { x /= E8; n += Real(8.0); }
    if (x >= E4) { x /= E4; n += Real(4.0); }
    if (x >= E2) { x /= E2; n += Real(2.0); }
    if (x >= E1) { x /= E1; n += Real(1.0); }
    if (x >= SQRT_E) { x /= SQRT_E; n += Real(0.5); }
    return n + log1p_unit(x - Real(1.0));
}

// One output unit's term of an elementwise loss (LOSS 0 or 2).
fn unit_loss(z: Real, y: Real) -> Real {
    if (LOSS == 2u) {
        let d = z - y;
        return SQUARED_FACTOR * d * d;
    }
    return softplus(z) - y * z;
}
