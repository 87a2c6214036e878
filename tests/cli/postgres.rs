//! The Postgres sink end to end (server on 127.0.0.1:5432; FERRY_TEST_PG_URL overrides).

use std::time::{Duration, Instant};

use crate::common::*;
use crate::simulator::*;

const PASSWORD: &str = "s3cret-pw-71c4";

fn base_url() -> String {
    std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

/// A schema of its own, dropped at the end.
struct Schema(String);

fn admin(sql: String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
            .await
            .expect("Postgres is up (.ci/run starts it)");
        let t = tokio::spawn(conn);
        c.batch_execute(&sql).await.unwrap();
        drop(c);
        let _ = t.await;
    });
}

impl Schema {
    fn new(tag: &str) -> Self {
        let name = format!("ferry_cli_{tag}_{}_{}", std::process::id(), rand::random::<u32>());
        admin(format!("CREATE SCHEMA \"{name}\""));
        Schema(name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        admin(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
    }
}

fn pg_pipeline(sim_base: &str, schema: &str) -> String {
    pipeline(sim_base, "unused.db", "").replace(
        "type = \"sqlite\"\npath = \"unused.db\"",
        &format!("type = \"postgres\"\nurl = \"${{PG_TEST_URL}}\"\nschema = \"{schema}\""),
    )
}

fn run(s: &Scratch, args: &[&str]) -> std::process::Output {
    s.cmd(args).env("SIM_INSTANTLY_KEY", KEY).env("PG_TEST_URL", base_url()).output().unwrap()
}

/// Rows of a table as (key, typed columns, raw_json), as JSON values, from either sink.
fn pg_rows(schema: &str, table: &str, cols: &[&str]) -> Vec<(String, serde_json::Value)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls).await.unwrap();
        let t = tokio::spawn(conn);
        let list: Vec<String> = cols.iter().map(|c| format!("'{c}', to_jsonb(\"{c}\")")).collect();
        let sql = format!(
            "SELECT jsonb_build_object({}) || jsonb_build_object('raw_json', raw_json) FROM \"{schema}\".\"{table}\"",
            list.join(", ")
        );
        let mut out: Vec<(String, serde_json::Value)> = c
            .query(&sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let v: serde_json::Value = r.get(0);
                (v.to_string(), v)
            })
            .collect();
        drop(c);
        let _ = t.await;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    })
}

