//! ferry against the hostile server (`hostile_server.rs`): one test per way a server,
//! proxy or network misbehaves. Each asserts the exit code, the message, that the records
//! the server did send correctly are stored, and peak memory where it applies.

use std::process::Output;

use chrono::Datelike as _;
use std::time::{Duration, Instant};

use ferry_instantly::sim::SimConfig;
use serde_json::json;

use crate::common::*;
use crate::hostile_server::{Hostile, Mode};
use crate::simulator::*;

/// Quick retries: 20 ms doubling to 200 ms, 3 attempts.
const FAST: &str = "retry = { base_backoff_ms = 20, max_backoff_ms = 200, max_attempts = 3 }";
/// [`FAST`] with a 2-second request timeout.
const FAST_TIMEOUT: &str =
    "retry = { base_backoff_ms = 20, max_backoff_ms = 200, max_attempts = 2, request_timeout_secs = 2 }";

fn setup(target: &str, mode: Mode, extra: &str) -> (Hostile, Scratch) {
    let h = Hostile::start(small(), target, mode);
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&h.base, "data/i.db", extra));
    (h, s)
}

fn run(s: &Scratch, streams: &str) -> Output {
    s.cmd(&["sync", "p.toml", "--streams", streams]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap()
}

fn rows(s: &Scratch, table: &str) -> i64 {
    count(&s.db("data/i.db"), &format!("SELECT count(*) FROM {table}"))
}

/// A mode on `/accounts` that no retry can get through: the accounts stream fails naming
/// its endpoint and `expect`, campaigns (read alongside) are all stored, memory stays under
/// 200 MB, and the run is partial.
fn accounts_fail_alone(mode: Mode, extra: &str, expect: &[&str]) {
    let (h, s) = setup("/accounts", mode, extra);
    let mut cmd = s.cmd(&["sync", "p.toml", "--streams", "accounts,campaigns"]);
    cmd.env("SIM_INSTANTLY_KEY", KEY);
    let (o, peak_kb) = run_measuring_peak(cmd);
    let err = text(&o).1;
    eprintln!("peak RSS {peak_kb} kB");
    expect_code(&o, 3);
    assert!(err.contains("GET /accounts") && expect.iter().any(|e| err.contains(e)), "expected {expect:?}:\n{err}");
    assert_eq!(rows(&s, "instantly_campaigns_raw"), h.sim.sim.dataset().campaigns.len() as i64);
    assert_eq!(rows(&s, "instantly_accounts_raw"), 0);
    assert!(peak_kb < 200 * 1024, "peak RSS {peak_kb} kB");
}

#[test]
fn retry_after_values_never_panic_and_only_an_overlong_wait_fails_the_stream() {
    let past = "Wed, 21 Oct 2015 07:28:00 GMT";
    for value in ["99999999999999999999", "-5", "0.25", past, "soon", "1e400", "NaN"] {
        let (h, s) = setup("/accounts", Mode::RetryAfter(value), FAST);
        let o = run(&s, "accounts");
        expect_code(&o, 0);
        assert_eq!(rows(&s, "instantly_accounts_raw"), h.sim.sim.dataset().accounts.len() as i64, "{value}");
    }
    let (_h, s) = setup("/accounts", Mode::RetryAfter("Fri, 01 Jan 2100 00:00:00 GMT"), FAST);
    let o = run(&s, "accounts");
    expect_code(&o, 1);
    let err = text(&o).1;
    assert!(err.contains("GET /accounts") && err.contains("max_retry_after_secs = 300"), "{err}");
}

#[test]
fn a_huge_body_fails_its_stream_with_bounded_memory() {
    accounts_fail_alone(Mode::HugeBody { mb: 1500 }, FAST, &["max_response_bytes"]);
}

#[test]
fn a_gzip_bomb_fails_its_stream_with_bounded_memory() {
    accounts_fail_alone(Mode::GzipBomb, FAST, &["max_response_bytes"]);
}

#[test]
fn a_body_at_one_byte_a_second_times_out() {
    accounts_fail_alone(Mode::SlowBody, FAST_TIMEOUT, &["timed out"]);
}

#[test]
fn headers_that_never_come_time_out() {
    accounts_fail_alone(Mode::SlowHeaders, FAST_TIMEOUT, &["timed out"]);
}

#[test]
fn truncated_json_is_retried_then_fails_its_stream() {
    accounts_fail_alone(Mode::Truncated, FAST, &["malformed JSON"]);
}

#[test]
fn json_nested_100000_deep_fails_its_stream_without_overflowing_the_stack() {
    // The same answer would come again: it fails at once, not after the retries.
    accounts_fail_alone(
        Mode::Deep,
        FAST,
        &["nests JSON deeper than ferry parses (recursion limit exceeded at line 1 column 128); this is not retried"],
    );
}

#[test]
fn a_content_length_that_lies_fails_its_stream() {
    // The body ends before the length it announced: whether the headers were already
    // read or not, the client sees the connection end early.
    accounts_fail_alone(Mode::LyingLength, FAST, &["cut off", "closed before message completed"]);
}

/// A mode that puts text which is not valid Unicode into the first account: the run is
/// `ok`, says what it replaced, keeps every account, and stores the field as `expected`.
fn repaired_and_kept(mode: Mode, expected: &str) {
    let (h, s) = setup("/accounts", mode, FAST);
    let mut cmd = s.cmd(&["sync", "p.toml", "--streams", "accounts"]);
    cmd.env("SIM_INSTANTLY_KEY", KEY);
    let (o, peak_kb) = run_measuring_peak(cmd);
    eprintln!("peak RSS {peak_kb} kB");
    assert!(peak_kb < 200 * 1024, "peak RSS {peak_kb} kB");
    expect_code(&o, 0);
    assert!(text(&o).1.contains("not valid Unicode"), "{}", text(&o).1);
    assert_eq!(rows(&s, "instantly_accounts_raw"), h.sim.sim.dataset().accounts.len() as i64);
    let v: String = s
        .db("data/i.db")
        .query_row(
            "SELECT json_extract(raw_json, '$.hostile') FROM instantly_accounts_raw WHERE raw_json LIKE '%hostile%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, expected);
}

#[test]
fn bytes_that_are_not_utf8_are_replaced_and_the_records_kept() {
    repaired_and_kept(Mode::InvalidUtf8, "caf\u{fffd} \u{fffd}\u{fffd}");
}

#[test]
fn a_lone_surrogate_is_replaced_and_its_page_kept() {
    repaired_and_kept(Mode::LoneSurrogate, "half \u{fffd} a pair \u{1f600} end");
}

#[test]
fn a_nul_character_refuses_its_record_alone() {
    let (h, s) = setup("/accounts", Mode::Nul, FAST);
    let o =
        s.cmd(&["sync", "p.toml", "--streams", "accounts", "--json"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    let (out, err) = text(&o);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["streams"]["accounts"]["failed"], 1, "{report}");
    assert!(err.contains("NUL character"), "{err}");
    assert_eq!(rows(&s, "instantly_accounts_raw"), h.sim.sim.dataset().accounts.len() as i64 - 1);
}

#[test]
fn a_10_mb_field_is_stored_whole_with_bounded_memory() {
    let (h, s) = setup("/accounts", Mode::HugeField, FAST);
    let mut cmd = s.cmd(&["sync", "p.toml", "--streams", "accounts"]);
    cmd.env("SIM_INSTANTLY_KEY", KEY);
    let (o, peak_kb) = run_measuring_peak(cmd);
    eprintln!("peak RSS {peak_kb} kB");
    expect_code(&o, 0);
    assert_eq!(rows(&s, "instantly_accounts_raw"), h.sim.sim.dataset().accounts.len() as i64);
    let len = count(
        &s.db("data/i.db"),
        "SELECT max(length(json_extract(raw_json, '$.hostile'))) FROM instantly_accounts_raw",
    );
    assert_eq!(len, 10 * 1024 * 1024);
    assert!(peak_kb < 200 * 1024, "peak RSS {peak_kb} kB");
}

#[test]
fn a_timestamp_in_the_future_never_moves_the_cursor_past_the_run() {
    let (h, s) = setup("/emails", Mode::FutureTimestamp, FAST);
    let before = chrono::Utc::now();
    let o = run(&s, "emails");
    expect_code(&o, 0);
    assert_eq!(rows(&s, "instantly_emails_raw"), h.sim.sim.dataset().emails.len() as i64);
    let cursor: String = s
        .db("data/i.db")
        .query_row(
            "SELECT json_extract(cursor, '$.timestamp_created') FROM sync_state WHERE stream = 'emails'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let cursor = ferry_core::typed::parse_timestamp(&cursor).unwrap();
    assert!(cursor <= chrono::Utc::now() && cursor.year() < 2099, "cursor {cursor} ran ahead (run began {before})");
}

#[test]
fn an_id_that_changes_type_keeps_one_row() {
    // The first email of each page is sent with id 4242: a number, then a string.
    let (h, s) = setup("/emails", Mode::Id(json!(4242)), FAST);
    let first = sync(&s, &["--streams", "emails"]);
    h.set_mode(Mode::Id(json!("4242")));
    let second = sync(&s, &["--streams", "emails", "--all"]);
    let pages = first["streams"]["emails"]["pages"].as_i64().unwrap();
    assert_eq!(second["streams"]["emails"]["pages"].as_i64(), Some(pages));
    let db = s.db("data/i.db");
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_emails_raw WHERE instantly_email_id = '4242'"), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM instantly_emails_raw WHERE instantly_email_id <> '4242'"),
        h.sim.sim.dataset().emails.len() as i64 - pages
    );
}

#[test]
fn items_that_are_not_objects_are_skipped_with_a_warning() {
    let (h, s) = setup("/accounts", Mode::NotAnObject, FAST);
    let o = run(&s, "accounts");
    expect_code(&o, 0);
    assert!(text(&o).1.contains("not an object"), "{}", text(&o).1);
    assert_eq!(rows(&s, "instantly_accounts_raw"), h.sim.sim.dataset().accounts.len() as i64);
}

#[test]
fn a_redirect_to_another_origin_is_refused_naming_both_urls() {
    let (h, s) = setup("/accounts", Mode::RedirectOtherOrigin, FAST);
    let o = run(&s, "accounts");
    expect_code(&o, 1);
    let err = text(&o).1;
    let here = h.base.trim_end_matches("/api/v2");
    assert!(err.contains(here) && err.contains(&h.sim.base), "{err}");
    assert!(err.contains("another origin"), "{err}");
    assert!(h.sim.sim.requests().iter().all(|r| !r.path.contains("/accounts")), "the other origin was asked");
}

#[test]
fn a_redirect_within_the_origin_is_followed_with_the_credentials() {
    let (h, s) = setup("/accounts", Mode::RedirectSameOrigin, FAST);
    let o = run(&s, "accounts");
    expect_code(&o, 0);
    assert_eq!(rows(&s, "instantly_accounts_raw"), h.sim.sim.dataset().accounts.len() as i64);
}

#[test]
fn a_key_echoed_back_in_any_case_or_encoding_is_redacted_everywhere() {
    let key = "Sim/Key+3f9d=2a7c 41e8~x";
    let (_h, s) = setup("/accounts", Mode::EchoKey, FAST);
    let o = s.cmd(&["sync", "p.toml", "--streams", "accounts"]).env("SIM_INSTANTLY_KEY", key).output().unwrap();
    expect_code(&o, 1);
    let (out, err) = text(&o);
    assert!(err.contains("invalid key ***"), "the echo reached the message: {err}");
    let forms = [
        key.to_owned(),
        key.to_uppercase(),
        key.to_lowercase(),
        form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>(),
        "Sim%2fKey%2b3f9d%3d2a7c%2041e8~x".to_owned(),
    ];
    let mut everything = vec![("stdout".to_owned(), out.into_bytes()), ("stderr".to_owned(), err.into_bytes())];
    everything.extend(all_files(s.dir.path()).into_iter().filter(|(name, _)| !name.ends_with("p.toml")));
    for (name, bytes) in &everything {
        for form in &forms {
            assert!(!bytes.windows(form.len()).any(|w| w == form.as_bytes()), "{name} holds the key as {form:?}");
        }
    }
}

/// Every file under `dir` (recursively), with its bytes.
fn all_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap_or_default()));
        }
    }
    out
}

