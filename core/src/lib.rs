//! ferry-core: the engine of ferry.
//!
//! Records and stream descriptors, the `Source` / `Transform` / `Sink` traits, the
//! registries connectors and sinks fill at link time, pipeline configuration, the
//! runner, the HTTP client with its rate limiter, time windows and logging.
//!
//! Architecture invariant: this crate depends on no connector and no sink.

pub mod config;
pub mod descriptor;
pub mod engine;
pub mod error;
pub mod http;
pub mod ident;
pub mod logging;
pub mod record;
pub mod registry;
pub mod secret;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sink;
pub mod source;
pub mod transform;
pub mod typed;
pub mod window;

/// Re-exported so connector and sink crates register without depending on it.
pub use inventory;

pub use async_trait::async_trait;
pub use futures;
pub use serde_json;
pub use toml;
