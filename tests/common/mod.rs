//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gradcheck::generate::NetworkSpec;
use gradcheck::gpu::GpuContext;
use gradcheck::problem::Problem;

/// The exercise's fixture, as shipped in the repository.
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/exercise_buggy_backprop.npz"
);

/// The GPU context for GPU tests. Without an adapter the test is skipped with a visible
/// message, unless `GRADCHECK_REQUIRE_GPU=1` (set by CI), where it fails.
pub fn gpu() -> Option<GpuContext> {
    match GpuContext::new(None, gradcheck::options::LimitsChoice::from_env()) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var("GRADCHECK_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("GRADCHECK_REQUIRE_GPU=1 but no GPU: {e}");
            }
            eprintln!(
                "SKIPPED (no GPU adapter: {e}); set GRADCHECK_REQUIRE_GPU=1 to make this a failure"
            );
            None
        }
    }
}

/// A family of random networks: depth 1–4, small odd widths, a few seeds.
pub fn random_problems() -> Vec<Problem> {
    let shapes: [(&[usize], usize); 8] = [
        (&[3, 1], 5),
        (&[7, 5, 1], 1),
        (&[4, 9, 2], 13),
        (&[12, 17, 9, 1], 32),
        (&[5, 40, 3, 7, 1], 11),
        (&[1, 1, 1, 1, 1], 3),
        (&[20, 33, 1], 29),
        (&[6, 8, 8, 8, 3], 17),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, (widths, m))| {
            NetworkSpec::new(widths.to_vec(), *m, 100 + i as u64)
                .unwrap()
                .generate()
        })
        .collect()
}

/// Relative distance `|a − b| / |b|`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// Runs `gradcheck check --device cpu ARGS` and asserts exit 2 with `message` on stderr.
pub fn check_refuses(args: &[&str], message: &str) {
    assert_cmd::Command::cargo_bin("gradcheck")
        .unwrap()
        .args(["check", "--device", "cpu"])
        .args(args)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(message));
}

/// Asserts that every tensor passes, but for those whose gradient is exactly zero (a dead
/// unit): whole forward passes cannot tell 0 from a gradient below their round-off, so
/// those are undecided — or pass, where the exact derivative stood in for a difference
/// whose step crossed a kink (it is 0 exactly, with no round-off to hide an error).
pub fn passes_but_for_dead_tensors(
    tensors: &[gradcheck::check::TensorCheck],
    grad: &[f64],
    layout: &gradcheck::model::ParamLayout,
) {
    use gradcheck::check::Verdict;
    for (t, spec) in tensors.iter().zip(layout.tensors()) {
        let dead = grad[spec.range()].iter().all(|&g| g == 0.0);
        if dead {
            assert_ne!(t.verdict, Verdict::Fail, "{}: {:?}", t.name, t);
        } else {
            assert_eq!(t.verdict, Verdict::Pass, "{}: {:?}", t.name, t);
        }
    }
}

/// A network whose biases are all zero (the course's initialisation) with one blank input
/// example: at that example every hidden unit sits exactly on its ReLU kink.
pub fn zero_bias_blank_example(widths: &[usize], m: usize, seed: u64) -> Problem {
    use gradcheck::model::{Layer, Mlp};
    let base = NetworkSpec::new(widths.to_vec(), m, seed)
        .unwrap()
        .generate();
    let layers: Vec<Layer> = base
        .net()
        .layers()
        .iter()
        .map(|l| Layer {
            w: l.w.clone(),
            b: l.b.mapv(|_| 0.0),
        })
        .collect();
    let mut x = base.x().clone();
    x.column_mut(0).fill(0.0);
    Problem::new(Mlp::new(layers).unwrap(), x, base.y().clone()).unwrap()
}

/// The binary under test.
pub fn gradcheck() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("gradcheck").unwrap()
}

/// Writes named arrays to `dir/name` as an npz archive (as `np.savez` does); `f32` stores
/// them as float32.
pub fn write_npz(
    dir: &tempfile::TempDir,
    name: &str,
    arrays: &[(String, ndarray::Array2<f64>)],
    f32: bool,
) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).unwrap());
    for (n, a) in arrays {
        if f32 {
            npz.add_array(n.as_str(), &a.mapv(|v| v as f32)).unwrap();
        } else {
            npz.add_array(n.as_str(), a).unwrap();
        }
    }
    npz.finish().unwrap();
    path
}

