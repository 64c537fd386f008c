//! Networks as a sequence of ops (`ops`): each node applies one op to the previous node's
//! output and its own parameters, the last node is a loss. What a dense-only network
//! cannot describe — normalisation layers, which couple the examples — is checked this
//! way: every parameter coordinate's finite difference re-runs the sequence from the node
//! it belongs to. Each op bounds its own rounding ([`crate::ops::Bounded`]); weighted by
//! how much the cost moves with each output (the adjoints of the base evaluation, from the
//! ops' reference backwards) and doubled for what first order leaves out, they bound the
//! evaluation's rounding. The layers before the perturbed one are not re-run: both sides of
//! the difference share their rounding, which cancels.

mod check;
mod probe;
mod read;

use ndarray::ArrayD;

pub use check::{check_network, NetworkOptions};
pub use read::{parse_sequence, read_network, NetworkInput, Spec};

use crate::ops::{Arrays, LayerOp};

/// A parameter tensor: its name (cs231n's `W1`, `gamma1`), value and node.
pub struct Tensor {
    pub name: String,
    pub value: ArrayD<f64>,
    /// The node whose op takes it, under the op's argument name (`w`, `gamma`).
    node: usize,
    argument: &'static str,
    /// The coefficient `c` of a penalty `c·Σθ²` on it (0 for none).
    penalty: f64,
    /// Why the cost cannot depend on it, when it cannot (an affine bias a batch norm
    /// follows: the norm removes each column's mean): its derivative is exactly 0.
    pub invariant: Option<String>,
}

/// One op of the sequence and its inputs besides `x`.
pub struct Node {
    op: Box<dyn LayerOp>,
    /// Fixed arrays it takes (a dropout mask, the labels).
    fixed: Arrays,
}

/// A sequence of ops ending in a loss, and its parameter tensors.
pub struct Network {
    nodes: Vec<Node>,
    tensors: Vec<Tensor>,
    /// The first node's `x`.
    input: ArrayD<f64>,
    /// What it computes, for the report: `affine → batchnorm → relu ×2 → affine → softmax`.
    pub description: String,
    /// Layer widths, input first.
    pub widths: Vec<usize>,
    pub examples: usize,
}

/// One evaluation of the cost from some node on.
struct Pass {
    /// The data loss (penalties apart).
    loss: f64,
    /// A bound on its rounding.
    err: f64,
}

/// The base evaluation: every node's input, its kink arguments, and `∂J/∂out` for each
/// of its outputs.
struct Base {
    inputs: Vec<ArrayD<f64>>,
    kinks: Vec<Option<(Vec<f64>, Vec<f64>)>>,
    adjoints: Vec<ArrayD<f64>>,
    pass: Pass,
}

/// The factor over the first-order rounding bound: the adjoints are the base point's, and
/// second-order terms are left out.
const SAFETY: f64 = 2.0;

/// A moved coordinate: tensor, flat index, value.
type Moved = (usize, usize, f64);