fn sqlite_rows(
    db: &rusqlite::Connection,
    table: &str,
    cols: &[&str],
    types: &[ferry_core::descriptor::SqlType],
) -> Vec<(String, serde_json::Value)> {
    use ferry_core::descriptor::SqlType;
    let list: Vec<String> = cols.iter().map(|c| format!("'{c}', \"{c}\"")).collect();
    let sql = format!("SELECT json_object({}, 'raw_json', json(raw_json)) FROM \"{table}\"", list.join(", "));
    let mut st = db.prepare(&sql).unwrap();
    let mut out: Vec<(String, serde_json::Value)> = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|t| {
            let mut v: serde_json::Value = serde_json::from_str(&t.unwrap()).unwrap();
            // Same logical values: booleans are 0/1 in SQLite (times are compared parsed).
            for (c, ty) in cols.iter().zip(types) {
                let x = &mut v[*c];
                match ty {
                    SqlType::Boolean => {
                        if let Some(i) = x.as_i64() {
                            *x = serde_json::json!(i != 0)
                        }
                    }
                    SqlType::Real => {
                        if let Some(f) = x.as_f64() {
                            *x = serde_json::json!(f)
                        }
                    }
                    _ => {}
                }
            }
            (v.to_string(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn the_simulator_synced_into_sqlite_and_postgres_gives_the_same_rows() {
    if !postgres_or_skip() {
        return;
    }
    let (sim, s) = start(small(), "");
    let schema = Schema::new("same");
    expect_code(&run(&s, &["sync", "p.toml", "--quiet"]), 0);
    s.write("pg.toml", &pg_pipeline(&sim.base, &schema.0));
    let o = run(&s, &["sync", "pg.toml", "--json"]);
    expect_code(&o, 0);
    let second = run(&s, &["sync", "pg.toml", "--json"]);
    expect_code(&second, 0);
    let r: serde_json::Value = serde_json::from_str(&text(&second).0).unwrap();
    for (name, st) in r["streams"].as_object().unwrap() {
        assert_eq!(
            (st["inserted"].as_u64(), st["updated"].as_u64()),
            (Some(0), Some(0)),
            "{name} rewritten on Postgres"
        );
    }
    let db = s.db("data/i.db");
    for d in ferry_core::registry::Registry::global().unwrap().streams_of("instantly") {
        let cols: Vec<&str> = d.columns.iter().map(|c| c.name).collect();
        let types: Vec<_> = d.columns.iter().map(|c| c.sql_type).collect();
        let lite = sqlite_rows(&db, d.table, &cols, &types);
        let pg = pg_rows(&schema.0, d.table, &cols);
        assert_eq!(lite.len(), pg.len(), "{}", d.table);
        // Compare keys and raw_json exactly; typed values as JSON after normalising times.
        for ((_, a), (_, b)) in lite.iter().zip(&pg) {
            assert_eq!(a["raw_json"], b["raw_json"], "{}", d.table);
            for (c, ty) in cols.iter().zip(&types) {
                if *ty == ferry_core::descriptor::SqlType::Timestamp {
                    let ta = a[*c].as_str().and_then(ferry_core::typed::parse_timestamp);
                    let tb = b[*c].as_str().and_then(ferry_core::typed::parse_timestamp);
                    assert_eq!(ta, tb, "{}.{c}", d.table);
                } else if let (Some(x), Some(y)) = (a[*c].as_f64(), b[*c].as_f64()) {
                    assert_eq!(x, y, "{}.{c}", d.table);
                } else {
                    assert_eq!(a[*c], b[*c], "{}.{c}", d.table);
                }
            }
        }
    }
}

fn running(schema: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls).await.unwrap();
        let t = tokio::spawn(conn);
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM \"{schema}\".sync_runs WHERE status = 'running'"), &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        drop(c);
        let _ = t.await;
        n
    })
}

