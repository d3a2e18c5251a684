//! Compiles `proto/**/*.proto` with protox (pure Rust, no `protoc`) and generates prost
//! messages plus tonic clients and servers.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "store/labelpb/types.proto",
    "store/storepb/types.proto",
    "store/storepb/rpc.proto",
    "store/storepb/prompb/types.proto",
    "store/storepb/prompb/remote.proto",
    "info/infopb/rpc.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Chunk data and symbol tables as `bytes::Bytes`: decoding shares the frame's
        // buffer instead of copying every chunk.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
