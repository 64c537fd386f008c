//! The delta method's per-parameter sums as matrix products. A step `±ε` of `W_p[i, j]`
//! changes the cost by `Σ_e g_(p,i,e)(±ε·a_(p−1)[j, e])`, each `g` a series with
//! coefficients `c_k[i, e]` (`Series`), so
//!
//! ```text
//! ΔJ± = Σ_k (±ε)^k · G_k[i, j],    G_k = C_k · (A_(p−1)^∘k)ᵀ
//! ```
//!
//! — per layer and order one matrix product of the coefficients (`n_p × m`) with the
//! elementwise powers of the layer's input (`m × n_(p−1)`) instead of `P·m` polynomial
//! evaluations; `G_1` is backprop's `dZ·Aᵀ`, `G_3` and `G_5` the central difference's
//! truncation, known. The rows are taken in blocks, each block's products computed on one
//! core (its sums' order fixed by the shapes alone: the same bits on any number of
//! threads) and only the requested coordinates kept, so memory stays within a few blocks.
//! A block whose rows hold few requested coordinates (a sample, a refinement) is cheaper
//! evaluated coordinate by coordinate, and is.

use std::ops::Range;

use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::series::{Series, ORDER};
use crate::error::{Error, Result};
use crate::estimate::{DeltaCost, FIRST_ORDER_MARGIN, TERM_ROUNDINGS, TINY_OVER_U};
use crate::monitor::Monitor;
use crate::problem::Problem;

/// A row's requested coordinates: their positions in the request and their columns
/// ([`BIAS`] for the bias), in 32 bits each (a request of millions stays small).
pub(crate) type Wanted = Vec<(u32, u32)>;
/// The column of a row's bias.
pub(crate) const BIAS: u32 = u32::MAX;

/// A block of rows goes to the products when at least this fraction of its weights is
/// requested: per coordinate, a product's multiply-adds cost far less than a polynomial's
/// evaluation with its running sums.
const DENSE_FRACTION: f64 = 1.0 / 16.0;
/// What one block's products may hold, in f64 values.
const BLOCK_VALUES: usize = 1 << 20;

/// The cost changes of `θ_i ± eps` for each index in `indices` (their truncation at `eps`
/// included where the products computed it), on all cores.
pub fn delta_costs(
    problem: &Problem,
    series: &Series,
    eps: f64,
    indices: &[usize],
    monitor: &dyn Monitor,
) -> Result<Vec<DeltaCost>> {
    let wanted = requests(problem, series, indices)?;
    monitor.begin(indices.len() as u64);
    let mut out = vec![DeltaCost::default(); indices.len()];
    for (p, rows) in wanted.iter().enumerate() {
        let inputs = series.sens.inputs[p].view();
        let powers = Powers::of(inputs);
        let block = (BLOCK_VALUES / (ORDER + 1) / inputs.nrows().max(1)).clamp(1, 256);
        let blocks = row_blocks(rows.len(), block);
        // A few blocks per core at a time: their results wait for their places briefly.
        let wave = 2 * rayon::current_num_threads();
        for blocks in blocks.chunks(wave) {
            let done: Vec<Vec<DeltaCost>> = blocks
                .par_iter()
                .map(|range| {
                    if monitor.cancelled() {
                        return Vec::new();
                    }
                    let requested = &rows[range.clone()];
                    let costs = if is_dense(requested, inputs.nrows()) {
                        block_costs(series, (p, range.clone()), &powers, requested, eps)
                    } else {
                        requested
                            .iter()
                            .zip(range.clone())
                            .flat_map(|(wanted, row)| {
                                wanted.iter().map(move |&(_, col)| {
                                    series.delta_cost((p, row, column(col)), eps)
                                })
                            })
                            .collect()
                    };
                    monitor.advance(requested.iter().map(Vec::len).sum::<usize>() as u64);
                    costs
                })
                .collect();
            for (range, costs) in blocks.iter().zip(done) {
                let places = rows[range.clone()].iter().flatten();
                for (&(k, _), cost) in places.zip(costs) {
                    out[k as usize] = cost;
                }
            }
        }
    }
    if monitor.cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(out)
}