/// The precisions a GPU test runs in on `ctx`: f64 only where the adapter has f64 shaders
/// (wgpu offers them on Vulkan only: never on Metal, DX12 or GL), with a visible message
/// when the f64 parts are skipped; the f32 parts run everywhere.
pub fn gpu_precisions(ctx: &GpuContext) -> Vec<gradcheck::options::Precision> {
    use gradcheck::options::Precision;
    if gpu_has_f64(ctx) {
        vec![Precision::F64, Precision::F32]
    } else {
        vec![Precision::F32]
    }
}

/// Whether `ctx` runs f64 shaders; says so when it does not (the f64 part is skipped).
pub fn gpu_has_f64(ctx: &GpuContext) -> bool {
    let has = ctx.supports_f64();
    if !has {
        eprintln!(
            "SKIPPED the f64 part: '{}' ({}) has no f64 shaders",
            ctx.summary().name,
            ctx.summary().backend
        );
    }
    has
}

/// Models that between them use every activation, loss, reduction and dropout, for the
/// tests that compose and validate every kernel.
pub fn model_variants() -> Vec<gradcheck::gpu::shader::ModelOps> {
    use gradcheck::model::{Activation, Dropout, Loss, Model, Penalty, Reduction};
    let every = Model {
        hidden: vec![
            Activation::LeakyRelu(0.2),
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Identity,
        ],
        loss: Loss::Softmax,
        reduction: Reduction::Sum,
        penalty: Penalty {
            l2: 0.5,
            ..Default::default()
        },
        dropout: Some(Dropout {
            keep_prob: 0.8,
            masks: Vec::new(),
        }),
    };
    let mse = Model {
        hidden: vec![Activation::Tanh],
        loss: Loss::Mse,
        ..Model::classic(2)
    };
    [Model::classic(3), every, mse]
        .iter()
        .map(|m| gradcheck::gpu::shader::ModelOps::of(m, 3))
        .collect()
}

/// Models beyond the exercise's that between them use every activation, loss, reduction,
/// penalties and dropout, as settings lines: the accuracy table's and the float32 tests'.
pub const OTHER_MODELS: [&str; 7] = [
    "hidden=tanh",
    "hidden=sigmoid loss=mse",
    "hidden=leaky_relu loss=softmax",
    "hidden=tanh loss=softmax l2=0.7",
    "hidden=relu keep_prob=0.8",
    "hidden=tanh loss=mse reduction=sum keep_prob=0.9",
    "hidden=leaky_relu loss=mse_mean weight_l2=0.01 weight_l1=0.003 bias_l2=0.02 bias_l1=0.001",
];

/// A generated network of `widths` and `examples` computing the model `settings` (a
/// settings line, as a file's `gradcheck` array).
pub fn network_of(settings: &str, widths: &[usize], examples: usize, seed: u64) -> Problem {
    NetworkSpec::new(widths.to_vec(), examples, seed)
        .unwrap()
        .with_model(gradcheck::model::ModelOptions::parse_line(settings).unwrap())
        .unwrap()
        .generate()
}

/// `|g32 − g| / σ` at its largest over the coordinates of `problem`: how far a float32
/// backprop strays from the exact gradient, in the round-off bound's standard deviations.
pub fn float32_deviation(problem: &Problem) -> f64 {
    use gradcheck::cpu::roundoff::{gradient_bound, GRADIENT_ROUNDOFF_SAFETY};
    let exact = gradcheck::cpu::backprop::gradients(problem);
    let single = float32_backprop(problem);
    let bound = gradient_bound(problem, gradcheck::options::Precision::F32);
    let mut worst = 0.0f64;
    for ((e, s), b) in exact.iter().zip(&single).zip(&bound) {
        let unit = b / GRADIENT_ROUNDOFF_SAFETY;
        if unit > 0.0 {
            worst = worst.max((f64::from(*s) - e).abs() / unit);
        }
    }
    worst
}

/// The compile-time constants every composed kernel may need, for the tests that compose
/// kernels outside a device.
pub const CONSTANTS: [(&str, u32); 6] = [
    ("WG", 64),
    ("TILE", 16),
    ("SCRATCH", 4096),
    ("DSCRATCH", 2048),
    ("ORDER", 5),
    ("MARGIN", 2),
];

