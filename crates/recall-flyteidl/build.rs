//! Compiles `proto/` with protox (a protobuf compiler in Rust: no system `protoc` needed) and
//! generates prost messages and tonic services from the result.

use std::path::PathBuf;

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/flyteidl/core/literals.proto",
        "proto/datacatalog/datacatalog.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // The whole set (imports included) for gRPC server reflection.
    std::fs::write(out.join("descriptors.bin"), fds.encode_to_vec())?;

    // flyteidl.core: typed messages, for clients that build literals (into `typed/`; the
    // services generated there too are not used).
    let typed = out.join("typed");
    std::fs::create_dir_all(&typed)?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .out_dir(&typed)
        .compile_fds(fds.clone())?;
    // datacatalog: a literal travels as its raw bytes (`RawLiteral`), so what a client sent is
    // what it gets back, byte for byte, including fields this crate's literals.proto lacks.
    tonic_prost_build::configure()
        .extern_path(".flyteidl.core", "crate::flyteidl::core")
        .extern_path(".flyteidl.core.Literal", "crate::RawLiteral")
        .compile_fds(fds)?;
    Ok(())
}
