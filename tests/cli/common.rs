//! Helpers: a scratch directory per test, running the binary, reading tables.

use std::path::PathBuf;
use std::process::{Command, Output};

use rusqlite::Connection;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Held by tests that measure time or load the machine (the crash test's many processes,
/// the throughput test), so they never run at the same time on a 2-core CI box.
pub static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`TIMING`], surviving a poisoned lock (a failed test must not fail the others).
pub fn timing_lock() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch working directory; the binary runs inside it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(FERRY);
        c.args(args).current_dir(self.dir.path()).env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("ferry runs")
    }

    pub fn db(&self, rel: &str) -> Connection {
        if let Some(parent) = self.path(rel).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        Connection::open(self.path(rel)).expect("open db")
    }
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts a clean exit with `code`, showing the output otherwise.
#[track_caller]
pub fn expect_code(o: &Output, code: i32) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(code), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "panic: {err}");
}

/// A synthetic pipeline with extra `[source]` lines.
pub fn synthetic_pipeline(name: &str, db: &str, source_extra: &str) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\nconcurrency = 4\n\n[source]\nconnector = \"synthetic\"\n{source_extra}\n\n[sink]\ntype = \"sqlite\"\npath = \"{db}\"\n\n[logging]\ndir = \"logs\"\nlevel = \"info\"\n"
    )
}

/// Every row of a table as (key columns..., typed columns..., raw_json) text, sorted.
/// Ferry's bookkeeping columns (batch ids, times) are left out.
pub fn table_rows(conn: &Connection, table: &str) -> Vec<String> {
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

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}
