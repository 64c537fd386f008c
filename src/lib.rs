//! gradcheck: proves a network's backpropagation right by checking every gradient against
//! central finite differences, evaluated in bulk on the GPU (WGSL via wgpu) or on the CPU.
//!
//! The flow: a [`problem::Problem`] (network + data) → an [`checker::Engine`] evaluates every
//! `J(θ ± ε e_i)` → [`checker::judge`] compares gradapprox with the gradient on trial
//! globally, per tensor and per coordinate → a [`report::Report`].

pub mod backend;
pub mod bench;
pub mod check;
pub mod checker;
pub mod cpu;
pub mod directions;
pub mod error;
pub mod estimate;
pub mod generate;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod layer;
pub mod memory;
pub mod method;
pub mod model;
pub mod monitor;
pub mod ops;
pub mod options;
pub mod placement;
pub mod problem;
pub mod report;
pub mod sample;
pub mod scalar;

pub use error::{Error, Result};
