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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

/// Which device limits a check asks for: the adapter's own, or a smaller standard set, to
/// see on any machine whether a check would run on a smaller GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LimitsChoice {
    /// Everything the adapter offers.
    #[default]
    Adapter,
    /// WebGPU's defaults (8 storage buffers per stage, 16 KiB of workgroup memory, …).
    Webgpu,
    /// wgpu's downlevel defaults, for old and small GPUs (4 storage buffers per stage).
    Downlevel,
}

impl LimitsChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitsChoice::Adapter => "adapter",
            LimitsChoice::Webgpu => "webgpu",
            LimitsChoice::Downlevel => "downlevel",
        }
    }

    /// `GRADCHECK_LIMITS` (adapter, webgpu or downlevel), else the adapter's: so that a
    /// whole test suite can run under smaller limits.
    pub fn from_env() -> Self {
        match std::env::var("GRADCHECK_LIMITS").as_deref() {
            Ok("webgpu") => LimitsChoice::Webgpu,
            Ok("downlevel") => LimitsChoice::Downlevel,
            _ => LimitsChoice::Adapter,
        }
    }
}

/// The precision asked for: `auto` lets the adapter decide (see `placement`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// f64 where the device has it (the CPU, GPUs with f64 shaders), else f32.
    Auto,
    F32,
    F64,
}

impl PrecisionChoice {
    /// The precision forced, if any.
    pub fn forced(self) -> Option<Precision> {
        match self {
            PrecisionChoice::Auto => None,
            PrecisionChoice::F32 => Some(Precision::F32),
            PrecisionChoice::F64 => Some(Precision::F64),
        }
    }
}

impl From<Precision> for PrecisionChoice {
    fn from(p: Precision) -> Self {
        match p {
            Precision::F32 => PrecisionChoice::F32,
            Precision::F64 => PrecisionChoice::F64,
        }
    }
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

    /// The smallest normal number: below it a device may flush results to 0 (GPUs do in
    /// f32), an absolute error no relative bound covers.
    pub fn smallest_normal(self) -> f64 {
        match self {
            Precision::F32 => f64::from(f32::MIN_POSITIVE),
            Precision::F64 => f64::MIN_POSITIVE,
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

/// The largest step accepted: beyond it a finite difference measures the function's
/// shape over a range, not its derivative (truncation is bounded too, but only while no
/// kink is crossed, and every step this large crosses them).
pub const MAX_STEP: f64 = 0.1;

/// The smallest default threshold for float32 gradients: their own round-off is
/// ~1e-7 relative and grows with the sums inside backprop.
pub const F32_GRADIENT_THRESHOLD: f64 = 1e-5;

/// The method of a check that may leave it to the default (the delta method): a
/// directional check evaluates whole passes, so the full method, and asking for the delta
/// method with it is refused.
pub fn method_with(method: Option<Method>, directions: Option<usize>) -> Result<Method> {
    match (method, directions) {
        (Some(Method::Delta), Some(_)) => Err(Error::Option(
            "a directional check evaluates whole forward passes (the full method), not the delta method: leave the method to it".into(),
        )),
        (_, Some(_)) => Ok(Method::Full),
        (method, None) => Ok(method.unwrap_or(Method::Delta)),
    }
}

/// The options of one check. `None` picks the default for the precision and method.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOptions {
    pub device: DeviceChoice,
    pub precision: PrecisionChoice,
    pub method: Method,
    pub eps: Option<f64>,
    pub threshold: Option<f64>,
    /// How many of the worst coordinates the report names.
    pub top: usize,
    /// Substring of the adapter name to use (else `WGPU_ADAPTER_NAME`, else the best).
    pub adapter: Option<String>,
    /// The device limits to ask for.
    pub limits: LimitsChoice,
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
    /// The precision the gradients under test were computed in, when coarser than they
    /// are stored (f32 gradients saved as float64); float32 arrays are f32 whatever this says.
    pub grad_precision: Option<Precision>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            precision: PrecisionChoice::Auto,
            method: Method::Delta,
            eps: None,
            threshold: None,
            top: 5,
            adapter: None,
            limits: LimitsChoice::from_env(),
            chunk: None,
            max_memory: None,
            sample: None,
            directions: None,
            sample_seed: 1,
            grad_precision: None,
        }
    }
}

