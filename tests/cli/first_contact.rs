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

/// Every file under the scratch directory except the daily logs, with its bytes.
fn files(s: &Scratch) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with("logs") {
                continue;
            }
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(s.dir.path(), s.dir.path(), &mut out);
    out.sort();
    out
}

#[test]
fn a_dry_run_creates_no_database_and_changes_none() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("dry", "data/p.db", "records = 300"));
    let o = s.run(&["sync", "p.toml", "--dry-run", "--json"]);
    expect_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(summary["streams"]["users"]["inserted"], 300, "{summary}");
    assert!(!s.path("data").exists(), "a dry run created {:?}", files(&s));

    expect_code(&s.run(&["sync", "p.toml", "-q"]), 0);
    let before = files(&s);
    s.write("p.toml", &synthetic_pipeline("dry", "data/p.db", "records = 300\ngeneration = 1"));
    let o = s.run(&["sync", "p.toml", "--dry-run", "--json"]);
    expect_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert!(summary["streams"]["users"]["updated"].as_u64().unwrap() > 0, "{summary}");
    let mut after = files(&s);
    after.retain(|(n, _)| n != "p.toml");
    let mut before = before;
    before.retain(|(n, _)| n != "p.toml");
    assert!(before == after, "a dry run changed the database files");
}

#[test]
fn read_only_commands_create_nothing_and_name_the_missing_file() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("ro", "brand/new/dir/typo.db", "records = 10"));
    for args in [&["status", "p.toml"][..], &["state", "show", "p.toml"], &["migrate", "p.toml", "--dry-run"]] {
        let o = s.run(args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}\n{out}\n{err}");
        let absolute =
            s.path("brand/new/dir/typo.db").canonicalize().unwrap_or_else(|_| s.path("brand/new/dir/typo.db"));
        assert!(err.contains(&absolute.display().to_string()) || err.contains("brand/new/dir/typo.db"), "{err}");
        assert!(err.contains("current directory"), "{err}");
        assert!(!s.path("brand").exists(), "{args:?} created a directory");
    }
    // On a database ferry wrote, they change no byte and leave no -wal or -shm behind.
    s.write("p.toml", &synthetic_pipeline("ro", "data/p.db", "records = 10"));
    expect_code(&s.run(&["sync", "p.toml", "-q"]), 0);
    let before = files(&s);
    for args in [
        &["status", "p.toml"][..],
        &["state", "show", "p.toml"],
        &["migrate", "p.toml", "--dry-run"],
        &["status", "p.toml", "--errors"],
    ] {
        expect_code(&s.run(args), 0);
    }
    assert!(files(&s) == before, "a read-only command changed or created files");
}