/// A correct backprop of any model computed in float32 throughout, as NNFS or PyTorch's
/// default dtype would: what a check of float32 gradients must pass.
pub fn float32_backprop(problem: &Problem) -> Vec<f32> {
    use gradcheck::model::{Activation, Loss};
    use ndarray::{Array2, Axis};
    let f32_of = |a: &Array2<f64>| a.mapv(|v| v as f32);
    let net = problem.net();
    let model = problem.model();
    let layers: Vec<(Array2<f32>, Array2<f32>)> = net
        .layers()
        .iter()
        .map(|l| (f32_of(&l.w), l.b.mapv(|v| v as f32).insert_axis(Axis(1))))
        .collect();
    let keep = |l: usize| -> Option<Array2<f32>> {
        model
            .dropout
            .as_ref()
            .map(|d| d.masks[l].mapv(|k| k as f32 / d.keep_prob as f32))
    };
    let act = |a: Activation, z: f32| -> (f32, f32) {
        match a {
            Activation::Relu => (z.max(0.0), if z > 0.0 { 1.0 } else { 0.0 }),
            Activation::LeakyRelu(s) => {
                let s = s as f32;
                if z > 0.0 {
                    (z, 1.0)
                } else {
                    (s * z, s)
                }
            }
            Activation::Tanh => {
                let t = z.tanh();
                (t, 1.0 - t * t)
            }
            Activation::Sigmoid => {
                let s = 1.0 / (1.0 + (-z).exp());
                (s, s * (1.0 - s))
            }
            Activation::Identity => (z, 1.0),
        }
    };
    let last = layers.len() - 1;
    let mut a = vec![f32_of(problem.x())];
    let mut slopes = Vec::new();
    for (l, (w, b)) in layers.iter().enumerate() {
        let z = w.dot(&a[l]) + b;
        let out = if l == last {
            match model.loss {
                Loss::Bce => z.mapv(|v| 1.0 / (1.0 + (-v).exp())),
                Loss::Mse | Loss::MseMean | Loss::Sse => z,
                Loss::Softmax => {
                    let mut s = z;
                    for mut c in s.columns_mut() {
                        let top = c.fold(f32::NEG_INFINITY, |x, &y| x.max(y));
                        c.mapv_inplace(|v| (v - top).exp());
                        let sum = c.sum();
                        c.mapv_inplace(|v| v / sum);
                    }
                    s
                }
            }
        } else {
            let mut out = z.mapv(|v| act(model.hidden[l], v).0);
            let mut slope = z.mapv(|v| act(model.hidden[l], v).1);
            if let Some(k) = keep(l) {
                out *= &k;
                slope *= &k;
            }
            slopes.push(slope);
            out
        };
        a.push(out);
    }
    let scale = model.scale(problem.examples()) as f32;
    let m = problem.examples();
    let penalty = |layer, kind, values: &Array2<f32>| {
        values.mapv(|v| model.penalty_slope(layer, kind, m, f64::from(v)) as f32)
    };
    let twice = model
        .loss
        .squared_factor(problem.y().nrows())
        .map_or(1.0, |f| (2.0 * f) as f32);
    let mut dz = (&a[last + 1] - &f32_of(problem.y())) * (scale * twice);
    let mut per_layer = Vec::new();
    for l in (0..=last).rev() {
        let mut dw = dz.dot(&a[l].t());
        let mut db = dz.sum_axis(Axis(1));
        if !model.penalty.is_none() {
            use gradcheck::model::TensorKind;
            dw = dw + penalty(l, TensorKind::Weight, &layers[l].0);
            db = db + penalty(l, TensorKind::Bias, &layers[l].1).column(0);
        }
        if l > 0 {
            dz = layers[l].0.t().dot(&dz) * &slopes[l - 1];
        }
        per_layer.push((dw, db));
    }
    per_layer
        .into_iter()
        .rev()
        .flat_map(|(dw, db)| dw.into_iter().chain(db))
        .collect()
}

