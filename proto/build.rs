//! Compiles the Nomad plugin protos (`proto/nomad/**`) with a pure-Rust protobuf compiler (protox), so no system
//! `protoc` is needed, and generates prost messages plus tonic clients and servers into one include file.

use std::path::PathBuf;

const ROOT: &str = "proto/nomad";
const FILES: &[&str] = &[
    "go-plugin/grpc_controller.proto",
    "go-plugin/grpc_stdio.proto",
    "go-plugin/grpc_broker.proto",
    "shared/hclspec/hcl_spec.proto",
    "shared/structs/attribute.proto",
    "shared/structs/recoverable_error.proto",
    "base/base.proto",
    "drivers/driver.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<PathBuf> = FILES.iter().map(|f| PathBuf::from(ROOT).join(f)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let descriptors = protox::compile(&files, [ROOT])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .include_file("nomad_include.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
