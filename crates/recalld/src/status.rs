//! Flyte-style cache statuses carried by every response that concerns an entry; the type
//! is recall-api's, the wire crate shared with the CLI.

pub use recall_api::CacheStatus;
