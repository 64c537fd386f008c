//! The CPU side in f64: forward pass, backprop, and the finite-difference reference.

pub mod backprop;
pub mod delta;
pub mod directions;
pub mod finite_diff;
pub mod forward;
pub mod majorant;
pub mod products;
pub mod roundoff;
pub mod sensitivity;
pub mod series;
pub mod ties;
