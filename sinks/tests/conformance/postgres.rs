//! The suite against Postgres (127.0.0.1:5432), each test in its own schema, dropped after.
//! Set FERRY_TEST_PG_URL to use another server.

use std::sync::atomic::{AtomicU32, Ordering};

use ferry_core::sink::Sink;
use ferry_sinks::PostgresSink;
use proptest::prelude::*;
use serde_json::Value;

use crate::suite::{self, Harness};

pub(crate) fn url() -> String {
    std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

/// Whether Postgres answers at [`url`]. When it does not, the Postgres cases are skipped
/// with one line on the terminal, or fail when `FERRY_REQUIRE_POSTGRES` is set (as
/// `.ci/run` does), so the SQLite and JSONL cases still run on a machine without Postgres.
fn available() -> bool {
    static UP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let up = *UP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let url = url();
            let connect = tokio_postgres::connect(&url, tokio_postgres::NoTls);
            matches!(tokio::time::timeout(std::time::Duration::from_secs(3), connect).await, Ok(Ok(_)))
        })
    });
    if !up {
        assert!(
            std::env::var_os("FERRY_REQUIRE_POSTGRES").is_none(),
            "Postgres is not available at {}, and FERRY_REQUIRE_POSTGRES is set",
            url()
        );
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            // Straight to the terminal: the test harness would swallow `eprintln!`.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "note: no Postgres at {}: the Postgres conformance cases are skipped (set FERRY_REQUIRE_POSTGRES=1 to make that a failure)",
                url()
            );
        });
    }
    up
}

static N: AtomicU32 = AtomicU32::new(0);

/// Runs `f` with a fresh client, inside or outside a runtime.
fn with_client<T>(f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let run = async {
        let (client, conn) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
            .await
            .expect("Postgres on 127.0.0.1:5432 (see .ci/run)");
        let task = tokio::spawn(conn);
        let out = f(&client).await;
        drop(client);
        let _ = task.await;
        out
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(run)),
        Err(_) => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run),
    }
}

pub(crate) struct Pg {
    pub schema: String,
}

impl Pg {
    pub(crate) fn new() -> Self {
        let schema = format!("ferry_conf_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let s = schema.clone();
        with_client(async move |c| c.batch_execute(&format!("CREATE SCHEMA \"{s}\"")).await.unwrap());
        Pg { schema }
    }

    fn key_expr(table: &str) -> &'static str {
        match table {
            "odd table-name.v2" => "\"select\" || '/' || \"my key\"::text",
            "conformance_pairs" => "a || '/' || b",
            _ => "id",
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let s = self.schema.clone();
        with_client(async move |c| c.batch_execute(&format!("DROP SCHEMA \"{s}\" CASCADE")).await.unwrap());
    }
}

impl Harness for Pg {
    fn open(&mut self) -> Box<dyn Sink> {
        let schema = self.schema.clone();
        let h = tokio::runtime::Handle::current();
        let sink = tokio::task::block_in_place(|| h.block_on(PostgresSink::connect(&url(), &schema))).unwrap();
        Box::new(sink)
    }

    fn rows(&mut self, table: &str) -> Vec<(String, Value)> {
        let sql = format!("SELECT {}, raw_json FROM \"{}\".\"{table}\" ORDER BY 1", Self::key_expr(table), self.schema);
        with_client(async move |c| {
            c.query(&sql, &[]).await.unwrap().iter().map(|r| (r.get::<_, String>(0), r.get::<_, Value>(1))).collect()
        })
    }

    fn column(&mut self, table: &str, column: &str) -> Vec<(String, Value)> {
        let sql = format!(
            "SELECT {}, to_jsonb(\"{column}\") FROM \"{}\".\"{table}\" ORDER BY 1",
            Self::key_expr(table),
            self.schema
        );
        with_client(async move |c| {
            c.query(&sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, Option<Value>>(1).unwrap_or(Value::Null)))
                .collect()
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn merge_sequences_store_the_merge(seq in prop::collection::vec(
        (0u8..3, prop::collection::btree_map("[a-e]", crate::sqlite::value(), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))),
        1..8,
    )) {
        if !available() {
            return Ok(());
        }
        suite::merge_sequence(&mut Pg::new(), &seq);
    }
}

/// A batch whose checkpoint the server refuses (a NUL character in the cursor, which
/// `jsonb` cannot hold) stores nothing, neither its rows nor its checkpoint: on the COPY
/// path (new keys, the checkpoint sent with the COMMIT) and on the merge path (stored
/// keys); the sink's next batch is written normally, outside the failed transaction.
#[test]
fn a_batch_whose_checkpoint_fails_stores_nothing() {
    use ferry_core::sink::{SinkRecord, StateUpdate, WriteBatch};
    use ferry_core::source::Checkpoint;
    use serde_json::json;
    if !available() {
        return;
    }
    let mut h = Pg::new();
    suite::rt().block_on(async {
        let mut sink = suite::prepared(&mut h, &[&suite::ITEMS]).await;
        let batch = |ids: std::ops::Range<u32>, count: u32, cursor: Value| WriteBatch {
            pipeline: "conf".into(),
            batch_id: format!("b{count}"),
            stream: &suite::ITEMS,
            records: ids
                .map(|i| {
                    let r = json!({"id": format!("k{i:02}"), "count": count});
                    SinkRecord::new(&suite::ITEMS, r.as_object().unwrap().clone())
                })
                .collect(),
            state: Some(StateUpdate { partition: String::new(), checkpoint: Checkpoint::Set(cursor) }),
            logs: Vec::new(),
            dry_run: false,
        };
        let cursor = async |sink: &mut Box<dyn Sink>| sink.load_state("conf").await.unwrap()[0].cursor.clone();
        sink.write(batch(0..10, 1, json!({"n": 1}))).await.unwrap();
        // New keys (binary COPY), then stored keys with changes (compare and update).
        for (ids, count) in [(10..20, 2), (0..10, 3)] {
            let failed = sink.write(batch(ids, count, json!({"n": "a\u{0}b"}))).await;
            let e = failed.expect_err("a cursor jsonb cannot hold fails the batch").to_string();
            assert!(e.contains("checkpoint"), "{e}");
            let rows = h.rows("conformance_items");
            assert_eq!(rows.len(), 10, "{rows:?}");
            assert!(rows.iter().all(|(_, v)| v["count"] == 1), "{rows:?}");
            assert_eq!(cursor(&mut sink).await, json!({"n": 1}));
        }
        let o = sink.write(batch(5..20, 4, json!({"n": 4}))).await.unwrap();
        assert_eq!((o.stats.inserted, o.stats.updated), (10, 5));
        assert_eq!(cursor(&mut sink).await, json!({"n": 4}));
        assert_eq!(h.rows("conformance_items").len(), 20);
    });
}

conformance!(Pg::new(), ready = available());