#[test]
fn state_reset_takes_the_run_lock_and_says_what_it_clears() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("reset", "data/p.db", "records = 2000\npage_size = 50\ndelay_ms = 40"));
    expect_code(&s.run(&["sync", "p.toml", "-q", "--streams", "events"]), 0);
    let mut running = s.cmd(&["sync", "p.toml", "-q", "--all"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let o = s.run(&["state", "reset", "p.toml"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(75), "{out}\n{err}");
    running.wait().unwrap();
    let o = s.run(&["state", "reset", "p.toml", "--stream", "events"]);
    expect_code(&o, 0);
    let out = text(&o).0;
    assert!(out.contains("clearing events") && out.contains("\"seq\""), "{out}");
    assert!(out.contains("cleared 1 saved cursor"), "{out}");
    // With --wait it queues behind the running sync and then clears.
    let mut running = s.cmd(&["sync", "p.toml", "-q", "--all"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let o = s.run(&["state", "reset", "p.toml", "--wait"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("waiting for the running sync"), "{err}");
    assert!(running.try_wait().unwrap().is_some(), "the reset ran before the sync ended");
    running.wait().unwrap();
}

#[test]
fn an_empty_or_in_memory_sink_path_is_a_config_error() {
    let s = Scratch::new();
    for path in ["", ":memory:", "${DB_PATH}"] {
        s.write("p.toml", &synthetic_pipeline("mem", path, "records = 10"));
        let o = s.cmd(&["sync", "p.toml"]).env("DB_PATH", "").output().unwrap();
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "path {path:?}\n{out}\n{err}");
        assert!(err.contains("[sink] path") && err.contains("line 11"), "{err}");
    }
    s.write("p.toml", &synthetic_pipeline("mem", "data/p.db", "records = 10").replace("dir = \"logs\"", "dir = \"\""));
    let o = s.run(&["sync", "p.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("[logging] dir is empty"), "{}", text(&o).1);
}

#[test]
fn retention_values_are_checked_and_forever_keeps_everything() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("ret", "data/p.db", "records = 10\nfail_stream = \"users\"\nfail_after = 5"));
    expect_code(&s.run(&["sync", "p.toml", "-q"]), 3);
    for (flag, expect) in
        [("99999999999d", "too long"), ("200000000000d", "too long"), ("0d", "zero"), ("7", "no unit")]
    {
        let o = s.run(&["logs", "prune", "p.toml", "--older-than", flag]);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{flag}: {out}{err}");
        assert!(err.contains(expect), "{flag}: {err}");
    }
    let db = s.db("data/p.db");
    assert!(count(&db, "SELECT count(*) FROM sync_logs") > 0);
    for value in ["100000000", "0", "\"never\""] {
        let text_ = synthetic_pipeline("ret", "data/p.db", "records = 10")
            .replace("level = \"info\"", &format!("level = \"info\"\nsync_logs_retention_days = {value}"));
        s.write("p.toml", &text_);
        let o = s.run(&["sync", "p.toml", "-q"]);
        assert_eq!(o.status.code(), Some(2), "{value}: {}", text(&o).1);
        assert!(text(&o).1.contains("forever"), "{}", text(&o).1);
    }
    let kept = count(&db, "SELECT count(*) FROM sync_logs");
    let text_ = synthetic_pipeline("ret", "data/p.db", "records = 10")
        .replace("level = \"info\"", "level = \"info\"\nsync_logs_retention_days = \"forever\"");
    s.write("p.toml", &text_);
    expect_code(&s.run(&["sync", "p.toml", "-q"]), 0);
    assert!(count(&db, "SELECT count(*) FROM sync_logs") >= kept);
}

#[test]
fn one_duration_grammar_everywhere() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("dur", "data/p.db", "records = 10"));
    let o = s.run(&["sync", "p.toml", "--last=7"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("has no unit"), "{}", text(&o).1);
    // `--older-than` takes months like `--last` does.
    expect_code(&s.run(&["logs", "prune", "p.toml", "--older-than", "1m"]), 0);
    expect_code(&s.run(&["sync", "p.toml", "-q", "--streams", "users", "--last=90min"]), 0);
    let help = text(&s.run(&["sync", "--help"])).0;
    assert!(help.contains("(m =") && help.contains("calendar months"), "{help}");
}

#[test]
fn values_that_make_no_sense_are_refused_with_their_line() {
    let s = Scratch::new();
    let cases: &[(&str, &str, &str)] = &[
        ("concurrency = 4", "concurrency = 4\nstreams = []", "streams = []"),
        ("concurrency = 4", "concurrency = 4\nstreams = [\"users\", \"users\"]", "named twice"),
        ("concurrency = 4", "concurrency = 4\ntimeout = \"0s\"", "zero"),
        ("level = \"info\"", "level = \"verbose\"", "level = \"verbose\""),
    ];
    for (from, to, expect) in cases {
        s.write("p.toml", &synthetic_pipeline("bad", "data/p.db", "records = 10").replace(from, to));
        for args in [
            &["sync", "p.toml"][..],
            &["sync", "p.toml", "-q"],
            &["sync", "p.toml", "--json"],
            &["check", "p.toml"],
            &["status", "p.toml"],
        ] {
            let o = s.run(args);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(2), "{to} with {args:?}\n{out}\n{err}");
            assert!(err.contains(expect) && err.contains("line "), "{to}: {err}");
        }
    }
    s.write("p.toml", &synthetic_pipeline("bad", "data/p.db", "records = 10"));
    let o = s.run(&["sync", "p.toml", "--streams", "users,users"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert!(text(&o).1.contains("named twice"), "{}", text(&o).1);
}

#[test]
fn a_reader_that_closes_early_never_stops_a_sync_or_panics() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("pipe", "data/p.db", "records = 3000\npage_size = 100"));
    let ferry = FERRY;
    for (cmd, want) in [
        (format!("'{ferry}' sync p.toml 2>&1 | head -1"), 0),
        (format!("'{ferry}' status p.toml --json | head -1"), 0),
        (format!("'{ferry}' completions bash | head -1"), 0),
        (format!("'{ferry}' connectors | head -1"), 0),
    ] {
        let o = std::process::Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {cmd} >/dev/null; echo \"${{PIPESTATUS[0]}}\" >&2")])
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        assert_eq!(err.trim().lines().last(), Some(want.to_string().as_str()), "{cmd}: {err}");
    }
    let db = s.db("data/p.db");
    let status: String =
        db.query_row("SELECT status FROM sync_runs ORDER BY started_at LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "ok");
}

