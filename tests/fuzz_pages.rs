//! Fuzzing of page parsing: every stream of the Instantly and HubSpot connectors reads
//! pages whose bodies are arbitrary (raw bytes, JSON of any shape, pages of the right shape
//! with values of any type, and those cut short or with a byte changed), served over
//! HTTP on 127.0.0.1 through the real client, and each record it yields is prepared for a
//! table. Nothing may panic, and memory stays bounded.
//!
//! In the suite it runs a few hundred cases. For a long run:
//! `FERRY_FUZZ_SECS=600 cargo test --release --test fuzz_pages -- --nocapture`
//! (it prints the executions and the peak memory).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use ferry_core::config::PipelineConfig;
use ferry_core::descriptor::{Partitioning, StreamDescriptor};
use ferry_core::engine::Pipeline;
use ferry_core::futures::StreamExt as _;
use ferry_core::registry::Registry;
use ferry_core::sink::{Access, SinkRecord};
use ferry_core::source::{Partition, ReadRequest, RunMode, Source};
use ferry_core::window::TimeWindow;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use ferry_hubspot as _;
use ferry_instantly as _;
use ferry_sinks as _;

/// Field names the connectors read, so generated objects reach their code paths.
const FIELDS: &[&str] = &[
    "items",
    "next_starting_after",
    "results",
    "paging",
    "next",
    "after",
    "id",
    "email",
    "campaign",
    "campaign_id",
    "timestamp_created",
    "timestamp_updated",
    "timestamp_email",
    "date",
    "step",
    "variant",
    "sent",
    "properties",
    "createdAt",
    "updatedAt",
    "archived",
    "hs_lastmodifieddate",
    "lastmodifieddate",
    "userId",
    "status",
    "message",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!("2025-10-01T12:00:00.000Z")),
        Just(json!("2099-01-01")),
        Just(json!("")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())),
        ]
    })
}

/// An object that looks like a record: the keys the streams use, with values of any type
/// (mostly strings), and other fields.
fn record() -> impl Strategy<Value = Value> {
    let key = prop_oneof![4 => "[a-z0-9-]{1,12}".prop_map(Value::from), 1 => leaf()];
    (key.clone(), key.clone(), key, prop::collection::vec((prop::sample::select(FIELDS), value()), 0..6)).prop_map(
        |(id, email, date, rest)| {
            let mut m: Map<String, Value> = rest.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            m.insert("id".into(), id);
            m.insert("email".into(), email);
            m.insert("date".into(), date);
            Value::Object(m)
        },
    )
}

/// A body: raw bytes, any JSON, or a page of one of the two APIs' shapes, then perhaps cut
/// short or with one byte changed.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let items = || prop::collection::vec(prop_oneof![value(), record()], 0..5);
    let json_body = prop_oneof![
        value(),
        (items(), prop::option::of("\\PC{0,8}"))
            .prop_map(|(items, next)| json!({"items": items, "next_starting_after": next})),
        (items(), prop::option::of("\\PC{0,8}"))
            .prop_map(|(results, after)| json!({"results": results, "paging": {"next": {"after": after}}})),
        items().prop_map(Value::Array),
    ]
    .prop_map(|v| serde_json::to_vec(&v).unwrap());
    let raw = prop::collection::vec(any::<u8>(), 0..512);
    (prop_oneof![1 => raw, 4 => json_body], any::<u8>(), any::<prop::sample::Index>(), 0..4u8).prop_map(
        |(mut body, byte, at, how)| {
            if !body.is_empty() {
                let i = at.index(body.len());
                match how {
                    0 => body.truncate(i),
                    1 => body[i] = byte,
                    _ => {}
                }
            }
            body
        },
    )
}

/// A server on 127.0.0.1 answering every request with the current body.
struct Server {
    body: Arc<Mutex<Bytes>>,
    base: String,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Self {
        let body = Arc::new(Mutex::new(Bytes::new()));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let current = body.clone();
        let app = axum::Router::new().fallback(move || {
            let current = current.clone();
            async move {
                let b = current.lock().unwrap().clone();
                ([(axum::http::header::CONTENT_TYPE, "application/json")], b)
            }
        });
        rt.spawn(async move { axum::serve(listener, app).await });
        Server { body, base, _rt: rt }
    }
}

