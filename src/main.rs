//! The `ferry` binary: argument parsing, console output and wiring. No business logic.

// Name every connector and sink crate so the linker keeps their `inventory`
// registrations (dtolnay/inventory#7); `tests/cli/registry.rs` fails if one goes missing.
use ferry_hubspot as _;
use ferry_instantly as _;
use ferry_sinks as _;
use ferry_synthetic as _;

mod cli;
mod commands;
mod demo;
mod output;
mod progress;

use std::process::ExitCode;

// JSON-heavy work allocates many small maps; mimalloc handles that faster than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

/// `mi_option_purge_delay`: its index in mimalloc's `mi_option_e` (mimalloc.h, the same in
/// v2 and v3; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc returns freed memory to the OS 10 ms after it empties. A sync frees and
/// allocates page-sized buffers and parsed records all the time, so memory went back and
/// came again as fresh pages, each a fault and a zeroed page: a re-run of 100,000 leads
/// took 48,000 minor faults, 4,900 with a one-second delay, and ran about 15% faster.
/// Memory still goes back one second after it is no longer used. `MIMALLOC_PURGE_DELAY`
/// in the environment wins.
#[allow(unsafe_code)]
fn keep_freed_memory_for_reuse() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads options atomically and allows
        // changing this one at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) }
    }
}

fn main() -> ExitCode {
    keep_freed_memory_for_reuse();
    let cli = cli::Cli::parse();
    ferry_core::config::load_dotenv();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(commands::dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", ferry_core::secret::redact(&format!("{:#}", e.error)));
            e.code
        }
    };
    // Readers still blocked on the network must not hold the process open.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}
