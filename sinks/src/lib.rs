//! ferry-sinks: where records land. SQLite (embedded default) and JSONL.
//!
//! Architecture invariant: sinks depend only on ferry-core and never do HTTP.

pub mod jsonl;
mod schema;
pub mod sqlite;

pub use jsonl::JsonlSink;
pub use sqlite::SqliteSink;
