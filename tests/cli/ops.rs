//! Scheduled operation: status output, summaries, retention, terminal behaviour and the
//! automation recipes under examples/.

use clap::Parser;

use crate::common::*;

#[path = "../../src/cli.rs"]
#[allow(dead_code)]
mod cli;

/// Replaces what changes between runs (ids, times, durations, temp paths).
fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for (re, with) in [
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[batch]"),
        (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?Z?", "[time]"),
        (r"\b\d+(\.\d+)?(ms|s)\b", "[dur]"),
        (r"\b\d+m\d{2}s\b", "[dur]"),
    ] {
        out = regex_replace(&out, re, with);
    }
    // Column widths move with the redacted values: squeeze runs of spaces.
    out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

fn regex_replace(text: &str, re: &str, with: &str) -> String {
    regex_lite::Regex::new(re).unwrap().replace_all(text, with).into_owned()
}

#[test]
fn status_and_summary_snapshots() {
    let s = Scratch::new();
    s.write(
        "p.toml",
        &synthetic_pipeline("ops", "data/o.db", "records = 300\nfail_stream = \"orders\"\nfail_after = 20"),
    );
    let o = s.run(&["sync", "p.toml"]);
    expect_code(&o, 3);
    insta::assert_snapshot!("sync_summary", redact(&text(&o).0));
    let o = s.run(&["status", "p.toml"]);
    expect_code(&o, 0);
    insta::assert_snapshot!("status_runs", redact(&text(&o).0));
    let o = s.run(&["status", "p.toml", "--errors"]);
    expect_code(&o, 0);
    insta::assert_snapshot!("status_errors", redact(&text(&o).0));

    // --json carries every field the table shows.
    let o = s.run(&["status", "p.toml", "--json"]);
    expect_code(&o, 0);
    let runs: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    let run = &runs[0];
    for k in ["batch_id", "mode", "status", "started_at", "finished_at"] {
        assert!(!run[k].is_null(), "{k} missing: {run}");
    }
    for st in ["users", "events", "orders"] {
        for k in ["inserted", "updated", "unchanged", "failed", "status"] {
            assert!(!run["stats"]["streams"][st][k].is_null(), "{st}.{k}");
        }
    }
    let batch = run["batch_id"].as_str().unwrap();
    let o = s.run(&["status", "p.toml", "--batch", &batch[..13]]);
    expect_code(&o, 0);
    insta::assert_snapshot!("status_batch", redact(&text(&o).0));
    let o = s.run(&["sync", "p.toml", "--json", "--streams", "users"]);
    expect_code(&o, 0);
    let summary: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    for k in ["batch_id", "status", "duration_ms", "streams"] {
        assert!(!summary[k].is_null(), "{k}");
    }
}

#[test]
fn retention_removes_old_files_and_rows_and_keeps_young_ones() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("ret", "data/r.db", "records = 10"));
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    let old_day = (chrono::Utc::now() - chrono::Duration::days(40)).date_naive();
    let young_day = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive();
    for (dir, ext) in [("logs", "jsonl"), ("logs/errors", "log")] {
        s.write(&format!("{dir}/{old_day}.{ext}"), "{}\n");
        s.write(&format!("{dir}/{young_day}.{ext}"), "{}\n");
    }
    let db = s.db("data/r.db");
    db.execute_batch(&format!(
        "INSERT INTO sync_logs (batch_id, pipeline, level, step, message, meta, created_at) VALUES
         ('old', 'ret', 'WARN', 'x', 'old', '{{}}', '{old_day}T00:00:00.000Z'),
         ('young', 'ret', 'WARN', 'x', 'young', '{{}}', '{young_day}T00:00:00.000Z'),
         ('other', 'another-pipeline', 'WARN', 'x', 'not ours', '{{}}', '{old_day}T00:00:00.000Z');"
    ))
    .unwrap();
    let o = s.run(&["logs", "prune", "p.toml", "--older-than", "30d"]);
    expect_code(&o, 0);
    assert!(text(&o).0.contains("removed 2 log file(s) and 1 sync_logs row(s)"), "{}", text(&o).0);
    assert!(!s.path(&format!("logs/{old_day}.jsonl")).exists());
    assert!(!s.path(&format!("logs/errors/{old_day}.log")).exists());
    assert!(s.path(&format!("logs/{young_day}.jsonl")).exists());
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs WHERE batch_id = 'old'"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs WHERE batch_id = 'young'"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs WHERE batch_id = 'other'"), 1, "another pipeline's row");

    // After each run the configured limits apply: 2 days for files and rows here.
    let mut p = synthetic_pipeline("ret", "data/r.db", "records = 10");
    p = p.replace("level = \"info\"", "level = \"info\"\nretention_days = 2\nsync_logs_retention_days = 2");
    s.write("p.toml", &p);
    expect_code(&s.run(&["sync", "p.toml", "--quiet"]), 0);
    assert!(!s.path(&format!("logs/{young_day}.jsonl")).exists());
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs WHERE batch_id = 'young'"), 0);
    assert!(count(&db, "SELECT count(*) FROM sync_logs") > 0, "today's rows stay");
}

