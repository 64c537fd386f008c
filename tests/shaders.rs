//! Every shader parses and validates with naga in both precisions, and the Rust mirrors
//! of shader structs have the layout naga gives them.

mod common;

use std::mem::{offset_of, size_of};

use gradcheck::gpu::shader::{
    compose, ACTIVATIONS, CONFIG, DELTA, DIRECTIONS, FORWARD, FULL, KERNELS, LOSSES, MATH,
    PER_PARAMETER,
};
use gradcheck::gpu::{KernelConfig, LayerInfo};
use gradcheck::options::Precision;

use common::CONSTANTS;

fn validate(wgsl: &str) -> naga::Module {
    let module =
        naga::front::wgsl::parse_str(wgsl).unwrap_or_else(|e| panic!("{}", e.emit_to_string(wgsl)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::FLOAT64,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}", e.emit_to_string(wgsl)));
    module
}

#[test]
fn every_kernel_validates_in_f32_and_f64() {
    for kernel in KERNELS {
        for precision in [Precision::F32, Precision::F64] {
            for ops in common::model_variants() {
                let module = validate(&compose(kernel, precision, &CONSTANTS, &ops));
                assert!(
                    module.entry_points.iter().any(|e| e.name == "main"),
                    "{} has no main",
                    kernel.name
                );
            }
        }
    }
}

#[test]
fn every_file_in_shaders_is_a_known_kernel_or_the_math_library() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let text = std::fs::read_to_string(&path).unwrap();
            let known = text == MATH
                || text == CONFIG
                || text == FORWARD
                || text == ACTIVATIONS
                || text == PER_PARAMETER
                || text == LOSSES
                || KERNELS.iter().any(|k| k.source == text);
            assert!(
                known,
                "{} is not compiled or validated by anything",
                path.display()
            );
            seen += 1;
        }
    }
    assert_eq!(seen, KERNELS.len() + 6);
}

/// `(member name, offset)` of struct `name` in `module`, and its size.
fn layout(module: &naga::Module, name: &str) -> (Vec<(String, u32)>, u32) {
    let ty = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no {name}"))
        .1;
    match &ty.inner {
        naga::TypeInner::Struct { members, span } => (
            members
                .iter()
                .map(|m| (m.name.clone().unwrap(), m.offset))
                .collect(),
            *span,
        ),
        other => panic!("{name} is {other:?}"),
    }
}

/// Asserts that struct `name` in `module` has exactly `members` (name, Rust offset) and
/// the Rust size.
fn assert_mirror(module: &naga::Module, name: &str, members: &[(&str, usize)], size: usize) {
    let (actual, span) = layout(module, name);
    let expected: Vec<(String, u32)> = members
        .iter()
        .map(|(n, o)| (n.to_string(), *o as u32))
        .collect();
    assert_eq!(actual, expected, "{name}");
    assert_eq!(span as usize, size, "{name} size");
}

#[test]
fn rust_mirrors_match_the_shader_structs() {
    let config = [
        ("layers", offset_of!(KernelConfig, layers)),
        ("examples", offset_of!(KernelConfig, examples)),
        ("tile", offset_of!(KernelConfig, tile)),
        ("count", offset_of!(KernelConfig, count)),
        ("base", offset_of!(KernelConfig, base)),
        ("grid_x", offset_of!(KernelConfig, grid_x)),
        ("items", offset_of!(KernelConfig, items)),
        ("e_begin", offset_of!(KernelConfig, e_begin)),
        ("e_end", offset_of!(KernelConfig, e_end)),
        ("probe", offset_of!(KernelConfig, probe)),
        ("_pad1", offset_of!(KernelConfig, _pad1)),
    ];
    let layer = [
        ("rows", offset_of!(LayerInfo, rows)),
        ("cols", offset_of!(LayerInfo, cols)),
        ("w_offset", offset_of!(LayerInfo, w_offset)),
        ("b_offset", offset_of!(LayerInfo, b_offset)),
        ("z_offset", offset_of!(LayerInfo, z_offset)),
        ("in_offset", offset_of!(LayerInfo, in_offset)),
        ("mask_offset", offset_of!(LayerInfo, mask_offset)),
        ("_pad2", offset_of!(LayerInfo, _pad2)),
    ];
    for kernel in [FULL, DIRECTIONS, DELTA] {
        for precision in [Precision::F32, Precision::F64] {
            let ops = &common::model_variants()[0];
            let module = validate(&compose(kernel, precision, &CONSTANTS, ops));
            assert_mirror(&module, "Config", &config, size_of::<KernelConfig>());
            assert_mirror(&module, "LayerInfo", &layer, size_of::<LayerInfo>());
        }
    }
}
