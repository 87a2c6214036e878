//! End-to-end tests of the `ferry` binary. One test binary with modules, so the
//! workspace links once (ripgrep's `tests/tests.rs` layout).

// The test crate names every connector crate too, so its own registry is complete.
use ferry_hubspot as _;
use ferry_instantly as _;
use ferry_sinks as _;
use ferry_synthetic as _;

mod bad_input;
mod common;
mod crash;
mod faults;
mod first_contact;
mod hostile;
mod hostile_server;
mod hubspot;
mod incremental;
mod instantly;
mod legacy;
mod logging;
mod ops;
mod postgres;
mod postgres_tls;
mod readme;
mod registry;
mod simulator;
mod sync;
mod time_flags;