#[test]
fn two_runners_on_one_postgres_one_runs_the_other_exits_75() {
    if !postgres_or_skip() {
        return;
    }
    let (sim, s) = start(ferry_instantly::sim::SimConfig { latency_ms: 40, ..small() }, "");
    let schema = Schema::new("lock");
    s.write("pg.toml", &pg_pipeline(&sim.base, &schema.0));
    expect_code(&run(&s, &["init", "pg.toml"]), 0);
    let mut first = s
        .cmd(&["sync", "pg.toml", "--quiet"])
        .env("SIM_INSTANTLY_KEY", KEY)
        .env("PG_TEST_URL", base_url())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while running(&schema.0) == 0 {
        assert!(Instant::now() < deadline, "first run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = run(&s, &["sync", "pg.toml", "--quiet"]);
    assert!(first.wait().unwrap().success());
    expect_code(&o, 75);
    assert!(text(&o).1.contains("in progress"), "{}", text(&o).1);
}

#[test]
fn a_killed_sync_on_postgres_converges() {
    if !postgres_or_skip() {
        return;
    }
    let _heavy = timing_lock();
    let (sim, s) = start(ferry_instantly::sim::SimConfig { latency_ms: 20, leads_per_campaign: 500, ..small() }, "");
    let reference = Schema::new("ref");
    let schema = Schema::new("kill");
    s.write("ref.toml", &pg_pipeline(&sim.base, &reference.0));
    expect_code(&run(&s, &["sync", "ref.toml", "--quiet"]), 0);
    s.write("pg.toml", &pg_pipeline(&sim.base, &schema.0));
    for wait in [150u64, 400, 800] {
        let mut child = s
            .cmd(&["sync", "pg.toml", "--quiet"])
            .env("SIM_INSTANTLY_KEY", KEY)
            .env("PG_TEST_URL", base_url())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().ok();
        child.wait().unwrap();
    }
    let started = Instant::now();
    expect_code(&run(&s, &["sync", "pg.toml", "--quiet"]), 0);
    assert!(started.elapsed() < Duration::from_secs(60));
    for d in ferry_core::registry::Registry::global().unwrap().streams_of("instantly") {
        let cols: Vec<&str> = d.columns.iter().map(|c| c.name).collect();
        assert_eq!(pg_rows(&schema.0, d.table, &cols), pg_rows(&reference.0, d.table, &cols), "{}", d.table);
    }
}

#[test]
fn connection_problems_are_clear_and_never_show_the_password() {
    if !postgres_or_skip() {
        return;
    }
    let s = Scratch::new();
    let cases = [
        (
            format!("postgres://nosuchrole:{PASSWORD}@127.0.0.1:5432/test?sslmode=disable"),
            "public",
            "cannot connect to Postgres at 127.0.0.1",
        ),
        (
            format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/test?sslmode=disable&connect_timeout=3"),
            "public",
            "cannot connect to Postgres at 127.0.0.1",
        ),
        (
            format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/test?sslmode=disable"),
            "no_such_schema_here",
            "schema `no_such_schema_here` does not exist",
        ),
    ];
    for (url, schema, needle) in cases {
        s.write(
            "p.toml",
            &format!("[pipeline]\nname = \"pgerr\"\n[source]\nconnector = \"synthetic\"\nrecords = 5\n[sink]\ntype = \"postgres\"\nurl = \"${{PG_BAD_URL}}\"\nschema = \"{schema}\"\n"),
        );
        let o = s.cmd(&["sync", "p.toml"]).env("PG_BAD_URL", &url).output().unwrap();
        expect_code(&o, 1);
        let (out, err) = text(&o);
        assert!(err.contains(needle), "{err}");
        assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD), "password shown: {err}");
        for f in std::fs::read_dir(s.path("logs")).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default() {
            if f.path().is_file() {
                assert!(!std::fs::read_to_string(f.path()).unwrap().contains(PASSWORD));
            }
        }
    }
}

fn pg_count(sql: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls).await.unwrap();
        let t = tokio::spawn(conn);
        let n: i64 = c.query_one(sql, &[]).await.unwrap().get(0);
        drop(c);
        let _ = t.await;
        n
    })
}

/// The tables of a schema, by name.
fn pg_tables(schema: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls).await.unwrap();
        let t = tokio::spawn(conn);
        let rows = c
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
                &[&schema],
            )
            .await
            .unwrap();
        drop(c);
        let _ = t.await;
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    })
}

#[test]
fn a_dry_run_creates_no_table_and_records_no_run_in_postgres() {
    if !postgres_or_skip() {
        return;
    }
    let sim = Sim::start(small());
    let schema = Schema::new("dry");
    let s = Scratch::new();
    s.write("p.toml", &pg_pipeline(&sim.base, &schema.0));
    let o = run(&s, &["sync", "p.toml", "--dry-run", "--json"]);
    expect_code(&o, 0);
    let dry: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert!(pg_tables(&schema.0).is_empty(), "a dry run created {:?}", pg_tables(&schema.0));
    let o = run(&s, &["sync", "p.toml", "--json"]);
    expect_code(&o, 0);
    let real: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    for stream in ["campaigns", "leads", "emails", "accounts"] {
        assert_eq!(dry["streams"][stream]["inserted"], real["streams"][stream]["inserted"], "{stream}");
    }
    let runs = |s: &str| pg_count(&format!("SELECT count(*) FROM \"{s}\".sync_runs"));
    let logs = |s: &str| pg_count(&format!("SELECT count(*) FROM \"{s}\".sync_logs"));
    let (runs_before, logs_before) = (runs(&schema.0), logs(&schema.0));
    expect_code(&run(&s, &["sync", "p.toml", "--dry-run", "-q"]), 0);
    assert_eq!((runs(&schema.0), logs(&schema.0)), (runs_before, logs_before), "a dry run recorded itself");
}

