//! Syncing the synthetic connector end to end.

use crate::common::*;

#[test]
fn first_run_inserts_rerun_is_unchanged_next_generation_updates_exactly_the_changed() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 800\nchange_share = 0.25"));
    let o = s.run(&["sync", "p.toml", "--json"]);
    expect_code(&o, 0);
    let report: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(report["status"], "ok");
    for st in ["users", "events", "orders"] {
        assert_eq!(report["streams"][st]["inserted"], 800, "{st}");
    }
    let db = s.db("data/s.db");
    let first = table_rows(&db, "synthetic_users");
    assert_eq!(first.len(), 800);

    // Same data again: nothing rewritten.
    let changes_before = count(&db, "SELECT count(*) FROM synthetic_users WHERE sync_batch_id = first_sync_batch_id");
    let o = s.run(&["sync", "p.toml", "--json"]);
    expect_code(&o, 0);
    let report: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(report["streams"]["users"]["unchanged"], 800);
    assert_eq!(report["streams"]["users"]["updated"], 0);
    assert_eq!(report["streams"]["events"]["records"], 0, "incremental stream reads nothing new");
    assert_eq!(table_rows(&db, "synthetic_users"), first);
    assert_eq!(
        count(&db, "SELECT count(*) FROM synthetic_users WHERE sync_batch_id = first_sync_batch_id"),
        changes_before
    );

    // Generation 1: a quarter of users change, 100 events arrive.
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 800\nchange_share = 0.25\ngeneration = 1"));
    let o = s.run(&["sync", "p.toml", "--json"]);
    expect_code(&o, 0);
    let report: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    let updated = report["streams"]["users"]["updated"].as_u64().unwrap();
    let batch = report["batch_id"].as_str().unwrap().to_owned();
    assert!((120..=280).contains(&updated), "about a quarter changed: {updated}");
    assert_eq!(report["streams"]["users"]["unchanged"].as_u64().unwrap(), 800 - updated);
    assert_eq!(report["streams"]["events"]["inserted"], 100);
    let stamped = count(&db, &format!("SELECT count(*) FROM synthetic_users WHERE sync_batch_id = '{batch}'"));
    assert_eq!(stamped as u64, updated, "exactly the changed rows carry the new batch id");
    let changed_in =
        count(&db, "SELECT count(*) FROM synthetic_users WHERE json_extract(raw_json, '$.profile.changed_in') = 1");
    assert_eq!(changed_in as u64, updated);
}

#[test]
fn dry_run_counts_match_the_real_run_and_write_nothing() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 600"));
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 600\ngeneration = 2\nchange_share = 0.3"));
    let db = s.db("data/s.db");
    let before: Vec<Vec<String>> =
        ["synthetic_users", "synthetic_events", "sync_state"].iter().map(|t| table_rows(&db, t)).collect();
    let dry = s.run(&["sync", "p.toml", "--dry-run", "--json"]);
    expect_code(&dry, 0);
    let after: Vec<Vec<String>> =
        ["synthetic_users", "synthetic_events", "sync_state"].iter().map(|t| table_rows(&db, t)).collect();
    assert_eq!(before, after, "dry run changed tables or state");
    let real = s.run(&["sync", "p.toml", "--json"]);
    expect_code(&real, 0);
    let d: serde_json::Value = serde_json::from_str(&text(&dry).0).unwrap();
    let r: serde_json::Value = serde_json::from_str(&text(&real).0).unwrap();
    assert_eq!(d["dry_run"], true);
    for st in ["users", "events", "orders"] {
        for k in ["inserted", "updated", "unchanged", "failed"] {
            assert_eq!(d["streams"][st][k], r["streams"][st][k], "{st}.{k}");
        }
    }
    assert!(r["streams"]["users"]["updated"].as_u64().unwrap() > 0);
}

