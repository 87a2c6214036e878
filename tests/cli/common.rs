//! Helpers: a scratch directory per test, running the binary, reading tables.

use std::path::PathBuf;
use std::process::{Command, Output};

use rusqlite::Connection;

pub(crate) const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Held by tests that measure time or load the machine (the crash test's many processes,
/// the throughput test), so they never run at the same time on a 2-core CI box.
pub(crate) static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`TIMING`], surviving a poisoned lock (a failed test must not fail the others).
pub(crate) fn timing_lock() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch working directory; the binary runs inside it.
pub(crate) struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(FERRY);
        c.args(args).current_dir(self.dir.path()).env_remove("RUST_LOG");
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("ferry runs")
    }

    pub(crate) fn db(&self, rel: &str) -> Connection {
        if let Some(parent) = self.path(rel).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        Connection::open(self.path(rel)).expect("open db")
    }
}

pub(crate) fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts a clean exit with `code`, showing the output otherwise.
#[track_caller]
pub(crate) fn expect_code(o: &Output, code: i32) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(code), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "panic: {err}");
}

/// A synthetic pipeline with extra `[source]` lines.
pub(crate) fn synthetic_pipeline(name: &str, db: &str, source_extra: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\nconcurrency = 4\n\n[source]\nconnector = \"synthetic\"\n{source_extra}\n\n[sink]\ntype = \"sqlite\"\npath = \"{db}\"\n\n[logging]\ndir = \"logs\"\nlevel = \"info\"\n"
    )
}

/// Every row of a table as (key columns..., typed columns..., raw_json) text, sorted.
/// Ferry's bookkeeping columns (batch ids, times) are left out.
pub(crate) fn table_rows(conn: &Connection, table: &str) -> Vec<String> {
    let cols: Vec<String> = {
        let mut s = conn.prepare(&format!("PRAGMA table_info(\"{table}\")")).unwrap();
        s.query_map([], |r| r.get::<_, String>(1)).unwrap().map(Result::unwrap).collect()
    };
    let keep: Vec<String> = cols
        .into_iter()
        .filter(|c| {
            !["sync_batch_id", "first_sync_batch_id", "synced_at", "created_at", "updated_at"].contains(&c.as_str())
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM \"{table}\"",
        keep.iter().map(|c| format!("quote(\"{c}\")")).collect::<Vec<_>>().join(" || '|' || ")
    );
    let mut s = conn.prepare(&sql).unwrap();
    let mut rows: Vec<String> = s.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect();
    rows.sort();
    rows
}

pub(crate) fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Peak resident memory (VmHWM, kB) of a child, sampled until it exits.
pub(crate) fn run_measuring_peak(mut cmd: std::process::Command) -> (std::process::Output, u64) {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak = peak.max(kb);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (out, peak.join().unwrap())
}

/// Whether the test Postgres (`FERRY_TEST_PG_URL`, default 127.0.0.1:5432) answers. When it
/// does not, the test is skipped with one line on the terminal, or fails when
/// `FERRY_REQUIRE_POSTGRES` is set (`.ci/run` sets it), so a machine without Postgres can
/// still run the rest of the suite.
pub(crate) fn postgres_or_skip() -> bool {
    static UP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let url = std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into());
    let up = *UP.get_or_init(|| reachable(&url));
    if !up {
        require_or_skip("Postgres", &url);
    }
    up
}

/// Whether the server programs for throwaway clusters (`initdb`, `pg_ctl`) are installed;
/// skipped or failed as [`postgres_or_skip`].
pub(crate) fn postgres_server_or_skip() -> bool {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if !found {
        require_or_skip("the Postgres server programs (initdb)", "/usr/lib/postgresql/*/bin");
    }
    found
}

fn reachable(url: &str) -> bool {
    let Ok(cfg) = url.parse::<tokio_postgres::Config>() else { return false };
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => return true,
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    use std::net::ToSocketAddrs;
    (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok())
}

fn require_or_skip(what: &str, at: &str) {
    if std::env::var_os("FERRY_REQUIRE_POSTGRES").is_some() {
        panic!("{what} is not available at {at}, and FERRY_REQUIRE_POSTGRES is set");
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        // Straight to the terminal: the test harness would swallow `eprintln!`.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "note: {what} is not available at {at}: the tests that need it are skipped (set FERRY_REQUIRE_POSTGRES=1 to make that a failure)"
        );
    });
}

/// Under `cargo nextest` every test is a process of its own and [`TIMING`] holds nothing:
/// the tests that take it are listed in the `timing` test group of `.config/nextest.toml`
/// instead. This keeps that list complete (and free of tests that no longer exist).
#[test]
fn every_heavy_test_is_in_the_nextest_timing_group() {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = std::fs::read_to_string(format!("{root}/.config/nextest.toml")).unwrap();
    let mut heavy = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/tests/cli")).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_none_or(|e| e != "rs") || module == "common" {
            continue;
        }
        let mut current = None;
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(rest) = line.strip_prefix("fn ") {
                current = rest.split('(').next().map(str::to_owned);
            }
            if line.contains("timing_lock()")
                && let Some(name) = &current
            {
                heavy.push(format!("{module}::{name}"));
            }
        }
    }
    assert!(heavy.len() >= 6, "{heavy:?}");
    for test in &heavy {
        assert!(
            config.contains(&format!("test(={test})")),
            "{test} takes timing_lock() but is not in .config/nextest.toml"
        );
    }
    let listed = config.matches("test(=").count();
    assert_eq!(listed, heavy.len(), "the group lists tests that do not take timing_lock(): {heavy:?}");
}
