//! ferry-sinks: where records land. SQLite (embedded default), Postgres and JSONL.
//!
//! Architecture invariant: sinks depend only on ferry-core and never do HTTP.

pub mod jsonl;
pub mod postgres;
mod postgres_tls;
pub mod sqlite;

pub use jsonl::JsonlSink;
pub use postgres::PostgresSink;
pub use sqlite::SqliteSink;
