//! Rate limits, retries and fault tolerance against the simulator's fault injection.

use std::time::{Duration, Instant};

use ferry_instantly::sim::{Fault, FaultKind, SimConfig};

use crate::common::*;
use crate::simulator::*;

/// Fast retries for tests: 20 ms doubling to 400 ms, 6 attempts.
const FAST_RETRY: &str = "retry = { base_backoff_ms = 20, max_backoff_ms = 400, max_attempts = 6 }";

fn setup(cfg: SimConfig) -> (Sim, Scratch) {
    start(cfg, FAST_RETRY)
}

fn stderr_of(s: &Scratch, args: &[&str], code: i32) -> String {
    let o = s.cmd(args).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, code);
    text(&o).1
}

#[test]
fn bursts_of_429_are_waited_out_honouring_retry_after() {
    let (sim, s) = setup(small());
    sim.sim.inject(Fault::too_many_requests(Some(1)).on("/leads/list").times(3));
    sim.sim.inject(Fault::too_many_requests(None).on("/accounts").times(2));
    let r = sync(&s, &[]);
    assert_eq!(r["status"], "ok");
    for st in r["streams"].as_object().unwrap().values() {
        assert_eq!(st["failed"], 0);
    }
    assert_eq!(r["http"]["rate_limited"], 5);
    let log = sim.sim.requests();
    for (i, r429) in log.iter().enumerate().filter(|(_, r)| r.status == 429) {
        let Some(wait) = r429.retry_after else { continue };
        let retry = log[i + 1..]
            .iter()
            .find(|x| x.path == r429.path && x.query == r429.query && x.body == r429.body)
            .expect("the request was retried");
        let gap = retry.received_at.duration_since(r429.received_at);
        assert!(gap >= Duration::from_secs(wait), "retried after {gap:?}, Retry-After was {wait}s");
    }
}

#[test]
fn configured_to_the_servers_budget_no_429_is_received() {
    let sim = Sim::start(SimConfig { rate_limit_per_sec: Some(20), campaigns: 10, ..small() });
    let s = Scratch::new();
    let text = pipeline(&sim.base, "data/i.db", "").replace("per_second = 1000", "per_second = 20");
    s.write("p.toml", &text);
    let r = sync(&s, &[]);
    assert_eq!(r["status"], "ok");
    let stats = sim.sim.stats();
    assert!(stats.total_requests > 50, "enough requests to hit the budget: {}", stats.total_requests);
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
}

#[test]
fn a_short_5xx_storm_is_retried_through() {
    let (sim, s) = setup(small());
    sim.sim.inject(Fault::status(503).on("/accounts").times(3));
    sim.sim.inject(Fault::status(502).on("/campaigns/analytics/daily").times(2));
    let r = sync(&s, &[]);
    assert_eq!(r["status"], "ok");
    assert!(r["http"]["retries"].as_u64().unwrap() >= 5);
}

