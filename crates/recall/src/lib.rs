//! Behaviour behind the `recall` binary, kept out of `main.rs` so it can be tested.
//!
//! Every subcommand is written against [`client::CacheClient`]: [`direct::DirectClient`]
//! reads and writes a store itself (`--store URL`), [`http::HttpClient`] goes through
//! recalld (`--daemon URL`).

pub mod capabilities;
pub mod cli;
pub mod client;
pub mod commands;
pub mod direct;
pub mod doctor;
pub mod error;
pub mod explain;
pub mod http;
pub mod job;
pub mod key_args;
pub mod material;
pub mod outputs;
pub mod progress;
pub mod run;
