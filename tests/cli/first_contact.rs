//! First contact: what a new user runs, run twice, from anywhere, with odd input. Each test
//! names the defect it guards against.

use chrono::{Duration, Utc};
use ferry_instantly::sim::{SimConfig, Simulator, start_of_day};

use crate::common::*;
use crate::simulator::*;

/// Per-stream (inserted, updated) of the latest run, from its STREAM_END rows.
fn last_run_writes(db: &rusqlite::Connection) -> Vec<(String, i64, i64)> {
    let mut st = db
        .prepare(
            "SELECT json_extract(meta, '$.stream'), json_extract(meta, '$.inserted'), json_extract(meta, '$.updated') \
             FROM sync_logs WHERE step = 'STREAM_END' AND batch_id = \
             (SELECT batch_id FROM sync_runs ORDER BY started_at DESC LIMIT 1) ORDER BY 1",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn demo_run_twice_rewrites_nothing_and_duplicates_nothing() {
    let s = Scratch::new();
    for _ in 0..2 {
        expect_code(&s.run(&["demo"]), 0);
    }
    let db = s.db("data/demo.db");
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_leads_raw"), 1050);
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_campaigns_raw"), 5);
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_steps_raw"), 21);
    let writes = last_run_writes(&db);
    assert_eq!(writes.len(), 7, "{writes:?}");
    for (stream, inserted, updated) in writes {
        assert_eq!((inserted, updated), (0, 0), "second demo run rewrote {stream}");
    }
}

#[test]
fn a_restarted_simulator_with_the_same_seed_serves_the_same_ids() {
    // Two simulators started days apart: ids are a function of the seed alone.
    let today = start_of_day(Utc::now());
    let a = Simulator::new(SimConfig { now: Some(today - Duration::days(3)), ..small() }).dataset();
    let b = Simulator::new(SimConfig { now: Some(today), ..small() }).dataset();
    let ids = |items: &[serde_json::Value]| items.iter().map(|i| i["id"].to_string()).collect::<Vec<_>>();
    assert!(ids(&a.campaigns) == ids(&b.campaigns), "campaign ids moved with the clock");
    assert!(ids(&a.leads) == ids(&b.leads), "lead ids moved with the clock");
    assert!(ids(&a.emails) == ids(&b.emails), "email ids moved with the clock");
    // And two started on the same day with the default clock serve the same dataset.
    let c = Simulator::new(small()).dataset();
    let d = Simulator::new(small()).dataset();
    assert_eq!(serde_json::to_string(&c.leads).unwrap(), serde_json::to_string(&d.leads).unwrap());
    assert_eq!(serde_json::to_string(&c.emails).unwrap(), serde_json::to_string(&d.emails).unwrap());
}

#[test]
fn the_demo_example_pipeline_has_its_own_name_and_database() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/examples/instantly-demo.toml")).unwrap();
    let config = ferry_core::config::PipelineConfig::parse(&text, "instantly-demo.toml").unwrap();
    assert_ne!(config.name, "demo", "`ferry demo` uses the pipeline name demo");
    assert!(!text.contains("data/demo.db"), "`ferry demo` writes data/demo.db");
}

#[test]
fn a_stream_task_that_panics_fails_the_run() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("panics", "data/p.db", "records = 50\npanic_in_partitions = true"));
    let o = s.run(&["sync", "p.toml", "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "stdout:\n{out}\nstderr:\n{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["status"], "partial");
    assert_eq!(summary["streams"]["orders"]["status"], "failed");
    assert!(summary["streams"]["orders"]["error"].as_str().unwrap().contains("panic_in_partitions"), "{summary}");
    assert_eq!(summary["streams"]["users"]["status"], "ok");
    let db = s.db("data/p.db");
    let stored: String = db.query_row("SELECT status FROM sync_runs", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "partial");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sync_logs WHERE level = 'ERROR' AND message LIKE '%ended abnormally%' AND meta LIKE '%panic_in_partitions%'"
        ),
        1
    );
    let errors = std::fs::read_dir(s.path("logs/errors")).unwrap().next().unwrap().unwrap().path();
    assert!(std::fs::read_to_string(errors).unwrap().contains("panic_in_partitions"));
}

#[test]
fn a_record_from_the_future_does_not_move_the_cursor_past_the_run_start() {
    // The simulator's clock is ten days ahead: about a third of its emails are "future".
    let (sim, s) = start(SimConfig { now: Some(Utc::now() + Duration::days(10)), ..small() }, "");
    let before = Utc::now();
    let first = sync(&s, &["--streams", "emails"]);
    assert_eq!(first["status"], "ok", "{first}");
    let db = s.db("data/i.db");
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_emails_raw"), sim.sim.dataset().emails.len() as i64);
    let cursor: String = db
        .query_row(
            "SELECT json_extract(cursor, '$.timestamp_created') FROM sync_state WHERE stream = 'emails'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let cursor = ferry_core::typed::parse_timestamp(&cursor).unwrap();
    assert!(cursor <= Utc::now() && cursor >= before - Duration::seconds(5), "cursor {cursor} ran ahead");
    assert!(
        count(
            &db,
            "SELECT count(*) FROM sync_logs WHERE level = 'WARN' AND message LIKE '%in the future%' AND meta LIKE '%\"id\"%'"
        ) >= 1
    );
}