/// Starts `ferry sync` on `streams`, sends SIGINT after `after`, and returns the exit
/// status and how long the process took to exit after the signal.
fn interrupt_after(s: &Scratch, streams: &str, after: Duration) -> (std::process::ExitStatus, Duration) {
    let mut child = s
        .cmd(&["sync", "p.toml", "--streams", streams, "--quiet"])
        .env("SIM_INSTANTLY_KEY", KEY)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let signalled = Instant::now();
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    (status, signalled.elapsed())
}

fn last_run_status(s: &Scratch) -> String {
    s.db("data/i.db")
        .query_row("SELECT status FROM sync_runs ORDER BY started_at DESC LIMIT 1", [], |r| r.get(0))
        .unwrap()
}

/// SIGINT while one stream is stuck (default timeouts: a minute per request): the process
/// exits within 2 s, records the run interrupted and keeps what the other stream committed.
fn interrupted_within_two_seconds(target: &str, mode: Mode, streams: &str) {
    let (h, s) = setup(target, mode, "");
    let (status, took) = interrupt_after(&s, streams, Duration::from_millis(1500));
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_secs(2), "exited {took:?} after SIGINT");
    assert_eq!(last_run_status(&s), "interrupted");
    if streams.contains("campaigns") && target != "/campaigns" {
        assert_eq!(rows(&s, "instantly_campaigns_raw"), h.sim.sim.dataset().campaigns.len() as i64);
    }
}