/// Runs `command` in a detached tmux session of `cols`x`rows` and returns the screen
/// (with scrollback) once it has finished.
fn on_a_terminal(s: &Scratch, command: &str) -> String {
    let session = format!("ferry-test-{}-{}", std::process::id(), rand::random::<u32>());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux").args(args).output().expect("tmux is installed (.ci/run installs it)")
    };
    let script = format!("cd '{}' && {command}; echo FERRY-DONE; sleep 30", s.dir.path().display());
    tmux(&["new-session", "-d", "-s", &session, "-x", "160", "-y", "50", &script]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut screen = String::new();
    while std::time::Instant::now() < deadline {
        screen =
            String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-S", "-200", "-t", &session]).stdout).into_owned();
        if screen.contains("FERRY-DONE") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    tmux(&["kill-session", "-t", &session]);
    screen
}

#[test]
fn on_a_terminal_every_warning_stays_on_screen_and_one_block_remains() {
    let s = Scratch::new();
    s.write(
        "p.toml",
        &synthetic_pipeline("tty", "data/p.db", "records = 240\nbad_record_every = 40\npage_size = 20\ndelay_ms = 30"),
    );
    let screen = on_a_terminal(&s, &format!("'{FERRY}' sync p.toml"));
    assert!(screen.contains("FERRY-DONE"), "{screen}");
    assert_eq!(screen.matches("record refused").count(), 6, "{screen}");
    // The finished bars are cleared: each stream's final line appears once, in the summary.
    assert_eq!(screen.matches("users ").count(), 1, "{screen}");
}

#[test]
fn a_secret_with_a_line_ending_or_a_broken_env_file_is_a_config_error() {
    let (_sim, s) = start(small(), "");
    let o = s.cmd(&["sync", "p.toml"]).env("SIM_INSTANTLY_KEY", format!("{KEY}\r")).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("SIM_INSTANTLY_KEY") && err.contains("control character"), "{err}");
    assert!(!err.contains(KEY), "{err}");

    s.write(".env", &format!("# settings\nOTHER=1\nSIM_INSTANTLY_KEY {KEY}\n"));
    let o = s.cmd(&["sync", "p.toml"]).env_remove("SIM_INSTANTLY_KEY").output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains(".env") && err.contains("line 3"), "{err}");
    assert!(!err.contains(KEY), "{err}");
}

#[test]
fn a_name_resolves_to_the_local_toml_and_the_first_line_says_which_file_and_database() {
    let s = Scratch::new();
    s.write("synthetic.toml", &synthetic_pipeline("local", "data/local.db", "records = 10"));
    let o = s.run(&["sync", "synthetic"]);
    expect_code(&o, 0);
    let err = text(&o).1;
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains("synthetic.toml") && first.contains("local.db"), "{err}");
    assert!(s.path("data/local.db").exists());
    // Without the file, the name is the connector's built-in default, and the line says so.
    std::fs::remove_file(s.path("synthetic.toml")).unwrap();
    let o = s.run(&["sync", "synthetic"]);
    expect_code(&o, 0);
    let err = text(&o).1;
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains("default pipeline") && first.contains("data/synthetic.db"), "{err}");
}

#[test]
fn pipelines_sharing_a_database_never_see_or_prune_each_others_logs() {
    let s = Scratch::new();
    s.write(
        "a.toml",
        &synthetic_pipeline("alpha", "data/shared.db", "records = 20\nfail_stream = \"users\"\nfail_after = 5"),
    );
    s.write("b.toml", &synthetic_pipeline("beta", "data/shared.db", "records = 20"));
    expect_code(&s.run(&["sync", "a.toml", "-q"]), 3);
    expect_code(&s.run(&["sync", "b.toml", "-q"]), 0);
    let db = s.db("data/shared.db");
    // A database from before the column: the migration fills it from the runs.
    db.execute_batch(
        "DROP INDEX idx_sync_logs_pipeline; ALTER TABLE sync_logs DROP COLUMN pipeline; \
         DELETE FROM ferry_migrations WHERE version = '0002_sync_logs_pipeline';",
    )
    .unwrap();
    expect_code(&s.run(&["init", "b.toml"]), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs WHERE pipeline IS NULL"), 0);
    assert!(count(&db, "SELECT count(*) FROM sync_logs WHERE pipeline = 'alpha'") > 0);

    let errors_of = |p: &str| text(&s.run(&["status", p, "--errors", "--json"])).0;
    assert!(errors_of("a.toml").contains("synthetic failure point"));
    assert!(!errors_of("b.toml").contains("synthetic failure point"), "{}", errors_of("b.toml"));

    let beta_before = count(&db, "SELECT count(*) FROM sync_logs WHERE pipeline = 'beta'");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    expect_code(&s.run(&["logs", "prune", "a.toml", "--older-than", "1s"]), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs WHERE pipeline = 'alpha'"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs WHERE pipeline = 'beta'"), beta_before);
}

