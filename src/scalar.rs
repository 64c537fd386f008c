//! The exercise's one-dimensional warm-up, as a generic check of any scalar function.

/// The result of checking one derivative.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScalarCheck {
    pub grad: f64,
    pub gradapprox: f64,
    /// `|grad − approx| / (|grad| + |approx|)`.
    pub difference: f64,
}

/// Checks `grad = dJ/dθ` at `theta` by the central difference with step `eps`, exactly
/// as the exercise computes it.
pub fn check_scalar(j: impl Fn(f64) -> f64, grad: f64, theta: f64, eps: f64) -> ScalarCheck {
    let gradapprox = (j(theta + eps) - j(theta - eps)) / (2.0 * eps);
    let difference = (grad - gradapprox).abs() / (grad.abs() + gradapprox.abs());
    ScalarCheck {
        grad,
        gradapprox,
        difference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exercise_one_dimensional_case() {
        let x = 2.0;
        let check = check_scalar(|theta| theta * x, x, 4.0, 1e-7);
        assert!(
            (check.difference - 2.919335883291695e-10).abs() < 1e-20,
            "{}",
            check.difference
        );
    }
}
