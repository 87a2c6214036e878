//! The behaviours, written once against `Harness`.

use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::record::{Record, merge};
use ferry_core::sink::{Sink, SinkRecord, StateUpdate, WriteBatch, WriteOutcome};
use ferry_core::source::Checkpoint;
use serde_json::{Value, json};

/// How the suite reaches a sink and reads back what it stored.
/// One `#[test]` per case of the suite for a harness, so a case added here runs against
/// every sink: `conformance!(Sqlite::new(), ready = true);`. `ready` is checked first (the
/// Postgres cases skip without a server). An `append_only` sink (JSONL) runs the cases
/// that do not merge.
macro_rules! conformance {
    ($harness:expr, ready = $ready:expr) => {
        conformance!($harness, ready = $ready, append_only);
        conformance!(@cases $harness, $ready;
            same_key_in_one_batch, merge_semantics, unchanged_not_rewritten, new_typed_column,
            mixed_batches, composite_keys_never_collide);
    };
    ($harness:expr, ready = $ready:expr, append_only) => {
        conformance!(@cases $harness, $ready;
            failed_record_isolated, batches_of_500_with_state, dry_run_writes_nothing,
            odd_names_quoted, nul_refused_alone);
    };
    (@cases $harness:expr, $ready:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                if !$ready {
                    return;
                }
                $crate::suite::$case(&mut $harness);
            }
        )*
    };
}

pub(crate) trait Harness {
    /// A fresh, empty destination.
    fn open(&mut self) -> Box<dyn Sink>;
    /// Stored rows of a table as (key text, raw JSON), sorted by key.
    fn rows(&mut self, table: &str) -> Vec<(String, Value)>;
    /// A typed column's values by key text.
    fn column(&mut self, table: &str, column: &str) -> Vec<(String, Value)>;
    /// Whether the sink merges upserts (JSONL appends instead).
    fn merges(&self) -> bool {
        true
    }
}

pub(crate) static ITEMS: StreamDescriptor = StreamDescriptor {
    connector: "conformance",
    name: "items",
    table: "conformance_items",
    primary_key: &["id"],
    columns: &[
        Column::key("id", SqlType::Text, "id"),
        Column::new("amount", SqlType::Real, "amount"),
        Column::new("count", SqlType::Integer, "count"),
        Column::new("city", SqlType::Text, "address.city"),
    ],
    mode: SyncMode::FullRefresh,
    partitioning: Partitioning::None,
    default_lookback_days: 0,
    time_flags: TimeFlagSupport::NONE,
    description: "conformance items",
    legacy_key: &[],
};

/// The same table, one typed column more (a descriptor that gained a column).
pub(crate) static ITEMS_V2: StreamDescriptor = StreamDescriptor {
    columns: &[
        Column::key("id", SqlType::Text, "id"),
        Column::new("amount", SqlType::Real, "amount"),
        Column::new("count", SqlType::Integer, "count"),
        Column::new("city", SqlType::Text, "address.city"),
        Column::new("zip", SqlType::Text, "address.zip"),
    ],
    ..ITEMS
};

/// A key of two text columns, whose values may hold any character.
pub(crate) static PAIRS: StreamDescriptor = StreamDescriptor {
    connector: "conformance",
    name: "pairs",
    table: "conformance_pairs",
    primary_key: &["a", "b"],
    columns: &[
        Column::key("a", SqlType::Text, "a"),
        Column::key("b", SqlType::Text, "b"),
        Column::new("c", SqlType::Integer, "c"),
    ],
    ..ITEMS
};

/// Odd names that must be quoted, and a composite key.
pub(crate) static ODD: StreamDescriptor = StreamDescriptor {
    connector: "conformance",
    name: "odd",
    table: "odd table-name.v2",
    primary_key: &["select", "my key"],
    columns: &[
        Column::key("select", SqlType::Text, "a"),
        Column::key("my key", SqlType::Integer, "b"),
        Column::new("from", SqlType::Text, "c"),
    ],
    mode: SyncMode::FullRefresh,
    partitioning: Partitioning::None,
    default_lookback_days: 0,
    time_flags: TimeFlagSupport::NONE,
    description: "odd names",
    legacy_key: &[],
};