#[test]
fn a_torn_last_line_is_cut_before_the_next_append_and_logs_start_on_a_fresh_line() {
    let s = Scratch::new();
    let p = synthetic_pipeline("torn", "unused", "records = 50\npage_size = 10")
        .replace("type = \"sqlite\"\npath = \"unused\"", "type = \"jsonl\"\ndir = \"out\"");
    s.write("p.toml", &p);
    expect_code(&s.run(&["sync", "p.toml", "-q", "--streams", "users"]), 0);
    let users = std::fs::read_dir(s.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("users"))
        .unwrap();
    // A full disk stopped a write mid-record: the next run must not glue a record onto it.
    let mut f = std::fs::OpenOptions::new().append(true).open(&users).unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\":777,\"na").unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let log = s.path(&format!("logs/{today}.jsonl"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"{\"torn-marker").unwrap();
    expect_code(&s.run(&["sync", "p.toml", "-q", "--streams", "users", "--all"]), 0);
    let text_ = std::fs::read_to_string(&users).unwrap();
    for line in text_.lines() {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "unparsable line: {line}");
    }
    assert_eq!(text_.lines().count(), 100, "both runs' records, nothing glued");
    let log_text = std::fs::read_to_string(&log).unwrap();
    let after_tear = log_text.split("torn-marker").nth(1).unwrap();
    assert!(after_tear.starts_with('\n'), "the next event starts on a fresh line");
    for line in after_tear.lines().filter(|l| !l.is_empty()) {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "unparsable log line: {line}");
    }
}

