//! The three logging tiers and secret redaction.

use crate::common::*;

const TOKEN: &str = "sk-live-7f3a9c2e1b8d4f60";

fn day_file(s: &Scratch, sub: &str, ext: &str) -> String {
    let dir = s.path(sub);
    let mut found = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(ext) {
            found.push_str(&std::fs::read_to_string(dir.join(&name)).unwrap());
        }
    }
    found
}

#[test]
fn tiers_hold_what_they_should_and_no_tier_holds_the_secret() {
    let s = Scratch::new();
    // The token comes from .env through ${VAR}; the synthetic source echoes it in its
    // failure message, as a careless connector would echo a URL with a key.
    s.write(".env", &format!("SYNTH_TOKEN={TOKEN}\n"));
    s.write(
        "p.toml",
        &synthetic_pipeline(
            "logs",
            "data/l.db",
            "records = 300\npage_size = 100\nfail_stream = \"orders\"\nfail_after = 10\nbad_record_every = 150\napi_token = \"${SYNTH_TOKEN}\"",
        ),
    );
    let o = s.cmd(&["sync", "p.toml"]).env_remove("SYNTH_TOKEN").output().unwrap();
    expect_code(&o, 3);
    let (stdout, stderr) = text(&o);

    let jsonl = day_file(&s, "logs", ".jsonl");
    let errors = day_file(&s, "logs/errors", ".log");
    let events: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let steps: Vec<&str> = events.iter().map(|e| e["step"].as_str().unwrap()).collect();
    // Every event: START, END, stream ends, per-batch debug events, warnings, errors.
    for want in ["START", "END", "STREAM_END", "write", "fetch"] {
        assert!(steps.contains(&want), "jsonl lacks {want}: {steps:?}");
    }
    assert!(events.iter().any(|e| e["level"] == "DEBUG"));
    assert!(events.iter().any(|e| e["level"] == "WARN"));
    assert!(events.iter().all(|e| e["batch_id"].as_str().is_some_and(|b| !b.is_empty())));
    let jsonl_errors = events.iter().filter(|e| e["level"] == "ERROR").count();
    assert!(jsonl_errors >= 2, "fetch error + stream end error");
    // Errors file: exactly the errors.
    assert_eq!(errors.lines().count(), jsonl_errors, "errors file:\n{errors}");
    assert!(errors.lines().all(|l| l.contains(" ERROR ")));

    // sync_logs: warnings, errors, START / END and stream summaries only.
    let db = s.db("data/l.db");
    let mut st = db.prepare("SELECT level, step FROM sync_logs").unwrap();
    let rows: Vec<(String, String)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert!(rows.iter().any(|(_, s)| s == "START"));
    assert!(rows.iter().any(|(_, s)| s == "END"));
    assert_eq!(rows.iter().filter(|(_, s)| s == "STREAM_END").count(), 3);
    for (level, step) in &rows {
        assert!(
            level == "WARN" || level == "ERROR" || ["START", "END", "STREAM_END", "TIMEOUT"].contains(&step.as_str()),
            "unexpected sync_logs row {level} {step}"
        );
    }
    assert!(!rows.iter().any(|(l, _)| l == "DEBUG"));

    // The secret is nowhere; its redaction is.
    let dump: String = {
        let mut st = db.prepare("SELECT message || ' ' || coalesce(meta, '') FROM sync_logs").unwrap();
        st.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect::<Vec<_>>().join("\n")
    };
    let runs: String =
        db.query_row("SELECT group_concat(stats || arguments) FROM sync_runs", [], |r| r.get(0)).unwrap();
    for (tier, content) in [
        ("jsonl", &jsonl),
        ("errors", &errors),
        ("sync_logs", &dump),
        ("sync_runs", &runs),
        ("stdout", &stdout),
        ("stderr", &stderr),
    ] {
        assert!(!content.contains(TOKEN), "secret leaked into {tier}:\n{content}");
    }
    assert!(errors.contains("token=***"), "redaction marker expected:\n{errors}");
}
