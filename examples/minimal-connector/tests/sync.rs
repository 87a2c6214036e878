//! The example connector is registered, built from a pipeline and synced by the real
//! engine into SQLite, incrementally, with no change to ferry-core.

use std::io::Write;

use ferry_core::config::PipelineConfig;
use ferry_core::engine::{self, Pipeline, RunOptions};
use ferry_core::registry::Registry;
use tokio_util::sync::CancellationToken;

use ferry_example_connector as _;
use ferry_sinks as _;

fn run(text: &str) -> engine::RunReport {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let config = PipelineConfig::parse(text, "example.toml").unwrap();
        let mut p = Pipeline::build(config, None).unwrap();
        engine::run(&mut p, RunOptions::default(), CancellationToken::new()).await.unwrap()
    })
}

#[test]
fn the_example_connector_syncs_incrementally() {
    let r = Registry::global().unwrap();
    assert!(r.connector("jsonl_file").is_ok());
    assert_eq!(r.streams_of("jsonl_file")[0].name, "lines");

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let db = dir.path().join("out.db");
    let mut f = std::fs::File::create(&input).unwrap();
    for i in 0..1200 {
        writeln!(f, r#"{{"id": "r{i}", "kind": "k{}", "at": "2025-10-01T00:00:00Z"}}"#, i % 3).unwrap();
    }
    writeln!(f, "not json").unwrap();
    drop(f);
    let text = format!(
        "[pipeline]\nname = \"example\"\n[source]\nconnector = \"jsonl_file\"\npath = \"{}\"\n[sink]\ntype = \"sqlite\"\npath = \"{}\"\n",
        input.display(),
        db.display()
    );
    let first = run(&text);
    assert_eq!(first.streams["lines"].stats.inserted, 1201);
    assert_eq!(first.status.as_str(), "ok");

    // Appended lines, and one torn line still being written: only complete new lines.
    let mut f = std::fs::OpenOptions::new().append(true).open(&input).unwrap();
    writeln!(f, r#"{{"id": "r5", "kind": "changed"}}"#).unwrap();
    writeln!(f, r#"{{"id": "new", "kind": "k0"}}"#).unwrap();
    write!(f, r#"{{"id": "torn""#).unwrap();
    drop(f);
    let second = run(&text);
    let s = &second.streams["lines"];
    assert_eq!((s.records, s.stats.inserted, s.stats.updated), (2, 1, 1));

    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM jsonl_file_lines", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1202);
    let kind: String = conn.query_row("SELECT kind FROM jsonl_file_lines WHERE id = 'r5'", [], |r| r.get(0)).unwrap();
    assert_eq!(kind, "changed");
    let bad: i64 =
        conn.query_row("SELECT count(*) FROM jsonl_file_lines WHERE kind = 'unparsable'", [], |r| r.get(0)).unwrap();
    assert_eq!(bad, 1);
}
