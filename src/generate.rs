//! Generated networks and the exercise's built-in case.

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{Error, Result};
use crate::io::{read_npz_bytes, NpzInput};
use crate::model::{DataLayout, Layer, Loss, Mlp, ModelOptions, ParamLayout};
use crate::problem::Problem;

/// A random network and data set, reproducible from its seed.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkSpec {
    /// Widths `[n0, n1, …, nL]`, input first.
    pub widths: Vec<usize>,
    /// Number of examples `m`.
    pub examples: usize,
    pub seed: u64,
    /// What the network computes (the exercise's model unless set); with a keep
    /// probability, dropout masks are drawn with it.
    pub model: ModelOptions,
}

impl NetworkSpec {
    /// Validates the widths and example count.
    pub fn new(widths: Vec<usize>, examples: usize, seed: u64) -> Result<Self> {
        if widths.len() < 2 {
            return Err(Error::Option(format!(
                "a network needs at least an input and an output width, got {widths:?}"
            )));
        }
        if let Some(pos) = widths.iter().position(|&w| w == 0) {
            return Err(Error::Network(format!(
                "layer {pos} has zero width in {widths:?}"
            )));
        }
        if examples == 0 {
            return Err(Error::NoExamples);
        }
        Ok(Self {
            widths,
            examples,
            seed,
            model: ModelOptions::default(),
        })
    }

    /// The same network computing `model`, refused when it cannot (a wrong number of
    /// activations, a keep probability outside (0, 1]).
    pub fn with_model(mut self, model: ModelOptions) -> Result<Self> {
        let depth = self.widths.len() - 1;
        // Resolved once, with stand-in masks of the right shapes, only to validate.
        let stand_in = model.keep_prob.map(|_| {
            (1..depth)
                .map(|l| Array2::ones((self.widths[l], self.examples)))
                .collect()
        });
        model
            .resolve(depth, stand_in)?
            .loss
            .check_outputs(self.widths[depth])?;
        self.model = model;
        Ok(self)
    }

    /// [`NetworkSpec::generate`], refused before anything is allocated when checking
    /// `checked` of its coordinates would need more host memory than `budget`.
    pub fn generate_within(&self, checked: usize, budget: u64) -> Result<Problem> {
        crate::memory::ensure_fits(&self.widths, self.examples, checked, budget)?;
        Ok(self.generate())
    }

    /// He-initialised weights (N(0, 2/n_in)), small random biases, standard-normal inputs,
    /// labels for the loss (0/1, one-hot classes, standard-normal targets) and dropout
    /// masks kept with the keep probability, from a portable seeded generator.
    pub fn generate(&self) -> Problem {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let normal = |rng: &mut ChaCha8Rng| -> f64 { rng.sample(StandardNormal) };
        let layers = self
            .widths
            .windows(2)
            .map(|pair| {
                let (n_in, n_out) = (pair[0], pair[1]);
                let scale = (2.0 / n_in as f64).sqrt();
                let w = Array2::from_shape_simple_fn((n_out, n_in), || scale * normal(&mut rng));
                let b = Array1::from_shape_simple_fn(n_out, || 0.1 * normal(&mut rng));
                Layer { w, b }
            })
            .collect();
        let net = Mlp::new(layers)
            .expect("validated widths chain")
            .in_layout(self.model.layout.unwrap_or(DataLayout::Columns));
        let m = self.examples;
        let x = Array2::from_shape_simple_fn((self.widths[0], m), || normal(&mut rng));
        let outputs = net.output_width();
        let y = match self.model.loss.unwrap_or_default() {
            Loss::Bce => Array2::from_shape_simple_fn((outputs, m), || {
                f64::from(u8::from(rng.random_bool(0.5)))
            }),
            Loss::Softmax => {
                let mut y = Array2::zeros((outputs, m));
                for e in 0..m {
                    y[[rng.random_range(0..outputs), e]] = 1.0;
                }
                y
            }
            Loss::Mse | Loss::MseMean | Loss::Sse => {
                Array2::from_shape_simple_fn((outputs, m), || normal(&mut rng))
            }
        };
        let masks = self.model.keep_prob.map(|p| {
            self.widths[1..self.widths.len() - 1]
                .iter()
                .map(|&n| {
                    Array2::from_shape_simple_fn((n, m), || f64::from(u8::from(rng.random_bool(p))))
                })
                .collect()
        });
        let model = self
            .model
            .resolve(self.widths.len() - 1, masks)
            .expect("validated model");
        Problem::with_model(net, model, x, y).expect("generated data is valid")
    }
}

/// The gradient-checking exercise's own network, data (`np.random.seed(1)`) and the
/// exercise's *buggy* backprop gradients (dW2 doubled, db1 ×4).
pub fn exercise() -> NpzInput {
    read_npz_bytes(
        include_bytes!("../assets/exercise_buggy_backprop.npz"),
        "built-in exercise",
    )
    .expect("the embedded exercise file is valid")
}

/// Gradient tensors scaled by factors: `dW2=2,db1=4` plants the exercise's bugs anywhere.
#[derive(Clone, Debug, PartialEq)]
pub struct BugSpec(pub Vec<(String, f64)>);

impl std::str::FromStr for BugSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        s.split(',')
            .map(|part| {
                let (name, factor) = part.split_once('=').ok_or_else(|| {
                    Error::Option(format!(
                        "a planted bug is TENSOR=FACTOR, like dW2=2, not '{part}'"
                    ))
                })?;
                let factor: f64 = factor
                    .trim()
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite())
                    .ok_or_else(|| {
                        Error::Option(format!("the factor '{factor}' is not a finite number"))
                    })?;
                Ok((name.trim().to_string(), factor))
            })
            .collect::<Result<Vec<_>>>()
            .map(BugSpec)
    }
}

impl BugSpec {
    /// Refuses a spec naming a tensor `layout` does not have.
    pub fn validate(&self, layout: &ParamLayout) -> Result<()> {
        self.0
            .iter()
            .try_for_each(|(name, _)| Self::tensor(layout, name).map(drop))
    }

    fn tensor<'a>(layout: &'a ParamLayout, name: &str) -> Result<&'a crate::model::TensorSpec> {
        layout.tensor_named(name).ok_or_else(|| {
            Error::Option(format!("'{name}' is not a gradient tensor of this network"))
        })
    }

    /// Scales the named gradient tensors in place.
    pub fn apply(&self, layout: &ParamLayout, gradients: &mut [f64]) -> Result<()> {
        for (name, factor) in &self.0 {
            let spec = Self::tensor(layout, name)?;
            gradients[spec.range()]
                .iter_mut()
                .for_each(|g| *g *= factor);
        }
        Ok(())
    }
}
