//! `--rollback`, `--from/--to` and `--last` are honoured, refused or reported for every
//! stream, never ignored silently.

use crate::common::*;

fn notices(summary: &serde_json::Value) -> Vec<String> {
    summary["notices"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn a_flag_an_incremental_stream_cannot_honour_is_refused_before_anything_is_fetched() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 300"));
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    let db = s.db("data/s.db");
    let snapshot = |db: &rusqlite::Connection| {
        (table_rows(db, "sync_state"), table_rows(db, "synthetic_events"), count(db, "SELECT count(*) FROM sync_runs"))
    };
    let before = snapshot(&db);
    // `events` follows a sequence number, not a date: no flag can bound or roll it back.
    for (args, flag) in [
        (vec!["--rollback=2025-10-01"], "--rollback"),
        (vec!["--last=7d"], "--last"),
        (vec!["--from=2025-10-01"], "--from"),
        (vec!["--to=2025-10-01"], "--to"),
    ] {
        let mut a = vec!["sync", "p.toml"];
        a.extend(args);
        let o = s.run(&a);
        expect_code(&o, 2);
        let err = text(&o).1;
        assert!(err.contains(flag) && err.contains("events"), "{flag}: {err}");
        assert!(err.contains("--streams"), "the message says what to do: {err}");
        assert_eq!(snapshot(&db), before, "{flag}: something ran");
    }
}

#[test]
fn a_flag_a_full_refresh_stream_has_no_use_for_is_reported_once() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("syn", "data/s.db", "records = 300"));
    let o = s.run(&["sync", "p.toml", "--json", "--streams", "users,orders", "--from=2025-10-01", "--to=2025-10-05"]);
    expect_code(&o, 0);
    let r: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    let n = notices(&r);
    assert_eq!(n.len(), 2, "{n:?}");
    for stream in ["users", "orders"] {
        let line = n.iter().find(|l| l.contains(&format!("ignored for full-refresh stream {stream}"))).unwrap();
        assert!(line.contains("--from") && line.contains("--to"), "{line}");
    }
    let db = s.db("data/s.db");
    let batch = r["batch_id"].as_str().unwrap();
    let logged = count(
        &db,
        &format!(
            "SELECT count(*) FROM sync_logs WHERE batch_id = '{batch}' AND message LIKE '%ignored for full-refresh stream%'"
        ),
    );
    assert_eq!(logged, 2);
    // People see it in the summary too.
    let o = s.run(&["sync", "p.toml", "--streams", "users", "--rollback=2025-10-01"]);
    expect_code(&o, 0);
    let (out, _) = text(&o);
    assert!(out.contains("--rollback ignored for full-refresh stream users"), "{out}");
}

#[test]
fn connectors_shows_which_time_flags_each_stream_honours() {
    let s = Scratch::new();
    let o = s.run(&["connectors"]);
    expect_code(&o, 0);
    let (out, _) = text(&o);
    assert!(out.contains("time flags"), "{out}");
    let line = |stream: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{stream} ")))
            .unwrap_or_else(|| panic!("{stream}:\n{out}"))
    };
    for honours in ["contacts", "companies", "deals", "emails", "daily_analytics"] {
        assert!(line(honours).contains("--rollback, --from/--to, --last"), "{}", line(honours));
    }
    assert!(line("events").contains("refused"), "{}", line("events"));
    for ignores in ["owners", "users", "orders", "campaigns", "leads", "accounts", "steps", "overview"] {
        assert!(line(ignores).contains("ignored"), "{}", line(ignores));
    }
}