/// A rigorous bound on `|J_f32 − J_f64|` for a forward pass in f32 at the same (f32) point.
///
/// With `M_0 = |X|` and `M_l = |W_l| M_(l−1) + |b_l|` (the forward pass in absolute values),
/// each dot product of length n adds at most `(n + 2) u M_l` to `z_l`, and earlier errors
/// reach `z_L` through `|W|`, so `|δz_L| ≤ u Σ_l (n_(l−1) + 2) · M_L`. The cost term's
/// derivative `|σ(z) − y|` is at most 1; its own evaluation (our exp/log1p polynomials are
/// within 4 ulp, tested above) adds `8 u (softplus(z) + |y z|)`, and summing `m·nL` terms
/// adds at most `m·nL·u` times their absolute sum.
pub fn f32_cost_bound(p: &Problem) -> f64 {
    use gradcheck::cpu::forward;
    const F32_U: f64 = f32::EPSILON as f64 / 2.0;
    let mut m_abs = p.x().mapv(f64::abs);
    let mut depth_factor = 0.0;
    for layer in p.net().layers() {
        depth_factor += (layer.w.ncols() + 2) as f64;
        m_abs = layer.w.mapv(f64::abs).dot(&m_abs)
            + &layer.b.mapv(f64::abs).insert_axis(ndarray::Axis(1));
    }
    let z = forward::logits(p.net(), p.model(), p.x().view());
    let m = p.examples() as f64;
    let terms: f64 = z
        .iter()
        .zip(p.y().iter())
        .map(|(&z, &y)| forward::softplus(z) + (y * z).abs())
        .sum::<f64>()
        / m;
    let propagated: f64 = m_abs.iter().sum::<f64>() / m * depth_factor;
    // Perturbing one parameter moves the bound by far less than this factor of 2 covers.
    2.0 * F32_U * (propagated + 8.0 * terms + z.len() as f64 * terms)
}

/// How a hand-written backprop forms what admits more than one correct formula.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// The derivative at a ReLU's kink (`Z > 0`: 0; `np.heaviside(Z, 0.5)`: ½; `Z >= 0`: 1).
    pub relu_at_zero: f64,
    /// `1 − tanh²` and `s·(1 − s)` from the rounded activations, as most courses write them
    /// (else `1/cosh²` and `σ(z)σ(−z)`).
    pub naive_slopes: bool,
    /// `p − y` as computed (else the true class's residual as minus the others').
    pub naive_residual: bool,
}

/// A correct backprop of any model in float64, written as a course would, in `style`.
pub fn user_backprop(problem: &Problem, style: Style) -> Vec<f64> {
    use gradcheck::model::{Activation, Loss};
    use ndarray::{Array2, Axis};
    let net = problem.net();
    let model = problem.model();
    let last = net.layers().len() - 1;
    let keep = |l: usize| -> Option<Array2<f64>> {
        model
            .dropout
            .as_ref()
            .map(|d| d.masks[l].mapv(|k| k / d.keep_prob))
    };
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let act = |a: Activation, z: f64| -> (f64, f64) {
        match a {
            Activation::Relu => (
                z.max(0.0),
                if z > 0.0 {
                    1.0
                } else if z == 0.0 {
                    style.relu_at_zero
                } else {
                    0.0
                },
            ),
            Activation::LeakyRelu(s) => {
                if z > 0.0 {
                    (z, 1.0)
                } else if z == 0.0 {
                    (0.0, s + style.relu_at_zero * (1.0 - s))
                } else {
                    (s * z, s)
                }
            }
            Activation::Tanh => {
                let t = z.tanh();
                let slope = if style.naive_slopes {
                    1.0 - t * t
                } else {
                    1.0 / z.cosh().powi(2)
                };
                (t, slope)
            }
            Activation::Sigmoid => {
                let s = sigmoid(z);
                let slope = if style.naive_slopes {
                    s * (1.0 - s)
                } else {
                    sigmoid(z) * sigmoid(-z)
                };
                (s, slope)
            }
            Activation::Identity => (z, 1.0),
        }
    };
    let mut a = vec![problem.x().clone()];
    let mut slopes = Vec::new();
    let mut z_out = Array2::zeros((0, 0));
    for (l, layer) in net.layers().iter().enumerate() {
        let z = layer.w.dot(&a[l]) + layer.b.view().insert_axis(Axis(1));
        if l == last {
            z_out = z;
            break;
        }
        let mut out = z.mapv(|v| act(model.hidden[l], v).0);
        let mut slope = z.mapv(|v| act(model.hidden[l], v).1);
        if let Some(k) = keep(l) {
            out *= &k;
            slope *= &k;
        }
        slopes.push(slope);
        a.push(out);
    }
    let y = problem.y();
    let residual = match model.loss {
        Loss::Mse | Loss::MseMean | Loss::Sse => {
            (&z_out - y) * (2.0 * model.loss.squared_factor(y.nrows()).unwrap())
        }
        Loss::Bce => z_out.mapv(sigmoid) - y,
        Loss::Softmax => {
            let mut p = z_out.clone();
            for mut c in p.columns_mut() {
                let top = c.fold(f64::NEG_INFINITY, |x, &v| x.max(v));
                c.mapv_inplace(|v| (v - top).exp());
                let sum = c.sum();
                c.mapv_inplace(|v| v / sum);
            }
            let mut r = &p - y;
            if !style.naive_residual {
                for (mut rc, (pc, yc)) in r
                    .columns_mut()
                    .into_iter()
                    .zip(p.columns().into_iter().zip(y.columns()))
                {
                    for k in 0..rc.len() {
                        if yc[k] == 1.0 {
                            rc[k] = -(0..pc.len())
                                .filter(|&j| j != k)
                                .map(|j| pc[j])
                                .sum::<f64>();
                        }
                    }
                }
            }
            r
        }
    };
    let scale = model.scale(problem.examples());
    let m = problem.examples();
    let mut dz = residual * scale;
    let mut per_layer = Vec::new();
    for l in (0..=last).rev() {
        use gradcheck::model::TensorKind;
        let layer = &net.layers()[l];
        let dw = dz.dot(&a[l].t())
            + layer
                .w
                .mapv(|w| model.penalty_slope(l, TensorKind::Weight, m, w));
        let db = dz.sum_axis(Axis(1))
            + layer
                .b
                .mapv(|b| model.penalty_slope(l, TensorKind::Bias, m, b));
        if l > 0 {
            dz = net.layers()[l].w.t().dot(&dz) * &slopes[l - 1];
        }
        per_layer.push((dw, db));
    }
    per_layer
        .into_iter()
        .rev()
        .flat_map(|(dw, db)| dw.into_iter().chain(db))
        .collect()
}