#[test]
fn sigint_during_a_slow_body_exits_within_two_seconds() {
    interrupted_within_two_seconds("/accounts", Mode::SlowBody, "accounts,campaigns");
}

#[test]
fn sigint_while_headers_never_come_exits_within_two_seconds() {
    interrupted_within_two_seconds("/accounts", Mode::SlowHeaders, "accounts,campaigns");
}

#[test]
fn sigint_during_a_long_retry_after_wait_exits_within_two_seconds() {
    interrupted_within_two_seconds("/accounts", Mode::RetryAfter("250"), "accounts,campaigns");
}

#[test]
fn sigint_while_partitions_are_listed_exits_within_two_seconds() {
    // Leads' partitions come from the campaigns listing, which never finishes here.
    interrupted_within_two_seconds("/campaigns", Mode::SlowBody, "leads");
}

#[test]
fn sigint_while_a_source_lists_partitions_from_its_api_exits_within_two_seconds() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("slow", "data/i.db", "records = 50\npartitions_delay_ms = 600000"));
    let mut child = s.cmd(&["sync", "p.toml", "--quiet"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_secs(2), "exited {took:?} after SIGINT");
    assert_eq!(last_run_status(&s), "interrupted");
    // The streams that list no partitions were read in full meanwhile.
    assert_eq!(rows(&s, "synthetic_users"), 50);
}