impl Network {
    /// The tensors, in the order their gradients are reported.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// `c·Σθ²` over the tensors.
    pub fn penalty(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.penalty * t.value.iter().map(|v| v * v).sum::<f64>())
            .sum()
    }

    /// A correct backward's rounding in the gradient of each column shift of node `k`'s
    /// output (an affine bias), in units of its unit round-off, where the next node makes
    /// the cost independent of such shifts: that node's input gradient's own rounding (its
    /// probes say), summed over the column with the sum's own.
    fn shift_rounding(&self, base: &Base, k: usize) -> Vec<f64> {
        let next = k + 1;
        let x = &base.inputs[next];
        // Each element's bias: its column (N, D), or its channel (N, C, H, W).
        let (biases, plane) = match x.shape() {
            [_, c, h, w] => (*c, h * w),
            shape => (shape[1], 1),
        };
        let arrays = self.arrays(next, x.clone(), None);
        let probes =
            self.nodes[next]
                .op
                .probes(&arrays, &base.adjoints[next], 0, crate::layer::STEPS[0]);
        let dz = base.adjoints[k].as_slice().expect("standard layout");
        let mut rounding = vec![0.0; biases];
        let mut count = vec![0usize; biases];
        for (i, p) in probes.iter().enumerate() {
            let b = (i / plane) % biases;
            rounding[b] += p.grad_scale;
            count[b] += 1;
        }
        for (i, g) in dz.iter().enumerate() {
            let b = (i / plane) % biases;
            rounding[b] += count[b] as f64 * g.abs();
        }
        rounding
    }

    /// Node `k`'s arrays: `x`, its fixed arrays, its parameters (one possibly moved).
    fn arrays(&self, k: usize, x: ArrayD<f64>, moved: Option<Moved>) -> Arrays {
        let mut arrays = self.nodes[k].fixed.clone();
        arrays.insert("x".into(), x);
        for (t, tensor) in self.tensors.iter().enumerate() {
            if tensor.node != k {
                continue;
            }
            let mut value = tensor.value.clone();
            if let Some((mt, i, v)) = moved.filter(|m| m.0 == t) {
                debug_assert_eq!(mt, t);
                if let Some(slot) = value.as_slice_mut().and_then(|s| s.get_mut(i)) {
                    *slot = v;
                }
            }
            arrays.insert(tensor.argument.into(), value);
        }
        arrays
    }

    /// Runs every node from the first, keeping what the probes re-start from, then the
    /// adjoints by the ops' reference backwards.
    fn base(&self) -> Base {
        let mut inputs = Vec::with_capacity(self.nodes.len());
        let mut kinks = Vec::with_capacity(self.nodes.len());
        let mut own = Vec::with_capacity(self.nodes.len());
        let mut x = self.input.clone();
        for k in 0..self.nodes.len() {
            inputs.push(x.clone());
            let out = self.step(k, x, None);
            kinks.push(out.kinks);
            own.push(out.err);
            x = out.out;
        }
        let loss = x.iter().copied().next().unwrap_or(f64::NAN);
        let mut adjoints = vec![ArrayD::zeros(ndarray::IxDyn(&[0])); self.nodes.len()];
        let mut dout = ArrayD::from_elem(ndarray::IxDyn(&[]), 1.0);
        for k in (0..self.nodes.len()).rev() {
            adjoints[k] = dout.clone();
            let arrays = self.arrays(k, inputs[k].clone(), None);
            dout = self.nodes[k].op.backward(&arrays, &dout).swap_remove(0);
        }
        let err = own
            .iter()
            .zip(&adjoints)
            .map(|(e, a)| weighted(e, a))
            .sum::<f64>();
        Base {
            inputs,
            kinks,
            adjoints,
            pass: Pass {
                loss,
                err: SAFETY * err,
            },
        }
    }

    /// Node `k`'s forward with its own rounding bounded.
    fn step(&self, k: usize, x: ArrayD<f64>, moved: Option<Moved>) -> crate::ops::Bounded {
        let exact = vec![0.0; x.len()];
        let arrays = self.arrays(k, x, moved);
        self.nodes[k]
            .op
            .forward_bounded(&arrays, &exact)
            .expect("the builder admits ops with a bounded forward only")
    }

    /// The cost with coordinate `moved` changed, re-run from its node, with a bound on
    /// the rounding the re-run nodes add; and, where a kink argument of a later node
    /// changed side, the fraction of the step at which the first did (by linear
    /// interpolation; 0 where the step moves one off 0).
    fn rerun(&self, base: &Base, moved: Moved) -> (Pass, Option<f64>) {
        let from = self.tensors[moved.0].node;
        let mut x = base.inputs[from].clone();
        let (mut crossing, mut err): (Option<f64>, f64) = (None, 0.0);
        for k in from..self.nodes.len() {
            let out = self.step(k, x, (k == from).then_some(moved));
            err += weighted(&out.err, &base.adjoints[k]);
            if let (Some((now, now_err)), Some((then, then_err))) = (&out.kinks, &base.kinks[k]) {
                for ((a, ea), (b, eb)) in now.iter().zip(now_err).zip(then.iter().zip(then_err)) {
                    let (at_kink, was_at_kink) = (a.abs() <= *ea, b.abs() <= *eb);
                    let at = match (was_at_kink, at_kink) {
                        // A tie (or a unit at 0) the step leaves in place: both sides
                        // move alike, and the derivative along the step is one.
                        (true, true) => continue,
                        (true, false) => 0.0,
                        (false, true) => b.abs() / (b.abs() + a.abs()),
                        (false, false) if (*a > 0.0) != (*b > 0.0) => b / (b - a),
                        (false, false) => continue,
                    };
                    crossing = Some(crossing.map_or(at, |c: f64| c.min(at)));
                }
            }
            x = out.out;
        }
        let pass = Pass {
            loss: x.iter().copied().next().unwrap_or(f64::NAN),
            err: SAFETY * err,
        };
        (pass, crossing)
    }
}

/// `Σ_k |∂J/∂out_k|·err_k`: what the outputs' rounding does to the cost, to first order.
fn weighted(err: &ArrayD<f64>, adjoint: &ArrayD<f64>) -> f64 {
    err.iter().zip(adjoint).map(|(e, a)| e * a.abs()).sum()
}