fn rec(v: Value) -> Record {
    v.as_object().expect("object").clone()
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

pub(crate) async fn write(
    sink: &mut Box<dyn Sink>,
    stream: &'static StreamDescriptor,
    batch: &str,
    records: Vec<Record>,
    checkpoint: Option<Checkpoint>,
) -> WriteOutcome {
    sink.write(WriteBatch {
        pipeline: "conf".into(),
        batch_id: batch.into(),
        stream,
        records: records.into_iter().map(|r| SinkRecord::new(stream, r)).collect(),
        state: checkpoint.map(|c| StateUpdate { partition: String::new(), checkpoint: c }),
        logs: Vec::new(),
        dry_run: false,
    })
    .await
    .expect("write")
}

pub(crate) async fn prepared(h: &mut impl Harness, streams: &[&'static StreamDescriptor]) -> Box<dyn Sink> {
    let mut sink = h.open();
    sink.init().await.unwrap();
    sink.prepare(streams).await.unwrap();
    sink
}

/// Deep merge through the sink: keys only in old rows are kept, nested too; explicit
/// null stored; arrays replaced; a record merged into itself is unchanged.
pub(crate) fn merge_semantics(h: &mut impl Harness) {
    if !h.merges() {
        return;
    }
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let first =
            json!({"id": "a", "amount": 1.5, "address": {"city": "Oslo", "zip": "0150"}, "tags": [1, 2], "note": "x"});
        let o = write(&mut sink, &ITEMS, "b1", vec![rec(first.clone())], None).await;
        assert_eq!(o.stats.inserted, 1);
        let o = write(&mut sink, &ITEMS, "b2", vec![rec(first.clone())], None).await;
        assert_eq!((o.stats.unchanged, o.stats.updated), (1, 0), "same record is unchanged");
        let second = json!({"id": "a", "address": {"city": "Bergen"}, "tags": [3], "note": null});
        let o = write(&mut sink, &ITEMS, "b3", vec![rec(second.clone())], None).await;
        assert_eq!(o.stats.updated, 1);
        let mut expected = first.clone();
        merge(&mut expected, second);
        assert_eq!(
            expected,
            json!({"id": "a", "amount": 1.5, "address": {"city": "Bergen", "zip": "0150"}, "tags": [3], "note": null})
        );
        assert_eq!(h.rows("conformance_items"), vec![("a".to_owned(), expected)]);
        assert_eq!(h.column("conformance_items", "city"), vec![("a".to_owned(), json!("Bergen"))]);
        assert_eq!(h.column("conformance_items", "amount"), vec![("a".to_owned(), json!(1.5))]);
    });
}

/// Records of one key in one batch merge in their order, whether the key is new or
/// stored (and whether the first of them matches the stored row or not).
pub(crate) fn same_key_in_one_batch(h: &mut impl Harness) {
    if !h.merges() {
        return;
    }
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let stored = json!({"id": "old", "count": 1, "address": {"city": "Oslo"}});
        write(&mut sink, &ITEMS, "b1", vec![rec(stored.clone())], None).await;
        let batch = vec![
            rec(json!({"id": "new", "count": 1})),
            rec(stored.clone()),
            rec(json!({"id": "new", "address": {"city": "Rome"}})),
            rec(json!({"id": "old", "address": {"zip": "0150"}})),
            rec(json!({"id": "new", "count": 2})),
            rec(json!({"id": "old", "count": 3})),
        ];
        let o = write(&mut sink, &ITEMS, "b2", batch, None).await;
        assert_eq!(o.stats.failed, 0);
        assert_eq!(
            h.rows("conformance_items"),
            vec![
                ("new".to_owned(), json!({"id": "new", "count": 2, "address": {"city": "Rome"}})),
                ("old".to_owned(), json!({"id": "old", "count": 3, "address": {"city": "Oslo", "zip": "0150"}})),
            ]
        );
        assert_eq!(
            h.column("conformance_items", "count"),
            vec![("new".to_owned(), json!(2)), ("old".to_owned(), json!(3))]
        );
        assert_eq!(
            h.column("conformance_items", "city"),
            vec![("new".to_owned(), json!("Rome")), ("old".to_owned(), json!("Oslo"))]
        );
        // And a batch repeating the stored rows changes nothing.
        let again = write(
            &mut sink,
            &ITEMS,
            "b3",
            vec![rec(json!({"id": "old", "count": 3})), rec(json!({"id": "old", "count": 3}))],
            None,
        )
        .await;
        assert_eq!((again.stats.updated, again.stats.inserted), (0, 0));
    });
}

