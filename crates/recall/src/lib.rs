//! Behaviour behind the `recall` binary, kept out of `main.rs` so it can be tested.
//!
//! Every subcommand is a module of [`cmd`] (`cmd/get.rs` is `recall get`), written against
//! [`client::CacheClient`]: [`direct::DirectClient`] reads and writes a store itself
//! (`--store URL`), [`http::HttpClient`] goes through recalld (`--daemon URL`, with
//! recall-api's wire types). `recall run`'s engine is [`run`]; what several subcommands
//! share has its own module: [`timeouts`], [`staging`] (downloads put in place all or
//! nothing), [`publish`], [`owner`], [`print`], and [`archive`] (the tar form of a `dir`
//! output, docs/LAYOUT.md section 4.3).

pub mod archive;
pub mod capabilities;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod direct;
pub mod doctor;
pub mod error;
pub mod explain;
pub mod http;
pub mod job;
pub mod key_args;
pub mod material;
pub mod outputs;
pub mod owner;
pub mod print;
pub mod progress;
pub mod publish;
pub mod run;
pub mod staging;
pub mod timeouts;
