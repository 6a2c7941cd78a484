//! Compiles `proto/onnx_subset.proto` with `protox` (pure Rust, no system
//! `protoc`) and generates the prost messages.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "proto/onnx_subset.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