#[test]
fn session_settings_in_the_url_do_not_change_results() {
    if !postgres_or_skip() {
        return;
    }
    let sim = Sim::start(small());
    let schema = Schema::new("datestyle");
    let s = Scratch::new();
    s.write("p.toml", &pg_pipeline(&sim.base, &schema.0));
    let url = format!(
        "{}&options=-c%20DateStyle%3DSQL%2CDMY%20-c%20TimeZone%3DAmerica%2FNew_York%20-c%20search_path%3Dpublic",
        base_url()
    );
    let run_with = |args: &[&str]| s.cmd(args).env("SIM_INSTANTLY_KEY", KEY).env("PG_TEST_URL", &url).output().unwrap();
    expect_code(&run_with(&["sync", "p.toml", "-q"]), 0);
    let o = run_with(&["sync", "p.toml", "--json"]);
    expect_code(&o, 0);
    let second: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    for stream in ["daily_analytics", "overview", "leads", "emails"] {
        assert_eq!(second["streams"][stream]["inserted"], 0, "{stream}: {second}");
        assert_eq!(second["streams"][stream]["updated"], 0, "{stream}: {second}");
    }
}

#[test]
fn a_column_of_an_unexpected_type_is_an_error_naming_it_not_a_panic() {
    if !postgres_or_skip() {
        return;
    }
    let sim = Sim::start(small());
    let schema = Schema::new("types");
    let s = Scratch::new();
    s.write("p.toml", &pg_pipeline(&sim.base, &schema.0));
    expect_code(&run(&s, &["sync", "p.toml", "-q", "--streams", "emails"]), 0);
    admin(format!("ALTER TABLE \"{}\".sync_state ALTER COLUMN cursor TYPE text USING cursor::text", schema.0));
    let o = run(&s, &["state", "show", "p.toml"]);
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked") && err.contains("sync_state.cursor"), "{err}");
}

