//! Compiles the `.proto` files with `protox` (pure Rust, no system `protoc`)
//! and generates the prost messages and tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "ariann/v1/link.proto",
        "ariann/v1/control.proto",
        "ariann/v1/keys.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        // Key chunks as `bytes::Bytes`: the dealer sends slices of one
        // encoded bundle and the party reads slices of the receive buffer,
        // without a copy per chunk.
        .bytes(".ariann.v1.KeyBundleChunk.payload")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
