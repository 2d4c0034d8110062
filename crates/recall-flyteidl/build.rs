//! Compiles `proto/` with protox (a protobuf compiler in Rust: no system `protoc` needed) and
//! generates prost messages and tonic services from the result.

use std::path::PathBuf;

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/flyteidl/core/literals.proto",
        "proto/datacatalog/datacatalog.proto",
        "proto/flyteidl2/core/identifier.proto",
        "proto/flyteidl2/cacheservice/cacheservice.proto",
        "proto/flyteidl2/cacheservice/v2/cacheservice.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Flyte 2's `flyteidl2.core` literals are Flyte 1's under a new package name (same
    // messages, names and numbers, checked against both wheels' descriptors): the file is
    // written from flyteidl/core/literals.proto rather than kept twice.
    let generated = out.join("proto");
    std::fs::create_dir_all(generated.join("flyteidl2/core"))?;
    let literals = std::fs::read_to_string("proto/flyteidl/core/literals.proto")?
        .replace("package flyteidl.core;", "package flyteidl2.core;");
    std::fs::write(generated.join("flyteidl2/core/literals.proto"), literals)?;
    let fds = protox::compile(files, [PathBuf::from("proto"), generated])?;
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
    // datacatalog and the cache service: a literal (and a cached output's literal map and
    // source identifier) travels as its raw bytes (`RawLiteral`), so what a client sent is
    // what it gets back, byte for byte, including fields this crate's literals.proto lacks.
    tonic_prost_build::configure()
        .extern_path(".flyteidl.core", "crate::flyteidl::core")
        .extern_path(".flyteidl.core.Literal", "crate::RawLiteral")
        .extern_path(".flyteidl2.core", "crate::flyteidl::core")
        .extern_path(".flyteidl2.core.LiteralMap", "crate::RawLiteral")
        .extern_path(".flyteidl2.core.Identifier", "crate::RawLiteral")
        .compile_fds(fds)?;
    Ok(())
}
