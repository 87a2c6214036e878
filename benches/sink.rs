//! Sink benchmark (not part of the test suite): upsert N synthetic records through the
//! engine into SQLite, against the same rows inserted by a bare rusqlite loop in one
//! transaction; then the same records again (all unchanged).
//!
//! Run: `cargo bench --bench sink` (N = 1,000,000) or `cargo bench --bench sink -- 200000`.
//! `cargo bench --bench sink -- --postgres [N]`: the same into Postgres, against the same
//! rows loaded by a bare `COPY` (server from FERRY_BENCH_PG_URL, default the local one).

use std::time::Instant;

use ferry_core::config::PipelineConfig;
use ferry_core::engine::{self, Pipeline, RunOptions};
use ferry_core::registry::Registry;
use ferry_core::sink::Sink;
use ferry_synthetic::SyntheticConfig;
use rusqlite::params;
use tokio_util::sync::CancellationToken;

use ferry_sinks as _;

// The same allocator as the `ferry` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn pipeline_text(n: u64, db: &str) -> String {
    sink_pipeline(n, &format!("type = \"sqlite\"\npath = \"{db}\""))
}

fn sink_pipeline(n: u64, sink: &str) -> String {
    format!(
        "[pipeline]\nname = \"bench\"\nstreams = [\"users\"]\n[source]\nconnector = \"synthetic\"\nrecords = {n}\npage_size = 500\n[sink]\n{sink}\n"
    )
}

