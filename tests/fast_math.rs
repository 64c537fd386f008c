//! Metal compiles with fast-math on (wgpu leaves MTLCompileOptions' default), which lets
//! the compiler reassociate floating-point expressions and replace divisions by
//! reciprocals. math.wgsl's exp used a Cody–Waite reduction, `(x − k·LN2_A) − k·LN2_B`,
//! which reassociated loses up to 68 ulp in f32 (measured by this simulation before the
//! rewrite); it now splits x into its integer and fractional parts (exact), so no step
//! depends on the order. This simulates math.wgsl's f32 exp and softplus on the CPU as
//! written and as a fast-math compiler may evaluate them, and holds both to a few ulp.

/// e^(2^j), j = 0..6, rounded to f32 as math.wgsl's constants are.
fn powers() -> [f64; 7] {
    std::array::from_fn(|j| f64::from(1u32 << j).exp())
}

/// How a fast-math compiler may evaluate: as written, or with divisions by a constant
/// turned into multiplications by its (rounded) reciprocal and products regrouped.
#[derive(Clone, Copy, Debug)]
enum Order {
    AsWritten,
    FastMath,
}

/// math.wgsl's exp_real in f32 (x ≤ 88), in `order`.
fn exp_real(x: f32, order: Order) -> f32 {
    let n = x.trunc();
    let f = x - n;
    let mut p = 1.0f32;
    for i in (1..=20).rev() {
        p = match order {
            Order::AsWritten => 1.0 + p * f / i as f32,
            Order::FastMath => 1.0 + p * (f * (1.0 / i as f32)),
        };
    }
    let m = n.abs() as u32;
    let factors: Vec<f32> = (0..7)
        .filter(|j| m & (1 << j) != 0)
        .map(|j| powers()[j] as f32)
        .collect();
    let big = match order {
        Order::AsWritten => factors.iter().fold(1.0f32, |a, &b| a * b),
        // Regrouped: the largest factors first, pairwise.
        Order::FastMath => factors
            .chunks(2)
            .rev()
            .map(|c| c.iter().product::<f32>())
            .fold(1.0f32, |a, b| a * b),
    };
    if n < 0.0 {
        match order {
            Order::AsWritten => p / big,
            Order::FastMath => p * (1.0 / big),
        }
    } else {
        p * big
    }
}

/// math.wgsl's log1p_unit in f32 (a series in s = t/(2+t): no order to exploit).
fn log1p_unit(t: f32) -> f32 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let mut sum = 0.0f32;
    for n in (3..=37).rev().step_by(2) {
        sum = (sum + 1.0 / n as f32) * s2;
    }
    2.0 * s * (1.0 + sum)
}

fn softplus(z: f32, order: Order) -> f32 {
    z.max(0.0) + log1p_unit(exp_real(-z.abs(), order))
}

fn softplus_f64(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

const U: f64 = f32::EPSILON as f64 / 2.0;

fn grid() -> impl Iterator<Item = f32> {
    (-87_000..=87_000).map(|i| i as f32 * 1e-3)
}

#[test]
fn exp_and_the_cost_terms_stay_within_a_few_ulp_whatever_the_order() {
    for order in [Order::AsWritten, Order::FastMath] {
        let (mut exp_ulps, mut term) = (0.0f64, 0.0f64);
        for x in grid() {
            let want = f64::from(x).exp();
            exp_ulps = exp_ulps.max((f64::from(exp_real(x, order)) - want).abs() / (want * U));
            // A cost term's softplus, relative to itself (its worst case: y = 0, z ≪ 0,
            // where the term is e^z alone).
            let exact = softplus_f64(f64::from(x));
            term = term.max((f64::from(softplus(x, order)) - exact).abs() / (U * exact));
        }
        eprintln!("{order:?}: exp within {exp_ulps:.1} ulp, softplus within {term:.1} u");
        assert!(exp_ulps <= 8.0, "{order:?}: exp {exp_ulps}");
        assert!(term <= 8.0, "{order:?}: softplus {term}");
    }
}