/// A sequence of partial records lands as the in-memory merge of them, key by key.
pub(crate) fn merge_sequence(h: &mut impl Harness, seq: &[(u8, Value)]) {
    if !h.merges() {
        return;
    }
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let mut expected: std::collections::BTreeMap<String, Value> = Default::default();
        for (i, (k, v)) in seq.iter().enumerate() {
            let id = format!("k{k}");
            let mut r = v.as_object().cloned().unwrap_or_default();
            r.insert("id".into(), json!(id));
            let o = write(&mut sink, &ITEMS, &format!("b{i}"), vec![r.clone()], None).await;
            let entry = expected.entry(id).or_insert_with(|| json!({}));
            let changed = merge(entry, Value::Object(r));
            let total = o.stats.inserted + o.stats.updated + o.stats.unchanged + o.stats.failed;
            assert_eq!(total, 1);
            if o.stats.failed == 0 {
                assert_eq!(o.stats.unchanged == 1, !changed && o.stats.inserted == 0);
            }
        }
        let stored: std::collections::BTreeMap<String, Value> = h.rows("conformance_items").into_iter().collect();
        for (k, v) in &stored {
            assert_eq!(Some(v), expected.get(k), "row {k}");
        }
    });
}

/// Unchanged rows are not rewritten: their batch ids stay.
pub(crate) fn unchanged_not_rewritten(h: &mut impl Harness) {
    if !h.merges() {
        return;
    }
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let records: Vec<Record> = (0..50).map(|i| rec(json!({"id": format!("r{i}"), "count": i}))).collect();
        write(&mut sink, &ITEMS, "first", records.clone(), None).await;
        let mut changed = records.clone();
        changed[7].insert("count".into(), json!(700));
        let o = write(&mut sink, &ITEMS, "second", changed, None).await;
        assert_eq!((o.stats.updated, o.stats.unchanged), (1, 49));
        let batches = h.column("conformance_items", "sync_batch_id");
        let second: Vec<&String> = batches.iter().filter(|(_, b)| b == "second").map(|(k, _)| k).collect();
        assert_eq!(second, vec!["r7"]);
        let firsts = h.column("conformance_items", "first_sync_batch_id");
        assert!(firsts.iter().all(|(_, b)| b == "first"));
    });
}

/// A bad record (missing key, wrong type) is counted and does not stop its batch.
pub(crate) fn failed_record_isolated(h: &mut impl Harness) {
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let mut records: Vec<Record> = (0..10).map(|i| rec(json!({"id": format!("r{i}"), "count": i}))).collect();
        records.insert(3, rec(json!({"count": 1})));
        // Every sink refuses the same records, the JSONL one included.
        records.insert(6, rec(json!({"id": "bad-type", "count": "eleven"})));
        let o = write(&mut sink, &ITEMS, "b", records, Some(Checkpoint::Set(json!({"page": 1})))).await;
        assert_eq!(o.stats.failed, 2);
        assert_eq!(o.stats.inserted, 10);
        assert_eq!(o.failures.len(), 2);
        assert!(o.failures.iter().any(|f| f.key == "bad-type" && f.reason.contains("count")));
        assert_eq!(h.rows("conformance_items").len(), 10);
        let state = sink.load_state("conf").await.unwrap();
        assert_eq!(state.len(), 1, "the batch's checkpoint committed with it");
        assert_eq!(state[0].cursor, json!({"page": 1}));
    });
}

