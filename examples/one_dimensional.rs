//! The exercise's 1-D warm-up: J(θ) = θx with x = 2, θ = 4, checked by central differences.

use gradcheck::scalar::check_scalar;

fn main() {
    let x = 2.0;
    let cost = |theta: f64| theta * x;
    let backward = x; // dJ/dθ
    let check = check_scalar(cost, backward, 4.0, 1e-7);
    println!("grad       = {}", check.grad);
    println!("gradapprox = {}", check.gradapprox);
    println!("difference = {:e}", check.difference);
    if check.difference < 1e-7 {
        println!("The gradient is correct!");
    } else {
        println!("The gradient is wrong!");
        std::process::exit(1);
    }
}