#[test]
fn progress_bars_on_a_terminal_plain_lines_when_redirected() {
    let s = Scratch::new();
    s.write("p.toml", &synthetic_pipeline("tty", "data/t.db", "records = 3000\ndelay_ms = 20\npage_size = 100"));
    // Redirected: plain lines only.
    let o = s.run(&["sync", "p.toml"]);
    expect_code(&o, 0);
    let (out, err) = text(&o);
    assert!(!out.contains('\u{1b}') && !err.contains('\u{1b}'), "control sequences in redirected output");
    assert!(err.contains("stream finished"), "plain log lines expected:\n{err}");
    // Under a pseudo-terminal (util-linux `script`): bars.
    let cmd = format!("{FERRY} sync p.toml --all");
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(s.dir.path())
        .output()
        .expect("`script` (util-linux) runs the sync under a pseudo-terminal");
    let all = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(all.contains('\u{1b}'), "no terminal control sequences under a pty:\n{all}");
    assert!(all.contains("records,") && all.contains("pages"), "no progress lines:\n{all}");
}

#[test]
fn automation_recipes_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("examples/github-actions/instantly-sync.yml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&yaml).expect("workflow parses as YAML");
    let wf = &docs[0];
    assert_eq!(wf["on"]["schedule"][0]["cron"].as_str(), Some("0 9 * * *"));
    assert!(!wf["on"]["workflow_dispatch"].is_badvalue());
    let steps = wf["jobs"]["sync"]["steps"].as_vec().unwrap();
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).filter(|r| r.contains("ferry sync")).collect();
    assert_eq!(runs.len(), 1, "one sync step");
    let words: Vec<&str> = runs[0].split_whitespace().collect();
    let at = words.iter().position(|w| w.ends_with("ferry")).unwrap();
    let parsed = cli::Cli::try_parse_from(&words[at..]).expect("the workflow runs a valid ferry command");
    assert!(matches!(parsed.command, cli::Command::Sync(_)));
    // Every cache step keeps what SQLite needs: the database and its -wal (a cancelled run
    // leaves committed batches there).
    let cached: Vec<&str> = steps
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/cache")))
        .map(|s| s["with"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(cached.len(), 2, "restore and save");
    for path in cached {
        for file in ["data/instantly.db", "data/instantly.db-wal", "data/instantly.db-shm"] {
            let covers = path.lines().map(str::trim).any(|p| {
                p == file
                    || file.starts_with(&format!("{}/", p.trim_end_matches('/')))
                    || p.strip_suffix('*').is_some_and(|prefix| file.starts_with(prefix))
            });
            assert!(covers, "the cache path `{path}` leaves out {file}");
        }
    }
    let env = &steps.iter().find(|s| s["run"].as_str() == Some(runs[0])).unwrap()["env"];
    assert_eq!(env["INSTANTLY_API_KEY"].as_str(), Some("${{ secrets.INSTANTLY_API_KEY }}"));

    let cron = std::fs::read_to_string(root.join("examples/cron/crontab")).unwrap();
    let line = cron.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
    let cmd = line.split("&&").nth(1).unwrap().split(">>").next().unwrap();
    let words: Vec<&str> = cmd.split_whitespace().collect();
    cli::Cli::try_parse_from(&words).expect("the crontab runs a valid ferry command");

    let service = std::fs::read_to_string(root.join("examples/systemd/ferry-sync.service")).unwrap();
    let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    cli::Cli::try_parse_from(exec.split_whitespace()).expect("the unit runs a valid ferry command");
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_ok() {
        let o = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(root.join("examples/systemd/ferry-sync.timer"))
            .arg(root.join("examples/systemd/ferry-sync.service"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        // Paths and the user exist on the deploy host, not here; anything else is a defect.
        let problems: Vec<&str> = err
            .lines()
            .filter(|l| {
                !l.contains("/usr/local/bin/ferry")
                    && !l.contains("/srv/ferry")
                    && !l.contains("User")
                    && !l.trim().is_empty()
            })
            .collect();
        assert!(problems.is_empty(), "systemd-analyze verify: {err}");
    }
}

#[test]
fn kubernetes_manifests_parse_and_map_the_exit_codes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("examples/kubernetes/ferry.yaml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&yaml).expect("the manifests parse as YAML");
    let config = docs.iter().find(|d| d["kind"].as_str() == Some("ConfigMap")).expect("a ConfigMap");
    let files = config["data"].as_hash().unwrap();
    let jobs: Vec<_> = docs.iter().filter(|d| d["kind"].as_str() == Some("CronJob")).collect();
    assert_eq!(jobs.len(), files.len(), "one CronJob per pipeline file");
    let fake = tempfile::tempdir().unwrap();
    let ferry = fake.path().join("ferry");
    std::fs::write(&ferry, "#!/bin/sh\nexit \"$FAKE_EXIT\"\n").unwrap();
    std::fs::set_permissions(&ferry, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for job in jobs {
        let name = job["metadata"]["name"].as_str().unwrap();
        assert_eq!(job["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"), "{name}");
        let spec = &job["spec"]["jobTemplate"]["spec"];
        assert!(spec["backoffLimit"].as_i64().is_some(), "{name}: backoffLimit");
        let pod = &spec["template"]["spec"];
        let container = &pod["containers"][0];
        assert!(container["resources"]["limits"]["memory"].as_str().is_some(), "{name}: a memory limit");
        let env = container["env"].as_vec().unwrap();
        assert!(env.iter().any(|e| e["name"].as_str() == Some("DATABASE_URL")), "{name}");
        for e in env {
            assert!(
                !e["valueFrom"]["secretKeyRef"]["name"].is_badvalue(),
                "{name}: {:?} is not from a Secret",
                e["name"]
            );
        }
        // The container's command is a valid ferry command, on a file the ConfigMap holds,
        // which ferry's own parser accepts.
        let script = container["command"][2].as_str().unwrap();
        let words: Vec<&str> = script.split(';').next().unwrap().split_whitespace().collect();
        let parsed = cli::Cli::try_parse_from(&words).expect("the CronJob runs a valid ferry command");
        assert!(matches!(parsed.command, cli::Command::Sync(_)), "{name}");
        let file = words[2].strip_prefix("/etc/ferry/").expect("a file of the mounted ConfigMap");
        let toml = files[&yaml_rust2::Yaml::String(file.to_owned())].as_str().unwrap();
        ferry_core::config::PipelineConfig::parse(toml, file).expect("the pipeline file parses");
        // 75 (another runner holds the lock) ends the job well; the other codes stay.
        for (code, want) in [(0, 0), (75, 0), (3, 3), (1, 1), (2, 2)] {
            let o = std::process::Command::new("/bin/sh")
                .args(["-c", script])
                .env("PATH", format!("{}:/usr/bin:/bin", fake.path().display()))
                .env("FAKE_EXIT", code.to_string())
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(want), "{name}: ferry exiting {code}");
        }
        let failed_at_once = spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"][0].as_i64();
        assert_eq!(failed_at_once, Some(2), "{name}: a config error fails the job at once");
    }
}

#[test]
fn every_example_pipeline_parses_and_names_registered_components() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let registry = ferry_core::registry::Registry::global().unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let config = ferry_core::config::PipelineConfig::parse(&text, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        registry.connector(&config.connector).unwrap_or_else(|e| panic!("{name}: {e}"));
        registry.sink(&config.sink_type).unwrap_or_else(|e| panic!("{name}: {e}"));
        ferry_core::engine::select_streams(registry, &config, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert!(seen >= 6, "{seen} example pipelines");
}