/// A record holding a NUL character is refused alone, in every sink, with the same
/// reason; its neighbours land.
pub(crate) fn nul_refused_alone(h: &mut impl Harness) {
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let records = vec![
            rec(json!({"id": "before", "count": 1})),
            rec(json!({"id": "nul", "note": "a\u{0}b"})),
            rec(json!({"id": "after", "count": 2, "path": "C:\\u0000 is text, not a NUL"})),
        ];
        let o = write(&mut sink, &ITEMS, "b", records, None).await;
        assert_eq!((o.stats.inserted, o.stats.failed), (2, 1), "{o:?}");
        assert_eq!(o.failures[0].key, "nul");
        assert!(o.failures[0].reason.contains("NUL"), "{:?}", o.failures);
        let keys: Vec<String> = h.rows("conformance_items").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["after", "before"]);
    });
}

/// Full 500-record batches, with state saved and then cleared.
pub(crate) fn batches_of_500_with_state(h: &mut impl Harness) {
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        for b in 0..3 {
            let records: Vec<Record> =
                (0..500).map(|i| rec(json!({"id": format!("{b}-{i}"), "amount": i as f64 / 3.0}))).collect();
            let o = write(&mut sink, &ITEMS, &format!("b{b}"), records, Some(Checkpoint::Set(json!({"b": b})))).await;
            assert_eq!(o.stats.inserted, 500);
            let state = sink.load_state("conf").await.unwrap();
            assert_eq!(state[0].cursor, json!({"b": b}));
        }
        assert_eq!(h.rows("conformance_items").len(), 1500);
        write(&mut sink, &ITEMS, "done", Vec::new(), Some(Checkpoint::Clear)).await;
        assert!(sink.load_state("conf").await.unwrap().is_empty());
    });
}

/// A dry run reports counts and stores neither rows nor state.
pub(crate) fn dry_run_writes_nothing(h: &mut impl Harness) {
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let o = sink
            .write(WriteBatch {
                pipeline: "conf".into(),
                batch_id: "dry".into(),
                stream: &ITEMS,
                records: vec![SinkRecord::new(&ITEMS, rec(json!({"id": "x"})))],
                state: Some(StateUpdate { partition: String::new(), checkpoint: Checkpoint::Set(json!(1)) }),
                logs: Vec::new(),
                dry_run: true,
            })
            .await
            .unwrap();
        assert_eq!(o.stats.inserted, 1);
        assert!(h.rows("conformance_items").is_empty());
        assert!(sink.load_state("conf").await.unwrap().is_empty());
    });
}

/// A typed column added to the descriptor is added to the existing table in place.
pub(crate) fn new_typed_column(h: &mut impl Harness) {
    if !h.merges() {
        return;
    }
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        write(&mut sink, &ITEMS, "b1", vec![rec(json!({"id": "a", "address": {"zip": "0150"}}))], None).await;
        drop(sink);
        let mut sink = prepared(h, &[&ITEMS_V2]).await;
        write(&mut sink, &ITEMS_V2, "b2", vec![rec(json!({"id": "b", "address": {"zip": "5003"}}))], None).await;
        write(&mut sink, &ITEMS_V2, "b3", vec![rec(json!({"id": "a", "count": 2}))], None).await;
        let zips = h.column("conformance_items", "zip");
        assert_eq!(zips, vec![("a".to_owned(), json!("0150")), ("b".to_owned(), json!("5003"))]);
    });
}

/// Table and column names that need quoting work.
pub(crate) fn odd_names_quoted(h: &mut impl Harness) {
    rt().block_on(async {
        let mut sink = prepared(h, &[&ODD]).await;
        let o = write(
            &mut sink,
            &ODD,
            "b",
            vec![rec(json!({"a": "x", "b": 1, "c": "one"})), rec(json!({"a": "x", "b": 2, "c": "two"}))],
            None,
        )
        .await;
        assert_eq!(o.stats.inserted, 2);
        let o = write(&mut sink, &ODD, "b2", vec![rec(json!({"a": "x", "b": 2, "c": "two"}))], None).await;
        if h.merges() {
            assert_eq!(o.stats.unchanged, 1);
        }
        assert_eq!(h.rows("odd table-name.v2").len(), if h.merges() { 2 } else { 3 });
    });
}