impl CheckOptions {
    /// The step: given, or the default for the precision and the method the costs are
    /// evaluated by (`checker::method_for`).
    ///
    /// Full method: the central difference's error is `≈ ε²|J'''|/6 + u|J|/ε`, smallest near
    /// `ε ≈ u^(1/3)`; 1e-5 in f64 (measured differences ~1e-10 on random networks, and a
    /// round-off bound ten times below 1e-6's, which left tensors of small gradients
    /// undecided; the truncation is bounded per coordinate). In f32 `u^(1/3)` ≈ 4e-3; steps
    /// that large cross ReLU kinks, which are judged against their exact one-sided
    /// derivatives, so the round-off decides: over the README's 24 random networks the
    /// median difference is 4.3e-5 at 1e-2 against 1.5e-3 at 3e-4, and only 1e-2 resolves
    /// the 1e-3 threshold on some of them (3e-2 is limited by truncation), so 1e-2.
    ///
    /// Delta method: round-off is relative to ΔJ itself, so the step only sets the
    /// truncation error (`≈ ε²`, relative) and the chance of crossing a kink (`∝ ε`): 1e-6
    /// in f64 and 1e-5 in f32 (measured in the README's accuracy table).
    ///
    /// Directional checks: 1e-5 in f64 (as the full method), 1e-3 in f32 (the best of
    /// 1e-4…3e-2 measured on the exercise); their kinks and truncation are bounded like the
    /// coordinates', but a direction moves a whole tensor, so larger steps cross kinks in
    /// most directions.
    pub fn eps_in(&self, method: Method, precision: Precision) -> f64 {
        if self.directions.is_some() {
            return self.eps.unwrap_or(match precision {
                Precision::F64 => 1e-5,
                Precision::F32 => 1e-3,
            });
        }
        self.eps.unwrap_or(match (method, precision) {
            (Method::Full, Precision::F64) => 1e-5,
            (Method::Full, Precision::F32) => 1e-2,
            (Method::Delta, Precision::F64) => 1e-6,
            (Method::Delta, Precision::F32) => 1e-5,
        })
    }

    /// The threshold: given, or 2e-7 in f64 (the exercise's). In f32: 1e-3 for the full
    /// method, whose best accuracy is ~1e-4 on correct backprop, and 1e-5 for delta, which
    /// reaches ~1e-7. Gradients computed in float32 carry their own round-off (resolution
    /// ~2e-6 measured on random networks): at least
    /// [`F32_GRADIENT_THRESHOLD`] for them.
    pub fn threshold_in(&self, method: Method, precision: Precision, gradients: Precision) -> f64 {
        self.threshold.unwrap_or_else(|| {
            let evaluation = match (method, precision) {
                (_, Precision::F64) => 2e-7,
                (Method::Full, Precision::F32) => 1e-3,
                (Method::Delta, Precision::F32) => 1e-5,
            };
            match gradients {
                Precision::F64 => evaluation,
                Precision::F32 => evaluation.max(F32_GRADIENT_THRESHOLD),
            }
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
                    "the step must be a finite number > 0, got {eps}"
                )));
            }
            if eps > MAX_STEP {
                return Err(Error::Option(format!(
                    "a step of {eps:e} does not approximate a derivative; use one of at most {MAX_STEP:e} (the defaults are 1e-6 to 1e-2)"
                )));
            }
        }
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::Option(format!(
                    "the threshold must be a finite number > 0, got {t}"
                )));
            }
        }
        if self.sample == Some(0) {
            return Err(Error::Option("a sample needs at least 1 coordinate".into()));
        }
        if self.directions == Some(0) {
            return Err(Error::Option(
                "a directional check needs at least 1 direction".into(),
            ));
        }
        if self.sample.is_some() && self.directions.is_some() {
            return Err(Error::Option(
                "a sample and directions are two different checks; ask for one".into(),
            ));
        }
        if self.sample.is_some() && self.method == Method::Full {
            return Err(Error::Option("a sample works with the delta method".into()));
        }
        if self.chunk == Some(0) {
            return Err(Error::Option("a chunk needs at least 1 item".into()));
        }
        if self.device == DeviceChoice::Cpu && self.precision == PrecisionChoice::F32 {
            return Err(Error::Option(
                "f32 runs on a GPU only: the CPU path computes in f64".into(),
            ));
        }
        Ok(())
    }
}