/// Each layer's rows' requested coordinates, from the flat `indices`.
pub(crate) fn requests(
    problem: &Problem,
    series: &Series,
    indices: &[usize],
) -> Result<Vec<Vec<Wanted>>> {
    if u32::try_from(indices.len()).is_err() {
        return Err(Error::TooLarge(format!(
            "{} coordinates in one request exceed 32-bit positions",
            indices.len()
        )));
    }
    let mut wanted: Vec<Vec<Wanted>> = series
        .coeff
        .iter()
        .map(|c| vec![Vec::new(); c.len_of(Axis(0))])
        .collect();
    for (k, &index) in indices.iter().enumerate() {
        let (p, row, col) = problem.locate(index)?;
        wanted[p][row].push((k as u32, col.map_or(BIAS, |j| j as u32)));
    }
    for row in wanted.iter_mut().flatten() {
        row.shrink_to_fit();
    }
    Ok(wanted)
}

/// `rows` rows in consecutive blocks of `block`.
pub(crate) fn row_blocks(rows: usize, block: usize) -> Vec<Range<usize>> {
    (0..rows)
        .step_by(block.max(1))
        .map(|start| start..(start + block).min(rows))
        .collect()
}

/// Whether the products pay for a block of rows of `cols` columns with these requests.
pub(crate) fn is_dense(requested: &[Wanted], cols: usize) -> bool {
    let count: usize = requested.iter().map(Vec::len).sum();
    count as f64 >= DENSE_FRACTION * (requested.len() * cols) as f64
}

/// A requested column, `None` for the bias.
pub(crate) fn column(col: u32) -> Option<usize> {
    (col != BIAS).then_some(col as usize)
}

/// A layer input's elementwise powers and magnitudes, transposed (`m × n_(p−1)`).
struct Powers {
    /// `(A^∘k)ᵀ` at `k − 1`.
    signed: Vec<Array2<f64>>,
    /// `|A|ᵀ`.
    absolute: Array2<f64>,
}

impl Powers {
    /// From the layer's input.
    fn of(inputs: ArrayView2<f64>) -> Self {
        let first = inputs.t().to_owned();
        let mut signed = vec![first.clone()];
        for _ in 1..ORDER {
            let next = signed.last().expect("one power") * &first;
            signed.push(next);
        }
        Self {
            absolute: first.mapv(f64::abs),
            signed,
        }
    }
}

/// The requested coordinates of the rows `range` of layer `p`, in their order, from the
/// block's products (f64: their round-off is [`combine`]'s).
fn block_costs(
    series: &Series,
    (p, range): (usize, Range<usize>),
    powers: &Powers,
    requested: &[Wanted],
    eps: f64,
) -> Vec<DeltaCost> {
    let coeff = series.coeff[p].slice(s![range.clone(), .., ..]);
    let m = coeff.len_of(Axis(1));
    let orders: Vec<Array2<f64>> = (0..ORDER)
        .map(|k| coeff.slice(s![.., .., k]).to_owned())
        .collect();
    let signed: Vec<Array2<f64>> = orders
        .iter()
        .zip(&powers.signed)
        .map(|(c, a)| c.dot(a))
        .collect();
    let first_size = orders[0].mapv(f64::abs).dot(&powers.absolute);
    let higher = HigherSizes::of(series, (p, range.clone()), eps);
    let arithmetic = Arithmetic::F64;
    let steps: [f64; ORDER] = std::array::from_fn(|k| eps.powi(k as i32 + 1));
    let mut out = Vec::with_capacity(requested.iter().map(Vec::len).sum());
    for (r, wanted) in requested.iter().enumerate() {
        let row = range.start + r;
        for &(_, col) in wanted {
            let Some(j) = column(col) else {
                out.push(series.delta_cost((p, row, None), eps));
                continue;
            };
            let terms = std::array::from_fn(|o| steps[o] * signed[o][[r, j]]);
            let sizes = higher.with_first(r, j, steps[0] * first_size[[r, j]]);
            out.push(combine(&terms, &sizes, (m, eps), arithmetic));
        }
    }
    out
}

/// The arithmetic the orders' sums were computed in: its unit round-off and the smallest
/// normal over it (what a term flushed to zero may have lost, relative to u).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arithmetic {
    pub u: f64,
    pub tiny_over_u: f64,
}

impl Arithmetic {
    pub const F64: Self = Self {
        u: crate::estimate::F64_UNIT_ROUNDOFF,
        tiny_over_u: TINY_OVER_U,
    };
}

/// The sizes of a block's higher orders, bounded without their products:
/// `ε^k · Σ_e |c_k[i, e]| · max_e |a[j, e]|^k` (they are `ε^(k−1)` below the first).
pub(crate) struct HigherSizes {
    /// `Σ_e |c_k[i, e]|` per row of the block, at `k − 1`.
    rows: Vec<Array1<f64>>,
    /// `max_e |a[j, e]|^k` per column, at `k − 1`.
    largest: Vec<Array1<f64>>,
    /// `ε^k`, at `k − 1`.
    steps: [f64; ORDER],
}

