//! The sink conformance suite: one set of behaviours every sink must show, run against
//! each sink through a small harness. Semantics are those of DESIGN.md (merge, unchanged
//! detection, state with its batch, failed-record isolation, schema evolution, quoting).

mod jsonl;
mod postgres;
mod sqlite;
mod suite;
