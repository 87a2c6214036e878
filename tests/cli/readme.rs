//! The README's command blocks, run as a new user would: in a fresh directory, twice, each
//! command exactly as written (a connector name resolves to `./instantly.toml`, which points
//! at the simulator, so nothing reaches the internet).

use crate::common::*;
use crate::simulator::*;

/// Every `ferry ...` command in the README's `sh` blocks, in order, comments removed;
/// `show|reset` alternatives become one command each and `[optional]` parts are dropped.
/// `cargo run --release -- ARGS` is the binary with ARGS.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let command = line.split(" #").next().unwrap().trim();
        let command = match command.strip_prefix("cargo run --release -- ") {
            Some(rest) => format!("ferry {rest}"),
            None => command.to_owned(),
        };
        let Some(rest) = command.strip_prefix("ferry ") else { continue };
        let rest = rest.split(" [").next().unwrap();
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words.iter().position(|w| w.contains('|')) {
            Some(i) => {
                for alternative in words[i].split('|') {
                    let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
                    w[i] = alternative.to_owned();
                    out.push(w);
                }
            }
            None => out.push(words.iter().map(|s| s.to_string()).collect()),
        }
    }
    out
}

#[test]
fn every_readme_command_works_twice_in_a_fresh_directory() {
    let commands = readme_commands();
    assert!(commands.len() >= 15, "{commands:?}");
    assert!(commands.iter().any(|c| c == &["demo"]), "the README starts with the demo");
    let sim = Sim::start(small());
    let s = Scratch::new();
    // What README step 4 tells users to create (here pointed at the simulator).
    s.write(
        "instantly.toml",
        &pipeline(&sim.base, "data/instantly.db", "")
            .replace("name = \"inst\"", "name = \"instantly\"")
            .replace("api_key = \"${SIM_INSTANTLY_KEY}\"", "api_key = \"${INSTANTLY_API_KEY}\""),
    );
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/synthetic.toml");
    s.write("examples/synthetic.toml", &std::fs::read_to_string(examples).unwrap());
    for pass in 1..=2 {
        for args in &commands {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = s.cmd(&args).env("INSTANTLY_API_KEY", KEY).output().unwrap();
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(0), "pass {pass}: ferry {}\n{out}\n{err}", args.join(" "));
            assert!(!err.contains("panicked"), "{err}");
            if pass == 2 && args == ["sync", "instantly"] {
                // Later runs are incremental: nothing new in the simulator, nothing written.
                let db = s.db("data/instantly.db");
                let writes: i64 = count(
                    &db,
                    "SELECT coalesce(sum(json_extract(meta, '$.inserted') + json_extract(meta, '$.updated')), -1) \
                     FROM sync_logs WHERE step = 'STREAM_END' AND batch_id = \
                     (SELECT batch_id FROM sync_runs WHERE pipeline = 'instantly' ORDER BY started_at DESC LIMIT 1)",
                );
                assert_eq!(writes, 0, "the second `ferry sync instantly` rewrote rows");
            }
            if pass == 2 && args == ["demo"] {
                let db = s.db("data/demo.db");
                let writes: i64 = count(
                    &db,
                    "SELECT sum(json_extract(meta, '$.inserted') + json_extract(meta, '$.updated')) FROM sync_logs \
                     WHERE step = 'STREAM_END' AND batch_id = (SELECT batch_id FROM sync_runs ORDER BY started_at DESC LIMIT 1)",
                );
                assert_eq!(writes, 0, "the second `ferry demo` rewrote rows");
                assert_eq!(count(&db, "SELECT count(*) FROM instantly_leads_raw"), 1050);
            }
        }
    }
}
