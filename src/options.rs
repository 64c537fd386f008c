//! What a check is asked to do, validated before any work starts.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where the finite differences are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Cpu,
    Gpu,
    /// The GPU when an adapter is found, else the CPU with a notice.
    Auto,
}

/// Arithmetic of the perturbed forward passes (backprop always runs in f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// Bytes per scalar.
    pub fn size(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }

    /// Unit round-off `u`.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Precision::F32 => crate::estimate::F32_UNIT_ROUNDOFF,
            Precision::F64 => crate::estimate::F64_UNIT_ROUNDOFF,
        }
    }
}

/// How each perturbed cost is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// A whole forward pass per perturbation: the exercise's algorithm, batched.
    Full,
    /// Only the change a perturbation makes, propagated from one unperturbed pass: exact
    /// through ReLUs, free of cancellation, with kink detection.
    Delta,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::Delta => "delta",
        }
    }
}

/// The options of one check. `None` picks the default for the precision and method.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOptions {
    pub device: DeviceChoice,
    pub precision: Precision,
    pub method: Method,
    pub eps: Option<f64>,
    pub threshold: Option<f64>,
    /// How many of the worst coordinates the report names.
    pub top: usize,
    /// Substring of the adapter name to use (else `WGPU_ADAPTER_NAME`, else the best).
    pub adapter: Option<String>,
    /// Perturbations per GPU dispatch (else chosen from the device's limits).
    pub chunk: Option<usize>,
    /// Memory the check may use, in bytes (else [`crate::memory::default_budget`]).
    pub max_memory: Option<u64>,
    /// Check only this many coordinates, drawn by [`crate::sample::choose`] (delta method).
    pub sample: Option<usize>,
    /// Check K random directional derivatives instead of coordinates (full passes).
    pub directions: Option<usize>,
    /// Seed of the `sample` or `directions` draw.
    pub sample_seed: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            precision: Precision::F64,
            method: Method::Delta,
            eps: None,
            threshold: None,
            top: 5,
            adapter: None,
            chunk: None,
            max_memory: None,
            sample: None,
            directions: None,
            sample_seed: 1,
        }
    }
}

impl CheckOptions {
    /// The step: given, or the default for the precision and method.
    ///
    /// Full method: the central difference's error is `≈ ε²|J'''|/6 + u|J|/ε`, smallest near
    /// `ε ≈ u^(1/3)`; 1e-6 in f64 (measured error ~1e-10 relative on the exercise). In f32
    /// `u^(1/3)` ≈ 4e-3, but the full method cannot see ReLU kinks, and steps that large cross
    /// them: over the README's 24 random networks, 20 false alarms at 1e-2, 9 at 1e-3 and
    /// none at 3e-4, so 3e-4.
    ///
    /// Delta method: round-off is relative to ΔJ itself, so the step only sets the
    /// truncation error (`≈ ε²`, relative) and the chance of crossing a kink (`∝ ε`): 1e-6
    /// in f64 and 1e-5 in f32 (measured in the README's accuracy table).
    pub fn eps(&self) -> f64 {
        self.eps
            .unwrap_or(match (self.evaluation_method(), self.precision) {
                (Method::Full, Precision::F64) => 1e-6,
                (Method::Full, Precision::F32) => 3e-4,
                (Method::Delta, Precision::F64) => 1e-6,
                (Method::Delta, Precision::F32) => 1e-5,
            })
    }

    /// The threshold: given, or 2e-7 in f64 (the exercise's). In f32: 1e-3 for the full
    /// method, whose best accuracy is ~1e-4 on correct backprop, and 1e-5 for delta, which
    /// reaches ~1e-7.
    pub fn threshold(&self) -> f64 {
        self.threshold
            .unwrap_or(match (self.evaluation_method(), self.precision) {
                (_, Precision::F64) => 2e-7,
                (Method::Full, Precision::F32) => 1e-3,
                (Method::Delta, Precision::F32) => 1e-5,
            })
    }

    /// The method the perturbed costs are computed by: directional checks always run
    /// whole forward passes (the full method), whatever `method` says.
    pub fn evaluation_method(&self) -> Method {
        if self.directions.is_some() {
            Method::Full
        } else {
            self.method
        }
    }

    /// The memory budget: given, or three quarters of what the host has available.
    pub fn budget(&self) -> u64 {
        self.max_memory
            .unwrap_or_else(crate::memory::default_budget)
    }

    /// Refuses steps and thresholds that cannot give a meaningful check.
    pub fn validate(&self) -> Result<()> {
        if let Some(eps) = self.eps {
            if !(eps.is_finite() && eps > 0.0) {
                return Err(Error::Option(format!(
                    "--eps must be a finite number > 0, got {eps}"
                )));
            }
        }
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::Option(format!(
                    "--threshold must be a finite number > 0, got {t}"
                )));
            }
        }
        if self.sample == Some(0) {
            return Err(Error::Option("--sample must be at least 1".into()));
        }
        if self.directions == Some(0) {
            return Err(Error::Option("--directions must be at least 1".into()));
        }
        if self.sample.is_some() && self.directions.is_some() {
            return Err(Error::Option(
                "--sample and --directions are two different checks; give one".into(),
            ));
        }
        if self.sample.is_some() && self.method == Method::Full {
            return Err(Error::Option(
                "--sample works with --method delta (the default)".into(),
            ));
        }
        if self.chunk == Some(0) {
            return Err(Error::Option("--chunk must be at least 1".into()));
        }
        if self.device == DeviceChoice::Cpu && self.precision == Precision::F32 {
            return Err(Error::Option(
                "the CPU path computes in f64 only; use --precision f64 or a GPU".into(),
            ));
        }
        Ok(())
    }
}
