//! The suite against JSONL, where it applies (append-only: no merge).

use std::path::PathBuf;

use ferry_core::sink::Sink;
use ferry_sinks::JsonlSink;
use serde_json::Value;

use crate::suite::Harness;

struct Jsonl {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Jsonl {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        Jsonl { _dir: dir, path }
    }
}

impl Harness for Jsonl {
    fn open(&mut self) -> Box<dyn Sink> {
        Box::new(JsonlSink::open(&self.path).unwrap())
    }

    fn rows(&mut self, table: &str) -> Vec<(String, Value)> {
        let text = std::fs::read_to_string(self.path.join(format!("{table}.jsonl"))).unwrap_or_default();
        let mut rows: Vec<(String, Value)> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| (v["key"].as_str().unwrap().to_owned(), v["record"].clone()))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    fn column(&mut self, _table: &str, _column: &str) -> Vec<(String, Value)> {
        Vec::new()
    }

    fn merges(&self) -> bool {
        false
    }
}

conformance!(Jsonl::new(), ready = true, append_only);