#[test]
fn an_unreachable_host_fails_fast_with_one_message_naming_base_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}/api/v2");
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&base, "data/i.db", ""));
    let started = std::time::Instant::now();
    let o = s.cmd(&["sync", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(err.contains(&base) && err.contains("connection refused") && err.contains("running"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    // Each independent stream says it once (read failed, stream failed); no retries.
    assert!(err.matches("cannot reach").count() <= 8, "{err}");
    let started = std::time::Instant::now();
    let o = s.cmd(&["check", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "check took {:?}", started.elapsed());
}

#[test]
fn rejected_credentials_stop_every_stream_after_one_answer() {
    let (sim, s) = start(small(), "");
    let o = s.cmd(&["sync", "p.toml", "--json"]).env("SIM_INSTANTLY_KEY", "wrong-key-1234").output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let rejected = sim.sim.requests().len();
    // The requests in flight at once (campaigns' list and analytics, accounts, emails) may
    // each get their 401; nothing is asked after that, and no dependent stream asks at all.
    assert!(rejected <= 4, "{rejected} requests after the key was rejected");
    assert!(err.contains("401"), "{err}");
}

#[test]
fn a_zero_rate_an_empty_field_list_and_a_future_start_date_are_refused() {
    let s = Scratch::new();
    let base = "http://127.0.0.1:9/api/v2";
    for (extra, expect) in [
        ("[source.rate_limits.workspace]\nper_second = 0", "per_second = 0"),
        ("start_date = \"2099-01-01\"", "in the future"),
    ] {
        let p = pipeline(base, "data/i.db", "").replace("[source.rate_limits.workspace]\nper_second = 1000\n", "");
        let p = if extra.starts_with('[') {
            p.replace("[sink]", &format!("{extra}\n\n[sink]"))
        } else {
            p.replace("api_key = \"${SIM_INSTANTLY_KEY}\"", &format!("api_key = \"${{SIM_INSTANTLY_KEY}}\"\n{extra}"))
        };
        s.write("p.toml", &p);
        let o = s.cmd(&["sync", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{extra}\n{out}\n{err}");
        assert!(err.contains(expect), "{extra}: {err}");
    }
    let p = synthetic_pipeline("f", "data/p.db", "records = 10")
        .replace("[sink]", "[[transforms]]\ntype = \"drop_fields\"\nfields = []\n\n[sink]");
    s.write("p.toml", &p);
    let o = s.run(&["sync", "p.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert!(text(&o).1.contains("fields = []") && text(&o).1.contains("line "), "{}", text(&o).1);
}

#[test]
fn messages_name_the_file_the_line_and_what_to_do() {
    let s = Scratch::new();
    let good = synthetic_pipeline("msg", "data/p.db", "records = 10");
    s.write("unknown.toml", &good.replace("connector = \"synthetic\"", "connector = \"synthetc\""));
    s.write("types.toml", &good.replace("concurrency = 4", "concurrency = \"four\""));
    s.write("transform.toml", &good.replace("[sink]", "[[transforms]]\ntype = \"filter\"\nfield = \"id\"\n\n[sink]"));
    s.write("notadb.db", "just text, not a database\n");
    s.write("notadb.toml", &good.replace("data/p.db", "notadb.db"));
    s.write("p.toml", &good);
    let mut transcript = String::new();
    let mut run = |args: &[&str]| {
        let o = s.run(args);
        let stderr = text(&o).1;
        let err = stderr.split_once("error:").map(|(_, e)| format!("error:{e}")).unwrap_or_default();
        transcript.push_str(&format!("$ ferry {}\nexit {}\n{}\n", args.join(" "), o.status.code().unwrap_or(-1), err));
    };
    run(&["sync", "unknown.toml"]);
    run(&["sync", "types.toml"]);
    run(&["sync", "transform.toml"]);
    run(&["sync", "missing.toml"]);
    run(&["status", "notadb.toml"]);
    run(&["sync", "notadb.toml", "-q"]);
    expect_code(&s.run(&["sync", "p.toml", "-q"]), 0);
    run(&["status", "p.toml", "--batch", ""]);
    let transcript = transcript.replace(&s.dir.path().display().to_string(), "<dir>");
    assert!(!transcript.contains("(os error 2): No such file"), "{transcript}");
    assert!(!transcript.contains("usize"), "{transcript}");
    insta::assert_snapshot!("first_contact_messages", transcript);
}

#[test]
fn console_lines_are_logfmt_and_the_errors_file_names_pipeline_and_run() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("fmt", "data/p.db", "records = 20\nfail_stream = \"users\"\nfail_after = 5"));
    let o = s.run(&["sync", "p.toml"]);
    expect_code(&o, 3);
    let err = text(&o).1;
    let failed = err.lines().find(|l| l.contains("stream read failed")).unwrap();
    // Values with spaces are quoted: every key=value pair splits unambiguously.
    assert!(failed.contains("error=\"synthetic failure point"), "{failed}");
    let summary_level = err.lines().find(|l| l.contains("sync finished")).unwrap();
    assert!(summary_level.contains("WARN"), "partial is a warning: {summary_level}");
    let errors_dir = s.path("logs/errors");
    let file = std::fs::read_dir(errors_dir).unwrap().next().unwrap().unwrap().path();
    let errors = std::fs::read_to_string(file).unwrap();
    for line in errors.lines() {
        assert!(line.contains("pipeline=fmt") && line.contains("batch_id="), "{line}");
    }
}

#[test]
fn a_run_without_errors_creates_no_errors_file_and_a_bad_postgres_url_is_a_config_error() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("clean", "data/p.db", "records = 10"));
    expect_code(&s.run(&["sync", "p.toml", "-q"]), 0);
    let errors = s.path("logs/errors");
    let files = std::fs::read_dir(&errors).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0, "an empty errors file was created");

    let missing = s.path("nowhere/ca.pem");
    let url = format!("postgres://root@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert={}", missing.display());
    s.write(
        "pg.toml",
        &synthetic_pipeline("pg", "x", "records = 1")
            .replace("type = \"sqlite\"\npath = \"x\"", &format!("type = \"postgres\"\nurl = \"{url}\"")),
    );
    let o = s.run(&["sync", "pg.toml"]);
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot read sslrootcert {}", missing.display())), "{err}");
}

#[test]
fn a_jsonl_dry_run_creates_no_directory_and_writes_no_run() {
    let s = Scratch::new();
    let p = synthetic_pipeline("jdry", "unused", "records = 20")
        .replace("type = \"sqlite\"\npath = \"unused\"", "type = \"jsonl\"\ndir = \"out\"");
    s.write("p.toml", &p);
    expect_code(&s.run(&["sync", "p.toml", "--dry-run", "-q"]), 0);
    assert!(!s.path("out").exists(), "a dry run created the JSONL directory");
    expect_code(&s.run(&["sync", "p.toml", "-q"]), 0);
    let before = files(&s);
    expect_code(&s.run(&["sync", "p.toml", "--dry-run", "-q"]), 0);
    assert!(files(&s) == before, "a dry run changed the JSONL files");
}