/// The arrays of `p` in the course's layout (X, Y, W1, b1, …, the dropout masks), and
/// its gradient `grad` as dW1, db1, …: what a notebook saves with `np.savez`.
pub fn course_arrays(p: &Problem, grad: Option<&[f64]>) -> Vec<(String, ndarray::Array2<f64>)> {
    use ndarray::Axis;
    let mut out = vec![
        ("X".to_string(), p.x().clone()),
        ("Y".to_string(), p.y().clone()),
    ];
    for (l, layer) in p.net().layers().iter().enumerate() {
        out.push((format!("W{}", l + 1), layer.w.clone()));
        out.push((format!("b{}", l + 1), layer.b.clone().insert_axis(Axis(1))));
    }
    if let Some(d) = &p.model().dropout {
        for (l, mask) in d.masks.iter().enumerate() {
            out.push((format!("D{}", l + 1), mask.clone()));
        }
    }
    if let Some(g) = grad {
        for spec in p.net().layout().tensors() {
            let values = g[spec.range()].to_vec();
            out.push((
                format!("d{}", spec.name),
                ndarray::Array2::from_shape_vec(spec.shape, values).unwrap(),
            ));
        }
    }
    out
}

/// Writes `p` with gradient `grad` (the course's arrays) as `dir/name` and runs `gradcheck
/// check` on it with `flags`: the exit code and the output, stdout then stderr.
#[allow(dead_code)]
pub fn check_arrays(
    dir: &tempfile::TempDir,
    name: &str,
    (p, grad): (&Problem, &[f64]),
    flags: &[&str],
) -> (Option<i32>, String) {
    let path = write_npz(dir, name, &course_arrays(p, Some(grad)), false);
    let out = gradcheck()
        .arg("check")
        .arg(&path)
        .args(flags)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `p` without its penalties: the data term alone.
#[allow(dead_code)]
pub fn without_penalties(p: &Problem) -> Problem {
    Problem::with_model(
        p.net().clone(),
        gradcheck::model::Model {
            penalty: Default::default(),
            ..p.model().clone()
        },
        p.x().clone(),
        p.y().clone(),
    )
    .unwrap()
}

#[allow(dead_code)]
/// `p` with every bias set by `bias` and the first `blank` examples' inputs 0.
pub fn rebiased(p: &Problem, blank: usize, bias: impl Fn(usize) -> f64) -> Problem {
    let layers: Vec<gradcheck::model::Layer> = p
        .net()
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| gradcheck::model::Layer {
            w: layer.w.clone(),
            b: layer.b.mapv(|_| bias(l)),
        })
        .collect();
    let mut x = p.x().clone();
    for e in 0..blank {
        x.column_mut(e).fill(0.0);
    }
    Problem::with_model(
        gradcheck::model::Mlp::new(layers).unwrap(),
        p.model().clone(),
        x,
        p.y().clone(),
    )
    .unwrap()
}
