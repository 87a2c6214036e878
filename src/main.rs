//! The `ferry` binary: argument parsing, console output and wiring. No business logic.

// Name every connector and sink crate so the linker keeps their `inventory`
// registrations (dtolnay/inventory#7); `tests/cli/registry.rs` fails if one goes missing.
use ferry_hubspot as _;
use ferry_instantly as _;
use ferry_sinks as _;
use ferry_synthetic as _;

/// `print!` that never panics: output to a closed pipe (`ferry status | head -1`) is
/// dropped, so a reader that stops early never stops ferry or makes it panic.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(&format!($($arg)*)) };
}

/// `println!` that never panics (see [`out!`]).
macro_rules! outln {
    () => { $crate::output::emit("\n") };
    ($($arg:tt)*) => { $crate::output::emit(&format!("{}\n", format!($($arg)*))) };
}

mod cli;
mod commands;
mod demo;
mod output;
mod progress;

use std::process::ExitCode;

use ferry_core::error::Exit;

// JSON-heavy work allocates many small maps; mimalloc handles that faster than glibc.
// Built without transparent huge pages (`no_thp`): with them a full sync of 100,000 leads
// peaked at 92 MB instead of 72 MB, every fault zeroing 2 MiB, and ran no faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = ferry_core::config::load_dotenv() {
        output::emit_err(&format!("error: {e}\n"));
        return ExitCode::from(Exit::Usage.code());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            output::emit_err(&format!("error: cannot start the async runtime: {e}\n"));
            return ExitCode::from(Exit::Failed.code());
        }
    };
    let code = match runtime.block_on(commands::dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            output::emit_err(&format!("error: {}\n", ferry_core::secret::redact(&output::chain(&e.error))));
            e.code
        }
    };
    // Readers still blocked on the network must not hold the process open.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code.code())
}