#[test]
fn concurrent_pipelines_writing_the_same_tables_never_collide() {
    if !postgres_or_skip() {
        return;
    }
    let schema = Schema::new("concurrent");
    let serial = Schema::new("serial");
    let s = Scratch::new();
    let pg = |name: &str, schema: &str| {
        synthetic_pipeline(name, "unused.db", "records = 3000\npage_size = 100").replace(
            "type = \"sqlite\"\npath = \"unused.db\"",
            &format!("type = \"postgres\"\nurl = \"${{PG_TEST_URL}}\"\nschema = \"{schema}\""),
        )
    };
    for p in 0..4 {
        s.write(&format!("p{p}.toml"), &pg(&format!("writer{p}"), &schema.0));
    }
    s.write("serial.toml", &pg("serial", &serial.0));
    expect_code(&run(&s, &["sync", "serial.toml", "-q"]), 0);
    for round in 0..3 {
        let children: Vec<_> = (0..8)
            .map(|i| {
                s.cmd(&["sync", &format!("p{}.toml", i % 4), "-q", "--all"])
                    .env("PG_TEST_URL", base_url())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(matches!(o.status.code(), Some(0) | Some(75)), "round {round}: {:?}\n{err}", o.status.code());
        }
    }
    for table in ["synthetic_users", "synthetic_orders", "synthetic_events"] {
        let q = |sc: &str| {
            pg_count(&format!(
                "SELECT count(*) FROM (SELECT raw_json FROM \"{sc}\".{table} EXCEPT SELECT raw_json FROM \"{}\".{table}) d",
                if sc == schema.0 { &serial.0 } else { &schema.0 }
            ))
        };
        assert_eq!(q(&schema.0), 0, "{table}: rows differ from a serial run");
        assert_eq!(q(&serial.0), 0, "{table}: rows missing after the concurrent runs");
        assert_eq!(
            pg_count(&format!("SELECT count(*) FROM \"{}\".{table}", schema.0)),
            pg_count(&format!("SELECT count(*) FROM \"{}\".{table}", serial.0))
        );
    }
}

#[test]
fn fifty_pipelines_with_two_runners_each_have_one_winner_per_pipeline_per_round() {
    if !postgres_server_or_skip() {
        return;
    }
    let _t = timing_lock();
    // A hundred runners hold a hundred connections: a server of the test's own allows them.
    let cluster = crate::postgres_tls::Cluster::with_settings("max_connections = 250\n");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let s = Scratch::new();
    let names: Vec<String> = (0..50).map(|i| format!("runner{i:02}")).collect();
    for name in &names {
        // Two pages per stream, three seconds each: the two runners of a pipeline overlap.
        let toml = synthetic_pipeline(name, "x", "records = 20\npage_size = 10\ndelay_ms = 3000")
            .replace("type = \"sqlite\"\npath = \"x\"", &format!("type = \"postgres\"\nurl = \"{url}\""));
        s.write(&format!("{name}.toml"), &toml);
    }
    expect_code(&s.run(&["init", "runner00.toml"]), 0);
    for round in 0..2 {
        let children: Vec<(String, std::process::Child)> = names
            .iter()
            .flat_map(|n| [n.clone(), n.clone()])
            .map(|n| {
                let child = s
                    .cmd(&["sync", &format!("{n}.toml"), "--quiet"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                (n, child)
            })
            .collect();
        let mut codes: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for (n, child) in children {
            let o = child.wait_with_output().unwrap();
            let code = o.status.code().unwrap_or(-1);
            assert!(code == 0 || code == 75, "round {round}, {n}: exit {code}: {}", String::from_utf8_lossy(&o.stderr));
            codes.entry(n).or_default().push(code);
        }
        for (n, mut c) in codes {
            c.sort();
            assert_eq!(c, vec![0, 75], "round {round}, {n}: one runner wins, the other finds it locked");
        }
    }
}

#[test]
fn pipelines_sharing_a_schema_never_see_or_prune_each_others_runs_and_logs() {
    if !postgres_or_skip() {
        return;
    }
    let schema = Schema::new("shared");
    let s = Scratch::new();
    let sink = format!("type = \"postgres\"\nurl = \"${{PG_TEST_URL}}\"\nschema = \"{}\"", schema.0);
    let with_pg = |toml: String| toml.replace("type = \"sqlite\"\npath = \"x\"", &sink);
    s.write(
        "a.toml",
        &with_pg(synthetic_pipeline("alpha", "x", "records = 20\nfail_stream = \"users\"\nfail_after = 5")),
    );
    s.write("b.toml", &with_pg(synthetic_pipeline("beta", "x", "records = 20")));
    expect_code(&run(&s, &["sync", "a.toml", "-q"]), 3);
    expect_code(&run(&s, &["sync", "b.toml", "-q"]), 0);

    let status_of = |p: &str| text(&run(&s, &["status", p, "--json"])).0;
    assert!(status_of("a.toml").contains("alpha") && !status_of("a.toml").contains("beta"), "{}", status_of("a.toml"));
    assert!(status_of("b.toml").contains("beta") && !status_of("b.toml").contains("alpha"), "{}", status_of("b.toml"));
    let errors_of = |p: &str| text(&run(&s, &["status", p, "--errors", "--json"])).0;
    assert!(errors_of("a.toml").contains("synthetic failure point"));
    assert!(!errors_of("b.toml").contains("synthetic failure point"), "{}", errors_of("b.toml"));

    let logs = |p: &str| pg_count(&format!("SELECT count(*) FROM \"{}\".sync_logs WHERE pipeline = '{p}'", schema.0));
    let beta_before = logs("beta");
    assert!(logs("alpha") > 0 && beta_before > 0);
    std::thread::sleep(Duration::from_millis(1100));
    expect_code(&run(&s, &["logs", "prune", "a.toml", "--older-than", "1s"]), 0);
    assert_eq!(logs("alpha"), 0);
    assert_eq!(logs("beta"), beta_before);
}

/// Tables written by an earlier version have no `raw_json_hash`: a dry run still works
/// and leaves them as they are; a sync adds the column, finds every row unchanged and
/// records the hashes of the rows it saw, so the next re-run compares hashes only.
#[test]
fn tables_of_an_earlier_version_get_the_hash_column_and_stay_unchanged() {
    if !postgres_or_skip() {
        return;
    }
    let sim = Sim::start(small());
    let schema = Schema::new("hash");
    let s = Scratch::new();
    s.write("p.toml", &pg_pipeline(&sim.base, &schema.0));
    expect_code(&run(&s, &["sync", "p.toml", "-q"]), 0);
    let tables = pg_tables(&schema.0).into_iter().filter(|t| t.ends_with("_raw")).collect::<Vec<_>>();
    assert!(tables.len() >= 4, "{tables:?}");
    let with_hash = |sql_where: &str| {
        pg_count(&format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{}' AND column_name = 'raw_json_hash' {sql_where}",
            schema.0
        ))
    };
    assert_eq!(with_hash(""), tables.len() as i64);
    for t in &tables {
        admin(format!("ALTER TABLE \"{}\".\"{t}\" DROP COLUMN raw_json_hash", schema.0));
    }
    let unchanged = |o: &std::process::Output| {
        expect_code(o, 0);
        let report: serde_json::Value = serde_json::from_str(&text(o).0).unwrap();
        for (stream, r) in report["streams"].as_object().unwrap() {
            assert_eq!(
                (&r["inserted"], &r["updated"]),
                (&serde_json::json!(0), &serde_json::json!(0)),
                "{stream}: {r}"
            );
        }
    };
    unchanged(&run(&s, &["sync", "p.toml", "--dry-run", "--json"]));
    assert_eq!(with_hash(""), 0, "the dry run changed a table");
    unchanged(&run(&s, &["sync", "p.toml", "--all", "--json"]));
    assert_eq!(with_hash(""), tables.len() as i64);
    let campaigns = format!("\"{}\".instantly_campaigns_raw", schema.0);
    assert_eq!(pg_count(&format!("SELECT count(*) FROM {campaigns} WHERE raw_json_hash IS NULL")), 0);
    assert!(pg_count(&format!("SELECT count(*) FROM {campaigns}")) > 0);
    unchanged(&run(&s, &["sync", "p.toml", "--json"]));
}

/// A server that accepts the connection and never says a word (a firewall, a stuck pooler,
/// the wrong service): the sync gives up after the URL's `connect_timeout` (30 s without
/// one), saying so, instead of waiting forever (it did: the TCP connect succeeds, and the
/// driver's own timeout covers only that).
#[test]
fn a_server_that_never_answers_fails_the_connection_in_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let s = Scratch::new();
    s.write(
        "p.toml",
        "[pipeline]\nname = \"silent\"\n[source]\nconnector = \"synthetic\"\nrecords = 5\n[sink]\ntype = \"postgres\"\nurl = \"${PG_SILENT_URL}\"\n",
    );
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/test?connect_timeout=2");
    let started = Instant::now();
    let o = s.cmd(&["sync", "p.toml"]).env("PG_SILENT_URL", &url).output().unwrap();
    expect_code(&o, 1);
    let (out, err) = text(&o);
    assert!(err.contains("no answer within 2 s") && err.contains("connect_timeout"), "{err}");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

/// A URL pointing at a web server (the wrong port): the error says the other end does not
/// speak Postgres, not just that bytes remained on a stream.
#[test]
fn a_url_pointing_at_a_web_server_says_it_is_not_postgres() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let s = Scratch::new();
    s.write(
        "p.toml",
        "[pipeline]\nname = \"web\"\n[source]\nconnector = \"synthetic\"\nrecords = 5\n[sink]\ntype = \"postgres\"\nurl = \"${PG_WEB_URL}\"\n",
    );
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/test?connect_timeout=5");
    let o = s.cmd(&["sync", "p.toml"]).env("PG_WEB_URL", &url).output().unwrap();
    expect_code(&o, 1);
    let (_, err) = text(&o);
    assert!(err.contains("does not speak Postgres's protocol"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}