impl HigherSizes {
    /// For the rows `range` of layer `p` at step `eps`.
    pub fn of(series: &Series, (p, range): (usize, Range<usize>), eps: f64) -> Self {
        let coeff = series.coeff[p].slice(s![range, .., ..]);
        let rows = (0..ORDER)
            .map(|k| coeff.slice(s![.., .., k]).mapv(f64::abs).sum_axis(Axis(1)))
            .collect();
        let largest = (1..=ORDER as i32)
            .map(|k| series.sens.input_max[p].mapv(|v| v.powi(k)))
            .collect();
        Self {
            rows,
            largest,
            steps: std::array::from_fn(|k| eps.powi(k as i32 + 1)),
        }
    }

    /// Every order's size at the block's row `r` and column `j`, the first order's given.
    pub fn with_first(&self, r: usize, j: usize, first: f64) -> [f64; ORDER] {
        std::array::from_fn(|o| {
            if o == 0 {
                first
            } else {
                self.steps[o] * (self.rows[o][r] * self.largest[o][j])
            }
        })
    }
}

/// One weight's cost changes from its orders' parts at the step, `terms[k − 1] =
/// Σ_e c_k·(ε·a)^k`, and their sizes (what each part's round-off is relative to), summed
/// over `m` examples in `arithmetic`.
///
/// Round-off, per step: each term `c_k·(ε·a)^k` takes at most [`TERM_ROUNDINGS`] roundings
/// relative to its size (the inputs' conversion, the powers, the product), a sum of `m`
/// terms in any order errs by at most `(m − 1)·u` times the sum of their sizes, and the
/// orders' combination adds `ORDER − 1` more. Truncation: the estimate `(ΔJ₊ − ΔJ₋)/2ε` is
/// the series' `G_1 + ε²G_3 + ε⁴G_5`, so its distance from the derivative `G_1` is
/// `|ε²G_3 + ε⁴G_5|`, known, plus that sum's own round-off.
pub(crate) fn combine(
    terms: &[f64; ORDER],
    sizes: &[f64; ORDER],
    (m, eps): (usize, f64),
    Arithmetic { u, tiny_over_u }: Arithmetic,
) -> DeltaCost {
    let additions = (m + ORDER) as f64;
    let (mut plus, mut minus, mut size) = (0.0, 0.0, 0.0);
    for (o, (&t, &s)) in terms.iter().zip(sizes).enumerate() {
        plus += t;
        minus += if o % 2 == 0 { -t } else { t };
        size += s;
    }
    // Terms with a zero factor are exact zeros: only a coordinate with some nonzero term
    // may carry one flushed to zero.
    let floor = if size > 0.0 {
        2.0 * (m * ORDER) as f64 * tiny_over_u
    } else {
        0.0
    };
    let odd = terms[2] + terms[4];
    let odd_size = sizes[2] + sizes[4];
    let truncation =
        (odd.abs() + FIRST_ORDER_MARGIN * u * (additions + TERM_ROUNDINGS) * odd_size) / eps;
    DeltaCost {
        plus,
        minus,
        sizes: 2.0 * size + floor,
        partials: additions * 2.0 * size + floor,
        truncation: Some(truncation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::NetworkSpec;
    use crate::monitor::Silent;

    /// Products and polynomial evaluation agree within the round-off both bound.
    #[test]
    fn products_agree_with_the_per_coordinate_sums() {
        let problem = NetworkSpec::new(vec![6, 5, 4, 1], 9, 3).unwrap().generate();
        let series = Series::new(&problem);
        let all: Vec<usize> = (0..problem.net().num_params()).collect();
        let eps = 1e-3;
        let products = delta_costs(&problem, &series, eps, &all, &Silent).unwrap();
        for (&i, d) in all.iter().zip(&products) {
            let at = problem.locate(i).unwrap();
            let each = series.delta_cost(at, eps);
            let u = crate::estimate::F64_UNIT_ROUNDOFF;
            let tolerance = d.roundoff(u) + each.roundoff(u);
            assert!(
                (d.plus - each.plus).abs() <= tolerance,
                "{i}: {d:?} {each:?}"
            );
            assert!((d.minus - each.minus).abs() <= tolerance, "{i}");
            if at.2.is_some() {
                let known = d.truncation.unwrap();
                let bound = series.truncation_bound(at, eps);
                assert!(
                    known <= bound * (1.0 + 1e-9) + 1e-20,
                    "{i}: {known:e} > {bound:e}"
                );
            }
        }
    }
}