fn pg_url() -> String {
    std::env::var("FERRY_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

async fn engine_text(text: &str) -> (f64, engine::RunReport) {
    let config = PipelineConfig::parse(text, "bench").expect("pipeline");
    let mut p = Pipeline::build(config, None).expect("build");
    let t = Instant::now();
    let report = engine::run(&mut p, RunOptions::default(), CancellationToken::new()).await.expect("run");
    (t.elapsed().as_secs_f64(), report)
}

/// CSV field, always quoted.
fn csv(out: &mut String, v: Option<String>) {
    if let Some(v) = v {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    }
}

fn postgres(n: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let tag = std::process::id();
    let (engine_schema, bare_schema) = (format!("bench_engine_{tag}"), format!("bench_bare_{tag}"));
    let (client, conn) = rt.block_on(tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)).expect("Postgres");
    rt.spawn(conn);
    rt.block_on(client.batch_execute(&format!("CREATE SCHEMA {engine_schema}; CREATE SCHEMA {bare_schema};"))).unwrap();
    let sink = |schema: &str| format!("type = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"", pg_url());
    // The bare table: created by the sink itself (same shape), then loaded with COPY.
    rt.block_on(async {
        let config = PipelineConfig::parse(&sink_pipeline(n, &sink(&bare_schema)), "bench").unwrap();
        let registry = Registry::global().unwrap();
        let streams = engine::select_streams(registry, &config, None).unwrap();
        let mut s = ferry_sinks::PostgresSink::connect(&pg_url(), &bare_schema).await.unwrap();
        s.init().await.unwrap();
        s.prepare(&streams).await.unwrap();
    });
    let generator: SyntheticConfig = serde_json::from_value(serde_json::json!({ "records": n })).unwrap();
    // Each phase starts from a checkpoint, so none pays for the dirty pages of the one before.
    let checkpoint = || rt.block_on(client.batch_execute("CHECKPOINT")).expect("CHECKPOINT (needs a superuser)");
    checkpoint();
    let bare = rt.block_on(async {
        use futures::SinkExt;
        let t = Instant::now();
        let sink = client
            .copy_in(&format!(
                "COPY {bare_schema}.synthetic_users (id, email, name, score, active, signup_at, plan, raw_json, sync_batch_id, first_sync_batch_id) FROM STDIN (FORMAT csv)"
            ))
            .await
            .unwrap();
        futures::pin_mut!(sink);
        let mut buf = String::new();
        for i in 0..n {
            let r = generator.user(i);
            csv(&mut buf, r["id"].as_i64().map(|v| v.to_string()));
            for f in [r["email"].as_str(), r["name"].as_str()] {
                buf.push(',');
                csv(&mut buf, f.map(str::to_owned));
            }
            buf.push(',');
            csv(&mut buf, r["score"].as_f64().map(|v| v.to_string()));
            buf.push(',');
            csv(&mut buf, r["active"].as_bool().map(|v| v.to_string()));
            buf.push(',');
            csv(&mut buf, r["signup_at"].as_str().map(str::to_owned));
            buf.push(',');
            csv(&mut buf, r["profile"]["plan"].as_str().map(str::to_owned));
            buf.push(',');
            csv(&mut buf, Some(serde_json::to_string(&r).unwrap()));
            buf.push_str(",\"b\",\"b\"\n");
            if buf.len() > 1 << 20 {
                sink.send(bytes_of(&mut buf)).await.unwrap();
            }
        }
        sink.send(bytes_of(&mut buf)).await.unwrap();
        sink.finish().await.unwrap();
        t.elapsed().as_secs_f64()
    });
    let text = sink_pipeline(n, &sink(&engine_schema));
    checkpoint();
    let (first, r1) = rt.block_on(engine_text(&text));
    checkpoint();
    let (second, r2) = rt.block_on(engine_text(&text));
    assert_eq!(r1.streams["users"].stats.inserted, n);
    assert_eq!(r2.streams["users"].stats.unchanged, n);
    rt.block_on(
        client.batch_execute(&format!("DROP SCHEMA {engine_schema} CASCADE; DROP SCHEMA {bare_schema} CASCADE;")),
    )
    .unwrap();
    let rate = |secs: f64| n as f64 / secs;
    println!("sink benchmark, {n} records, Postgres, release build");
    println!("  bare COPY:                         {:>8.2}s  {:>10.0} rows/s", bare, rate(bare));
    println!("  engine, first run (all inserted):  {:>8.2}s  {:>10.0} rows/s", first, rate(first));
    println!("  engine, re-run (all unchanged):    {:>8.2}s  {:>10.0} rows/s", second, rate(second));
    println!("  ratio engine/COPY:                 {:.2} (target >= 0.75)", bare / first);
    println!("  ratio re-run/first time:           {:.2} (target <= 0.5)", second / first);
}

fn bytes_of(buf: &mut String) -> bytes::Bytes {
    bytes::Bytes::from(std::mem::take(buf).into_bytes())
}

async fn engine_run(n: u64, db: &str) -> (f64, engine::RunReport) {
    let config = PipelineConfig::parse(&pipeline_text(n, db), "bench").expect("pipeline");
    let mut p = Pipeline::build(config, None).expect("build");
    let t = Instant::now();
    let report = engine::run(&mut p, RunOptions::default(), CancellationToken::new()).await.expect("run");
    (t.elapsed().as_secs_f64(), report)
}

fn bare_insert(n: u64, db: &str) -> f64 {
    // Same table shape as the engine's, created by the sink itself.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let config = PipelineConfig::parse(&pipeline_text(n, db), "bench").unwrap();
    let registry = Registry::global().unwrap();
    let streams = engine::select_streams(registry, &config, None).unwrap();
    let mut sink = ferry_sinks::SqliteSink::open(std::path::Path::new(db), std::time::Duration::from_secs(5)).unwrap();
    rt.block_on(async {
        sink.init().await.unwrap();
        sink.prepare(&streams).await.unwrap();
    });
    let generator = SyntheticConfig { records: n, ..serde_json::from_str("{}").unwrap() };
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;").unwrap();
    let t = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO synthetic_users (id, email, name, score, active, signup_at, plan, raw_json, sync_batch_id, first_sync_batch_id, synced_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'b', 'b', 'now', 'now', 'now')",
            )
            .unwrap();
        for i in 0..n {
            let r = generator.user(i);
            let raw = serde_json::to_string(&r).unwrap();
            stmt.execute(params![
                r["id"].as_i64(),
                r["email"].as_str(),
                r["name"].as_str(),
                r["score"].as_f64(),
                r["active"].as_bool(),
                r["signup_at"].as_str(),
                r["profile"]["plan"].as_str(),
                raw
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    t.elapsed().as_secs_f64()
}

fn main() {
    let n: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    if std::env::args().any(|a| a == "--postgres") {
        postgres(n);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bare_db = dir.path().join("bare.db").to_string_lossy().into_owned();
    let engine_db = dir.path().join("engine.db").to_string_lossy().into_owned();

    let bare = bare_insert(n, &bare_db);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (first, r1) = rt.block_on(engine_run(n, &engine_db));
    let (second, r2) = rt.block_on(engine_run(n, &engine_db));
    let u1 = &r1.streams["users"];
    let u2 = &r2.streams["users"];
    assert_eq!(u1.stats.inserted, n, "first run inserts every record");
    assert_eq!(u2.stats.unchanged, n, "second run finds every record unchanged");

    let rate = |secs: f64| n as f64 / secs;
    println!("sink benchmark, {n} records, SQLite, release build");
    println!("  bare rusqlite insert loop (1 txn): {:>8.2}s  {:>10.0} rows/s", bare, rate(bare));
    println!("  engine, first run (all inserted):  {:>8.2}s  {:>10.0} rows/s", first, rate(first));
    println!("  engine, re-run (all unchanged):    {:>8.2}s  {:>10.0} rows/s", second, rate(second));
    println!("  ratio engine/bare:                 {:.2} (target >= 0.5)", bare / first);
    println!("  ratio re-run/first time:           {:.2} (target <= 1.0)", second / first);
}
