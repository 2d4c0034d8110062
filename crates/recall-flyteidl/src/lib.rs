//! Flyte's catalog protocols, as recall's own `.proto` files (`proto/`), compiled to prost
//! messages and tonic clients and servers.
//!
//! - [`datacatalog`]: Flyte 1's `datacatalog.DataCatalog` service, which flytepropeller calls
//!   to memoize task outputs; recalld serves it (`--datacatalog-listen`).
//! - [`flyteidl::core`]: the literal messages the catalog names (a subset of Flyte's).
//!
//! Names and field numbers are Flyte's; the text is recall's. A literal inside a catalog
//! message is a [`RawLiteral`]: its encoded bytes, kept as they arrived.
//!
//! The protos are compiled by **protox**, a protobuf compiler written in Rust, at build time:
//! no system `protoc` is needed on a developer's machine or in CI. It is kept by the author of
//! prost-reflect, follows prost's releases (0.9 for prost 0.14), and passes the protobuf
//! conformance of descriptor output; `protoc-bin-vendored` would instead ship a prebuilt
//! binary per platform.

mod raw;

pub use raw::RawLiteral;

/// Flyte's `flyteidl.*` packages.
pub mod flyteidl {
    /// `flyteidl.core`: the literal messages (a subset of Flyte's literals.proto and types.proto).
    #[allow(missing_docs, clippy::all)]
    pub mod core {
        include!(concat!(env!("OUT_DIR"), "/typed/flyteidl.core.rs"));
    }
}

/// `datacatalog`: Flyte 1's catalog service, its messages, client and server.
#[allow(missing_docs, clippy::all)]
pub mod datacatalog {
    include!(concat!(env!("OUT_DIR"), "/datacatalog.rs"));
}

/// The encoded `FileDescriptorSet` of every proto in this crate (imports included), for gRPC
/// server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
