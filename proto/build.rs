//! Generates the tonic/prost code for `barrage.proto` at build time. `protox` parses the
//! .proto in pure Rust, so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=barrage.proto");
    let fds = protox::compile(["barrage.proto"], ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
