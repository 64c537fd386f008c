// Hidden-layer activations, one function per op, each with a CPU twin in
// model::spec::Activation::apply. The host composes `fn activate(l, z)` from them, one
// case per hidden layer (gpu::shader::model_source). tanh and sigmoid are built from
// exp_real and expm1 (math.wgsl): WGSL's own f64 transcendentals do not reach SPIR-V.

fn act_relu(z: Real) -> Real {
    return max(z, Real(0.0));
}

fn act_leaky_relu(z: Real, slope: Real) -> Real {
    return select(slope * z, z, z > Real(0.0));
}

// e^d - 1 without cancellation for small |d|.
fn expm1_real(d: Real) -> Real {
    if (abs(d) < Real(1.0)) {
        return d + expm1_minus_x(d);
    }
    return exp_real(d) - Real(1.0);
}

// tanh(z) = t / (t + 2) with t = e^(2|z|) - 1, sign restored; exactly +-1 where the
// quotient rounds there anyway (|z| > 20 in f64), which also keeps f32's e^(2|z|) finite.
fn act_tanh(z: Real) -> Real {
    let a = abs(z);
    if (a > Real(20.0)) {
        return sign(z);
    }
    let t = expm1_real(Real(2.0) * a);
    let r = t / (t + Real(2.0));
    return select(r, -r, z < Real(0.0));
}

fn act_sigmoid(z: Real) -> Real {
    if (z >= Real(0.0)) {
        return Real(1.0) / (Real(1.0) + exp_real(-z));
    }
    let e = exp_real(z);
    return e / (Real(1.0) + e);
}
