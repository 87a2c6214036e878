//! Tests of the Instantly API simulator (`--features sim`), one binary with
//! a module per concern. Everything runs against 127.0.0.1.

mod common;
mod errors;
mod faults;
mod mutate;
mod pagination;
mod scale;
mod schema;
