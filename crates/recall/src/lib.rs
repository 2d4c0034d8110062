//! Behaviour behind the `recall` binary, kept out of `main.rs` so it can be tested.

pub mod key_args;
