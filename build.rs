//! Nothing to build: the build-dependencies only align host-side features with the Python
//! module's (Cargo.toml), so that one compile serves the binary, the tests and the module.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