#[test]
fn the_run_time_limit_stops_a_slow_body() {
    let (h, s) = setup("/accounts", Mode::SlowBody, "");
    let toml = std::fs::read_to_string(s.path("p.toml")).unwrap();
    s.write("p.toml", &toml.replace("[pipeline]\n", "[pipeline]\ntimeout = \"2s\"\n"));
    let started = Instant::now();
    let o = run(&s, "accounts,campaigns");
    let took = started.elapsed();
    expect_code(&o, 1);
    assert!(took < Duration::from_secs(4), "a 2 s limit took {took:?}");
    assert_eq!(last_run_status(&s), "timeout");
    assert_eq!(rows(&s, "instantly_campaigns_raw"), h.sim.sim.dataset().campaigns.len() as i64);
}

/// The scenario of a server whose real limit (5 requests a second, 429 without
/// `Retry-After`) is half the configured budget, with 30% of answers 5xx.
fn below_budget_run() -> (serde_json::Value, u64, String) {
    let cfg = SimConfig { rate_limit_per_sec: Some(5), limit_retry_after: false, fail_rate: 0.3, ..small() };
    let sim = Sim::start(cfg);
    let s = Scratch::new();
    let toml = pipeline(&sim.base, "data/i.db", "retry = { max_attempts = 10 }")
        .replace("per_second = 1000", "per_second = 10");
    s.write("p.toml", &toml);
    let o = s.cmd(&["sync", "p.toml", "--json"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    let (out, err) = text(&o);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    (report, sim.sim.stats().rate_limited, err)
}

#[test]
fn a_server_limiting_below_the_budget_is_adapted_to() {
    let _t = timing_lock();
    let (report, limited, err) = below_budget_run();
    assert_eq!(report["status"], "ok", "{limited} answers were 429: {report}");
    assert!(limited <= 20, "{limited} answers were 429");
    assert!(err.contains("slows down"), "the limiter never said it slowed down:\n{err}");
}

/// The same, ten times: `cargo test --test cli -- --ignored ten_runs --nocapture`.
#[test]
#[ignore = "about ten runs of 20 s; run by its own command"]
fn a_server_limiting_below_the_budget_is_adapted_to_ten_runs() {
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (report, limited, _) = below_budget_run();
        eprintln!("status {} with {limited} answers 429", report["status"]);
        statuses.push((report["status"].as_str().unwrap_or_default().to_owned(), limited));
    }
    assert!(statuses.iter().all(|(s, l)| s == "ok" && *l <= 20), "{statuses:?}");
}

#[test]
fn a_full_disk_under_the_log_directory_is_reported_once_and_the_sync_goes_on() {
    let (h, s) = setup("/nothing", Mode::Pass, FAST);
    std::fs::create_dir_all(s.path("logs")).unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d");
    std::os::unix::fs::symlink("/dev/full", s.path(&format!("logs/{today}.jsonl"))).unwrap();
    let o = run(&s, "accounts");
    expect_code(&o, 0);
    let err = text(&o).1;
    assert_eq!(err.matches("cannot write the log files").count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(rows(&s, "instantly_accounts_raw"), h.sim.sim.dataset().accounts.len() as i64);
}
