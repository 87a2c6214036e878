//! Incremental sync against the simulator: cursors, windows, rollback, resume, dry run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use ferry_instantly::sim::{MutateSpec, SimConfig};

use crate::common::*;
use crate::simulator::*;

fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .map(|v| v.replace("%3A", ":").replace("%2B", "+"))
}

fn requests_by_path(sim: &Sim) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in sim.sim.requests() {
        *m.entry(r.path.trim_start_matches("/api/v2").to_owned()).or_default() += 1;
    }
    m
}

fn state(db: &rusqlite::Connection) -> Vec<String> {
    table_rows(db, "sync_state")
}

fn cursor(db: &rusqlite::Connection, stream: &str, partition: &str) -> serde_json::Value {
    let c: String = db
        .query_row("SELECT cursor FROM sync_state WHERE stream = ?1 AND partition = ?2", [stream, partition], |r| {
            r.get(0)
        })
        .unwrap();
    serde_json::from_str(&c).unwrap()
}

#[test]
fn incremental_run_fetches_only_the_new_window() {
    let (sim, s) = start(small(), "");
    sync(&s, &[]);
    let first = requests_by_path(&sim);
    let db = s.db("data/i.db");
    let email_cursor: DateTime<Utc> = cursor(&db, "emails", "")["timestamp_created"].as_str().unwrap().parse().unwrap();
    let daily_cursor = cursor(&db, "daily_analytics", "workspace")["date"].as_str().unwrap().to_owned();

    let report = sim.sim.mutate(MutateSpec::default());
    sim.sim.clear_requests();
    let second_run = sync(&s, &[]);
    let second = requests_by_path(&sim);
    eprintln!("requests per endpoint, first run: {first:?}");
    eprintln!("requests per endpoint, second run: {second:?}");

    for r in sim.sim.requests() {
        let q = r.query.clone().unwrap_or_default();
        if r.path.ends_with("/emails") {
            let min: DateTime<Utc> = param(&q, "min_timestamp_created").unwrap().parse().unwrap();
            assert_eq!(min, email_cursor - chrono::Duration::hours(1), "emails from cursor minus the overlap");
        }
        if r.path.ends_with("/analytics/daily") {
            let start = NaiveDate::parse_from_str(&param(&q, "start_date").unwrap(), "%Y-%m-%d").unwrap();
            let saved = NaiveDate::parse_from_str(&daily_cursor, "%Y-%m-%d").unwrap();
            assert_eq!(start, saved - chrono::Duration::days(7), "daily from cursor minus the lookback: {q}");
        }
    }
    assert!(second["/emails"] < first["/emails"], "{first:?} vs {second:?}");
    assert_eq!(second_run["streams"]["emails"]["inserted"].as_u64().unwrap() as usize, report.new_email_ids.len());
    // Revised days inside the lookback were updated.
    let b = second_run["batch_id"].as_str().unwrap();
    for k in &report.revised_daily {
        let batch: String = db
            .query_row(
                "SELECT sync_batch_id FROM instantly_daily_analytics_raw WHERE scope = ?1 AND date = ?2",
                [&k.campaign_id, &k.date.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(batch, b, "revised day {k:?} updated");
    }
}

#[test]
fn emails_at_the_cursor_boundary_and_during_the_sync_land_exactly_once() {
    let (sim, s) = start(small(), "");
    sync(&s, &[]);
    // Several new emails share the saved cursor's exact timestamp; more arrive while
    // the next run is paging.
    let r = sim.sim.mutate(MutateSpec { emails_at_last_timestamp: 4, new_emails: 3, ..MutateSpec::none() });
    assert_eq!(r.emails_at_last_timestamp_ids.len(), 4);
    sim.sim.on_request_mutate("/emails", 1, MutateSpec { new_emails: 5, advance_secs: 60, ..MutateSpec::none() });
    sync(&s, &[]);
    sync(&s, &[]);
    let db = s.db("data/i.db");
    let stored = keys(&db, "SELECT instantly_email_id FROM instantly_emails_raw");
    let expected: BTreeSet<String> =
        sim.sim.dataset().emails.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(stored, expected);
    for id in &r.emails_at_last_timestamp_ids {
        assert!(stored.contains(id), "boundary email {id} missed");
    }
}

#[test]
fn rollback_then_sync_equals_a_fresh_full_sync() {
    let sim = Sim::start(small());
    let a = Scratch::new();
    a.write("p.toml", &pipeline(&sim.base, "data/a.db", ""));
    sync(&a, &[]);
    sim.sim.mutate(MutateSpec { update_leads: 0, ..MutateSpec::default() });
    sync(&a, &[]);
    let day = (sim.sim.now() - chrono::Duration::days(5)).date_naive().to_string();
    let o = a
        .cmd(&["sync", "p.toml", "--json", &format!("--rollback={day}")])
        .env("SIM_INSTANTLY_KEY", KEY)
        .output()
        .unwrap();
    expect_code(&o, 0);
    let adb = a.db("data/a.db");
    let rollback_batch: String =
        adb.query_row("SELECT batch_id FROM sync_runs ORDER BY started_at DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    let logged = count(
        &adb,
        &format!(
            "SELECT count(*) FROM sync_logs WHERE step = 'rollback' AND meta LIKE '%old_cursor%' AND batch_id = '{rollback_batch}'"
        ),
    );
    assert!(logged >= 2, "old cursors recorded in sync_logs with the run's batch id");

    let b = Scratch::new();
    b.write("p.toml", &pipeline(&sim.base, "data/b.db", ""));
    sync(&b, &["--all"]);
    let bdb = b.db("data/b.db");
    for t in TABLES {
        assert_eq!(table_rows(&adb, t), table_rows(&bdb, t), "{t}");
    }
}

#[test]
fn last_7d_reads_the_window_and_leaves_cursors_alone() {
    let (sim, s) = start(small(), "");
    sync(&s, &[]);
    sim.sim.mutate(MutateSpec::default());
    let db = s.db("data/i.db");
    let before = state(&db);
    sim.sim.clear_requests();
    let started = Utc::now();
    sync(&s, &["--last=7d", "--streams", "emails,daily_analytics"]);
    assert_eq!(state(&db), before, "saved cursors unchanged");
    for r in sim.sim.requests() {
        let q = r.query.clone().unwrap_or_default();
        if r.path.ends_with("/emails") {
            let min: DateTime<Utc> = param(&q, "min_timestamp_created").unwrap().parse().unwrap();
            let expect = started - chrono::Duration::days(7);
            assert!((min - expect).num_seconds().abs() < 60, "{min} vs {expect}");
        }
        if r.path.ends_with("/analytics/daily") {
            let start = param(&q, "start_date").unwrap();
            assert_eq!(start, (started - chrono::Duration::days(7)).date_naive().to_string());
        }
    }
}

#[test]
fn a_killed_leads_scan_resumes_from_its_saved_position() {
    let cfg = SimConfig { campaigns: 3, leads_per_campaign: 700, list_only_leads: 10, latency_ms: 15, ..small() };
    let sim = Sim::start(cfg);
    // Reference: an uninterrupted scan.
    let r = Scratch::new();
    r.write("p.toml", &pipeline_with(&sim.base, "data/r.db", "", 1));
    sim.sim.clear_requests();
    sync(&r, &["--streams", "leads"]);
    let fresh_requests = requests_by_path(&sim)["/leads/list"];

    let s = Scratch::new();
    s.write("p.toml", &pipeline_with(&sim.base, "data/i.db", "", 1));
    let mut child =
        s.cmd(&["sync", "p.toml", "--quiet", "--streams", "leads"]).env("SIM_INSTANTLY_KEY", KEY).spawn().unwrap();
    let db = s.db("data/i.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let saved: i64 =
            db.query_row("SELECT count(*) FROM sync_state WHERE stream = 'leads'", [], |r| r.get(0)).unwrap_or(0);
        let rows: i64 = db.query_row("SELECT count(*) FROM instantly_leads_raw", [], |r| r.get(0)).unwrap_or(0);
        if saved > 0 && rows >= 800 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "scan never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    sim.sim.clear_requests();
    sync(&s, &["--streams", "leads"]);
    let resumed_requests = requests_by_path(&sim)["/leads/list"];
    eprintln!("leads requests: fresh scan {fresh_requests}, resumed scan {resumed_requests}");
    assert!(resumed_requests < fresh_requests, "{resumed_requests} >= {fresh_requests}");
    let rdb = r.db("data/r.db");
    assert_eq!(table_rows(&db, "instantly_leads_raw"), table_rows(&rdb, "instantly_leads_raw"));
    assert_eq!(
        count(&db, "SELECT count(*) FROM sync_state WHERE stream = 'leads'"),
        0,
        "completed scan clears its position"
    );
}

#[test]
fn dry_run_counts_equal_the_real_run_and_change_nothing() {
    let (sim, s) = start(small(), "");
    sync(&s, &[]);
    sim.sim.mutate(MutateSpec::default());
    let db = s.db("data/i.db");
    let snapshot = |db: &rusqlite::Connection| {
        let mut v: Vec<Vec<String>> = TABLES.iter().map(|t| table_rows(db, t)).collect();
        v.push(state(db));
        v
    };
    let before = snapshot(&db);
    let dry = sync(&s, &["--dry-run"]);
    assert_eq!(snapshot(&db), before, "dry run wrote something");
    let real = sync(&s, &[]);
    for (name, st) in real["streams"].as_object().unwrap() {
        for k in ["inserted", "updated", "unchanged", "failed"] {
            assert_eq!(dry["streams"][name][k], st[k], "{name}.{k}");
        }
    }
    assert!(real["streams"]["leads"]["inserted"].as_u64().unwrap() > 0);
}

#[test]
fn rollback_refetches_the_dated_streams_from_the_date_and_reports_the_others() {
    let (sim, s) = start(small(), "");
    sync(&s, &[]);
    sim.sim.mutate(MutateSpec::default());
    sync(&s, &[]);
    let day = (sim.sim.now() - chrono::Duration::days(5)).date_naive();
    sim.sim.clear_requests();
    let r = sync(&s, &[&format!("--rollback={day}")]);
    let at = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let (mut emails, mut daily) = (0, 0);
    for req in sim.sim.requests() {
        let q = req.query.clone().unwrap_or_default();
        if req.path.ends_with("/emails") && !q.contains("starting_after") {
            emails += 1;
            let min: DateTime<Utc> = param(&q, "min_timestamp_created").unwrap().parse().unwrap();
            assert_eq!(min, at - chrono::Duration::hours(1), "emails from the date minus the overlap");
        }
        if req.path.ends_with("/analytics/daily") {
            daily += 1;
            assert_eq!(param(&q, "start_date").unwrap(), (day - chrono::Duration::days(7)).to_string(), "{q}");
        }
    }
    assert!(emails == 1 && daily > 1, "{emails} {daily}");
    let notices: Vec<String> =
        r["notices"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
    let db = s.db("data/i.db");
    let batch = r["batch_id"].as_str().unwrap();
    for (kind, stream) in [
        ("full-refresh", "accounts"),
        ("full-refresh", "campaigns"),
        ("full-refresh", "leads"),
        ("snapshot", "overview"),
        ("snapshot", "steps"),
    ] {
        let line = format!("--rollback ignored for {kind} stream {stream}");
        assert_eq!(notices.iter().filter(|n| n.contains(&line)).count(), 1, "{line}: {notices:?}");
        let logged = count(
            &db,
            &format!("SELECT count(*) FROM sync_logs WHERE batch_id = '{batch}' AND message LIKE '%{line}%'"),
        );
        assert_eq!(logged, 1, "{line}");
    }
    assert_eq!(notices.len(), 5, "{notices:?}");

    // The cursors end where a fresh sync leaves them.
    let fresh = Scratch::new();
    fresh.write("p.toml", &pipeline(&sim.base, "data/i.db", ""));
    sync(&fresh, &[]);
    let cursors = |db: &rusqlite::Connection| {
        state(db).into_iter().map(|r| r.split('|').take(4).collect::<Vec<_>>().join("|")).collect::<Vec<_>>()
    };
    let rolled = cursors(&db);
    assert!(rolled.iter().any(|c| c.contains("'emails'")) && rolled.iter().any(|c| c.contains("'daily_analytics'")));
    assert_eq!(rolled, cursors(&fresh.db("data/i.db")));
}