#[test]
fn a_long_storm_fails_that_stream_cleanly_and_the_others_finish() {
    let (sim, s) = setup(small());
    sim.sim.inject(Fault::status(500).on("/emails").times(1000));
    let r = sync_code(&s, &[], 3);
    assert_eq!(r["status"], "partial");
    assert_eq!(r["streams"]["emails"]["status"], "failed");
    let err = r["streams"]["emails"]["error"].as_str().unwrap();
    assert!(err.contains("GET /emails") && err.contains("500") && err.contains("gave up"), "{err}");
    for name in ["campaigns", "leads", "accounts", "steps", "daily_analytics", "overview"] {
        assert_eq!(r["streams"][name]["status"], "ok", "{name}");
    }
    let db = s.db("data/i.db");
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_emails_raw"), 0, "nothing of the failed page");
    assert_eq!(count(&db, "SELECT count(*) FROM sync_state WHERE stream = 'emails'"), 0);
    let logged = count(
        &db,
        "SELECT count(*) FROM sync_logs WHERE level = 'ERROR' AND meta LIKE '%emails%' AND meta LIKE '%500%'",
    );
    assert!(logged >= 1, "the error with its status lands in sync_logs");
    let errors = std::fs::read_dir(s.path("logs/errors"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(errors.contains("[emails]") && errors.contains("status=500"), "{errors}");
}

#[test]
fn truncated_and_malformed_bodies_are_retried() {
    let (sim, s) = setup(small());
    sim.sim.inject(Fault::new(FaultKind::Truncated).on("/accounts").times(1));
    sim.sim.inject(Fault::new(FaultKind::MalformedJson).on("/leads/list").times(2));
    let r = sync(&s, &[]);
    assert_eq!(r["status"], "ok");
    let db = s.db("data/i.db");
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_accounts_raw"), 7);
}

#[test]
fn html_403_401_and_402_fail_at_once_with_a_message_to_act_on() {
    let (sim, s) = setup(small());
    sim.sim.inject(Fault::new(FaultKind::Html403).on("/emails").times(100));
    let r = sync_code(&s, &[], 3);
    let err = r["streams"]["emails"]["error"].as_str().unwrap();
    assert!(err.contains("non-JSON") && err.contains("user_agent"), "{err}");
    assert_eq!(sim.sim.stats().by_path.get("/api/v2/emails").copied(), Some(1), "no retry of a 403");

    for (code, needle) in [(401u16, "invalid or revoked"), (402u16, "no active paid plan")] {
        let (sim, s) = setup(small());
        sim.sim.inject(Fault::status(code).on("/accounts").times(100));
        let r = sync_code(&s, &["--streams", "accounts"], 1);
        let err = r["streams"]["accounts"]["error"].as_str().unwrap();
        assert!(err.contains(&code.to_string()) && err.contains(needle), "{err}");
        assert_eq!(sim.sim.stats().by_path.get("/api/v2/accounts").copied(), Some(1), "{code} retried");
    }
}

#[test]
fn a_cursor_loop_or_repeated_page_ends_with_an_error_not_a_hang() {
    for kind in [FaultKind::CursorLoop, FaultKind::RepeatPage] {
        let (sim, s) = setup(SimConfig { accounts: 250, ..small() });
        sim.sim.inject(Fault::new(kind.clone()).on("/accounts").times(10_000));
        let started = Instant::now();
        let r = sync_code(&s, &["--streams", "accounts"], 1);
        assert!(started.elapsed() < Duration::from_secs(20));
        let err = r["streams"]["accounts"]["error"].as_str().unwrap();
        assert!(err.contains("GET /accounts") && (err.contains("again") || err.contains("repeats")), "{kind:?}: {err}");
    }
}

#[test]
fn two_concurrent_syncs_one_runs_the_other_exits_75() {
    let (sim, s) = setup(SimConfig { latency_ms: 40, ..small() });
    let mut first = s.cmd(&["sync", "p.toml", "--quiet"]).env("SIM_INSTANTLY_KEY", KEY).spawn().unwrap();
    let db = s.db("data/i.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    let holder: String = loop {
        if let Ok(b) = db.query_row("SELECT batch_id FROM sync_runs WHERE status = 'running'", [], |r| r.get(0)) {
            break b;
        }
        assert!(Instant::now() < deadline, "first run never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = stderr_of(&s, &["sync", "p.toml", "--quiet"], 75);
    assert!(err.contains(&holder) && err.contains("in progress"), "{err}");
    // --wait queues behind the holder instead.
    let waited = s.cmd(&["sync", "p.toml", "--quiet", "--wait"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    assert!(first.wait().unwrap().success());
    expect_code(&waited, 0);
    drop(sim);
}

#[test]
fn a_stale_lock_is_taken_over_with_a_warning() {
    let (_sim, s) = setup(small());
    expect_code(&s.run(&["init", "p.toml"]), 0);
    let db = s.db("data/i.db");
    db.execute(
        "INSERT INTO sync_runs (batch_id, pipeline, mode, arguments, started_at, status, stats, heartbeat_at, host, pid)
         VALUES ('stale-run', 'inst', 'incremental', '{}', '2025-01-01T00:00:00.000Z', 'running', '{}', '2025-01-01T00:00:10.000Z', 'another-host', 1)",
        [],
    )
    .unwrap();
    let o = s.cmd(&["sync", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    assert!(text(&o).1.contains("took over a stale run lock"));
    let status: String =
        db.query_row("SELECT status FROM sync_runs WHERE batch_id = 'stale-run'", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "abandoned");
}

#[test]
fn sigint_stops_cleanly_and_the_next_run_converges() {
    let (sim, s) = setup(SimConfig { latency_ms: 30, leads_per_campaign: 600, ..small() });
    let mut child = s.cmd(&["sync", "p.toml", "--quiet"]).env("SIM_INSTANTLY_KEY", KEY).spawn().unwrap();
    let db = s.db("data/i.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.query_row("SELECT count(*) FROM instantly_leads_raw", [], |r| r.get::<_, i64>(0)).unwrap_or(0) < 300 {
        assert!(Instant::now() < deadline, "sync made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let recorded: String =
        db.query_row("SELECT status FROM sync_runs ORDER BY started_at DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(recorded, "interrupted");
    sync(&s, &[]);
    let fresh = Scratch::new();
    fresh.write("p.toml", &pipeline(&sim.base, "data/f.db", FAST_RETRY));
    sync(&fresh, &[]);
    let fdb = fresh.db("data/f.db");
    for t in TABLES {
        assert_eq!(table_rows(&db, t), table_rows(&fdb, t), "{t}");
    }
}