/// Each connector's source against `base`: one attempt per request, no rate limit, and
/// HubSpot's properties named (so every request is a page of data).
fn sources(base: &str, dir: &std::path::Path) -> Vec<(Arc<dyn Source>, Vec<&'static StreamDescriptor>)> {
    let retry = "retry = { max_attempts = 1, request_timeout_secs = 5 }";
    let pipelines = [
        format!(
            "[pipeline]\nname = \"fi\"\n[source]\nconnector = \"instantly\"\nbase_url = \"{base}/api/v2\"\napi_key = \"fuzz-key\"\n{retry}\n[source.rate_limits.workspace]\nper_second = 100000\n[source.rate_limits.emails]\nper_second = 100000\n"
        ),
        format!(
            "[pipeline]\nname = \"fh\"\n[source]\nconnector = \"hubspot\"\nbase_url = \"{base}\"\naccess_token = \"fuzz-token\"\n{retry}\nproperties = {{ contacts = [\"email\"], companies = [\"name\"], deals = [\"amount\"] }}\n[source.rate_limits.app]\nper_second = 100000\n[source.rate_limits.search]\nper_second = 100000\n"
        ),
    ];
    pipelines
        .iter()
        .map(|p| {
            let text = format!("{p}[sink]\ntype = \"sqlite\"\npath = \"{}/f.db\"\n", dir.display());
            let config = PipelineConfig::parse(&text, "fuzz.toml").unwrap();
            let pipeline = Pipeline::build_with(config, None, Access::DryRun).unwrap();
            (pipeline.source, pipeline.streams)
        })
        .collect()
}

/// Reads up to three pages of `stream` and prepares every record; returns the pages read
/// and the records prepared.
async fn read_some(source: &Arc<dyn Source>, stream: &'static StreamDescriptor) -> (u64, u64) {
    let partition = match stream.partitioning {
        Partitioning::Parent { .. } => {
            let campaign = json!({"id": "c1"}).as_object().cloned().unwrap();
            let parts = source.partitions_from(stream, &[campaign]).await.unwrap_or_default();
            parts.into_iter().next().unwrap_or_else(Partition::whole)
        }
        _ => Partition::whole(),
    };
    let request = ReadRequest {
        stream,
        partition,
        state: None,
        mode: RunMode::Full,
        window: TimeWindow::default(),
        now: chrono::Utc::now(),
    };
    let mut pages = source.read(request).take(3);
    let (mut read, mut records) = (0, 0);
    while let Some(page) = pages.next().await {
        let Ok(page) = page else { break };
        read += 1;
        for record in page.records {
            let prepared = SinkRecord::new(stream, record);
            records += u64::from(prepared.refusal().is_none());
        }
    }
    (read, records)
}

/// Peak resident memory of this process (kB).
fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:")).map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn pages_of_every_endpoint_never_panic() {
    let secs: u64 = std::env::var("FERRY_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sources = rt.block_on(async { sources(&server.base, dir.path()) });
    assert!(Registry::global().unwrap().streams_of("instantly").len() >= 7);
    let streams: Vec<(Arc<dyn Source>, &'static StreamDescriptor)> =
        sources.iter().flat_map(|(src, streams)| streams.iter().map(|s| (src.clone(), *s))).collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let executions = std::cell::Cell::new(0u64);
    let stored = std::cell::Cell::new((0u64, 0u64));
    loop {
        for (source, stream) in &streams {
            let mut runner = TestRunner::new(Config { cases: 32, failure_persistence: None, ..Config::default() });
            let result = runner.run(&body(), |b| {
                *server.body.lock().unwrap() = Bytes::from(b);
                let (pages, records) = rt.block_on(read_some(source, stream));
                let (p, r) = stored.get();
                stored.set((p + pages, r + records));
                executions.set(executions.get() + 1);
                Ok(())
            });
            if let Err(e) = result {
                panic!("{} ({}): {e}", stream.name, stream.connector);
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let peak = peak_kb();
    let (executions, (pages, records)) = (executions.get(), stored.get());
    eprintln!(
        "{executions} executions over {} streams: {pages} pages parsed, {records} records storable; peak RSS {peak} kB",
        streams.len()
    );
    // The generator reaches the parsers: some pages parse and some records could be stored.
    assert!(pages > 0 && records > 0, "{pages} pages, {records} records");
    assert!(peak < 512 * 1024, "peak RSS {peak} kB");
}