/// Batches that mix new and stored keys, in every order a sink may meet them (mostly new
/// after mostly new, mostly stored after mostly stored, and the switches between): each
/// key is counted once, as inserted, updated or unchanged, and the stored rows are the
/// merge of everything written.
pub(crate) fn mixed_batches(h: &mut impl Harness) {
    if !h.merges() {
        return;
    }
    rt().block_on(async {
        let mut sink = prepared(h, &[&ITEMS]).await;
        let batch = |ids: std::ops::Range<u32>, version: u32| -> Vec<Record> {
            ids.map(|i| rec(json!({"id": format!("k{i:03}"), "count": version, "keep": format!("v{version}")})))
                .collect()
        };
        let o = write(&mut sink, &ITEMS, "b1", batch(0..10, 1), None).await;
        assert_eq!((o.stats.inserted, o.stats.updated, o.stats.unchanged), (10, 0, 0));
        // Mostly new, with some stored (changed) keys among them.
        let o = write(&mut sink, &ITEMS, "b2", batch(6..20, 2), None).await;
        assert_eq!((o.stats.inserted, o.stats.updated, o.stats.unchanged), (10, 4, 0));
        // Mostly stored and unchanged, with a few new keys.
        let mut b3 = batch(6..20, 2);
        b3.extend(batch(20..23, 3));
        let o = write(&mut sink, &ITEMS, "b3", b3, None).await;
        assert_eq!((o.stats.inserted, o.stats.updated, o.stats.unchanged), (3, 0, 14));
        // Mostly stored, some changed, a record of another shape merging in.
        let mut b4 = vec![rec(json!({"id": "k000", "extra": true}))];
        b4.extend(batch(1..6, 1));
        b4.extend(batch(23..25, 4));
        let o = write(&mut sink, &ITEMS, "b4", b4, None).await;
        assert_eq!((o.stats.inserted, o.stats.updated, o.stats.unchanged), (2, 1, 5));
        let rows = h.rows("conformance_items");
        assert_eq!(rows.len(), 25);
        assert_eq!(rows[0], ("k000".to_owned(), json!({"id": "k000", "count": 1, "keep": "v1", "extra": true})));
        assert_eq!(rows[6], ("k006".to_owned(), json!({"id": "k006", "count": 2, "keep": "v2"})));
        assert_eq!(rows[24], ("k024".to_owned(), json!({"id": "k024", "count": 4, "keep": "v4"})));
    });
}

/// Composite keys are compared as values, never as joined text: ("x/y", "z") and
/// ("x", "y/z") are two rows, whatever separator a sink might join them with.
pub(crate) fn composite_keys_never_collide(h: &mut impl Harness) {
    if !h.merges() {
        return;
    }
    rt().block_on(async {
        let mut sink = prepared(h, &[&PAIRS]).await;
        let batch = || {
            vec![
                rec(json!({"a": "x/y", "b": "z", "c": 1})),
                rec(json!({"a": "x", "b": "y/z", "c": 2})),
                rec(json!({"a": "p\u{1f}q", "b": "r", "c": 3})),
                rec(json!({"a": "p", "b": "q\u{1f}r", "c": 4})),
                rec(json!({"a": "1:", "b": "2", "c": 5})),
                rec(json!({"a": "1", "b": ":2", "c": 6})),
            ]
        };
        let o = write(&mut sink, &PAIRS, "b1", batch(), None).await;
        assert_eq!((o.stats.inserted, o.stats.updated, o.stats.unchanged), (6, 0, 0));
        let o = write(&mut sink, &PAIRS, "b2", batch(), None).await;
        assert_eq!((o.stats.inserted, o.stats.updated, o.stats.unchanged), (0, 0, 6));
        let mut cs: Vec<i64> = h.rows("conformance_pairs").iter().map(|(_, v)| v["c"].as_i64().unwrap()).collect();
        cs.sort();
        assert_eq!(cs, vec![1, 2, 3, 4, 5, 6]);
    });
}
