//! The sink conformance suite: one set of behaviours every sink must show, run against
//! each sink through a small harness: JSON merge (old fields kept), unchanged detection,
//! state committed with its batch, failed records isolated, schema evolution, quoting.

#[macro_use]
mod suite;

mod jsonl;
mod postgres;
mod sqlite;