#[test]
fn a_failing_stream_ends_partial_with_exit_3_and_bad_records_are_isolated() {
    let s = Scratch::new();
    s.write(
        "p.toml",
        &synthetic_pipeline(
            "syn",
            "data/s.db",
            "records = 1000\npage_size = 100\nfail_stream = \"events\"\nfail_after = 450\nbad_record_every = 100",
        ),
    );
    let o = s.run(&["sync", "p.toml", "--json"]);
    expect_code(&o, 3);
    let r: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(r["status"], "partial");
    assert_eq!(r["streams"]["events"]["status"], "failed");
    assert!(r["streams"]["events"]["error"].as_str().unwrap().contains("failure point"));
    // The four full pages before the failure are committed, with their cursor.
    assert_eq!(r["streams"]["events"]["inserted"], 400);
    let db = s.db("data/s.db");
    assert_eq!(count(&db, "SELECT count(*) FROM synthetic_events"), 400);
    let cursor: String =
        db.query_row("SELECT cursor FROM sync_state WHERE stream = 'events'", [], |r| r.get(0)).unwrap();
    assert_eq!(cursor, r#"{"seq":399}"#);
    // Users: every 100th is malformed; the rest land.
    assert_eq!(r["streams"]["users"]["status"], "ok");
    assert_eq!(r["streams"]["users"]["failed"], 10);
    assert_eq!(r["streams"]["users"]["inserted"], 990);
    let errors = count(&db, "SELECT count(*) FROM sync_logs WHERE level = 'ERROR' AND meta LIKE '%events%'");
    assert!(errors >= 1);
    let refused = count(&db, "SELECT count(*) FROM sync_logs WHERE level = 'WARN' AND message = 'record refused'");
    assert_eq!(refused, 10);
}

#[test]
fn jsonl_sink_appends_one_file_per_stream_with_state() {
    let s = Scratch::new();
    s.write(
        "p.toml",
        "[pipeline]\nname = \"j\"\n[source]\nconnector = \"synthetic\"\nrecords = 300\n[sink]\ntype = \"jsonl\"\ndir = \"out\"\n",
    );
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    let users = std::fs::read_to_string(s.path("out/synthetic_users.jsonl")).unwrap();
    assert_eq!(users.lines().count(), 300);
    let first: serde_json::Value = serde_json::from_str(users.lines().next().unwrap()).unwrap();
    assert!(first["sync_batch_id"].is_string() && first["record"]["email"].is_string());
    let o = s.run(&["state", "show", "p.toml"]);
    expect_code(&o, 0);
    assert!(text(&o).0.contains("\"seq\":299"));
    // Incremental: the second run appends nothing for events.
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    let events = std::fs::read_to_string(s.path("out/synthetic_events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), 300);
    let o = s.run(&["status", "p.toml"]);
    expect_code(&o, 0);
    assert_eq!(text(&o).0.matches(" ok ").count(), 2, "{}", text(&o).0);
}

#[test]
fn transforms_apply_per_stream() {
    let s = Scratch::new();
    let mut p = synthetic_pipeline("t", "data/t.db", "records = 50");
    p.push_str(
        "\n[[transforms]]\ntype = \"hash_fields\"\nstreams = [\"users\"]\nfields = [\"email\"]\n\n[[transforms]]\ntype = \"drop_fields\"\nstreams = [\"users\"]\nfields = [\"profile.tags\"]\n\n[[transforms]]\ntype = \"add_fields\"\nfields = { origin = \"test\" }\n\n[[transforms]]\ntype = \"filter\"\nstreams = [\"orders\"]\nfield = \"region\"\nequals = \"emea\"\n\n[[transforms]]\ntype = \"rename_fields\"\nstreams = [\"events\"]\nfields = { kind = \"event_kind\" }\n",
    );
    s.write("p.toml", &p);
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    let db = s.db("data/t.db");
    let email: String = db.query_row("SELECT email FROM synthetic_users WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(email.len(), 64, "hashed: {email}");
    assert_eq!(count(&db, "SELECT count(*) FROM synthetic_users WHERE raw_json LIKE '%tags%'"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM synthetic_users WHERE json_extract(raw_json,'$.origin') = 'test'"), 50);
    assert_eq!(count(&db, "SELECT count(DISTINCT region) FROM synthetic_orders"), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM synthetic_events WHERE kind IS NULL AND raw_json LIKE '%event_kind%'"),
        50
    );
}

#[test]
fn init_is_idempotent_and_state_reset_clears_one_stream() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 100"));
    expect_code(&s.run(&["init", "p.toml"]), 0);
    expect_code(&s.run(&["init", "p.toml"]), 0);
    let db = s.db("data/s.db");
    for t in ["sync_logs", "sync_runs", "sync_state", "synthetic_users", "synthetic_events", "synthetic_orders"] {
        assert_eq!(count(&db, &format!("SELECT count(*) FROM sqlite_master WHERE name = '{t}'")), 1, "{t}");
    }
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_state WHERE stream = 'events'"), 1);
    let o = s.run(&["state", "reset", "p.toml", "--stream", "events"]);
    expect_code(&o, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_state"), 0);
    let o = s.run(&["state", "reset", "p.toml", "--stream", "nope"]);
    expect_code(&o, 2);
    assert!(text(&o).1.contains("unknown stream `nope`"));
}

#[test]
fn a_new_typed_column_is_added_to_an_existing_table() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 20"));
    // A table created by an older descriptor, without `plan` and `active`.
    let db = s.db("data/s.db");
    db.execute_batch(
        "CREATE TABLE synthetic_users (id INTEGER NOT NULL, email TEXT, name TEXT, score REAL, signup_at TEXT,
         raw_json TEXT NOT NULL, sync_batch_id TEXT, first_sync_batch_id TEXT, synced_at TEXT, created_at TEXT,
         updated_at TEXT, UNIQUE (id));
         INSERT INTO synthetic_users (id, email, raw_json) VALUES (1, 'old@example.com', '{\"id\":1,\"legacy\":\"kept\"}');",
    )
    .unwrap();
    expect_code(&s.run(&["sync", "p.toml", "--quiet", "--streams", "users"]), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM synthetic_users WHERE plan IS NOT NULL"), 20);
    let legacy: String = db
        .query_row("SELECT json_extract(raw_json, '$.legacy') FROM synthetic_users WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(legacy, "kept");
}
