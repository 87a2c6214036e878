//! The suite against SQLite.

use std::path::PathBuf;
use std::time::Duration;

use ferry_core::sink::Sink;
use ferry_sinks::SqliteSink;
use proptest::prelude::*;
use serde_json::Value;

use crate::suite::{self, Harness};

struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conformance.db");
        Sqlite { _dir: dir, path }
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }

    fn key_expr(table: &str) -> &'static str {
        match table {
            "odd table-name.v2" => "\"select\" || '/' || \"my key\"",
            "conformance_pairs" => "a || '/' || b",
            _ => "id",
        }
    }
}

impl Harness for Sqlite {
    fn open(&mut self) -> Box<dyn Sink> {
        Box::new(SqliteSink::open(&self.path, Duration::from_secs(5)).unwrap())
    }

    fn rows(&mut self, table: &str) -> Vec<(String, Value)> {
        let conn = self.conn();
        let sql = format!("SELECT {}, raw_json FROM \"{table}\" ORDER BY 1", Self::key_expr(table));
        let mut st = conn.prepare(&sql).unwrap();
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, serde_json::from_str(&r.get::<_, String>(1)?).unwrap())))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn column(&mut self, table: &str, column: &str) -> Vec<(String, Value)> {
        let conn = self.conn();
        let sql = format!("SELECT {}, \"{column}\" FROM \"{table}\" ORDER BY 1", Self::key_expr(table));
        let mut st = conn.prepare(&sql).unwrap();
        st.query_map([], |r| {
            let v = match r.get::<_, rusqlite::types::Value>(1)? {
                rusqlite::types::Value::Null => Value::Null,
                rusqlite::types::Value::Integer(i) => Value::from(i),
                rusqlite::types::Value::Real(f) => Value::from(f),
                rusqlite::types::Value::Text(t) => Value::from(t),
                rusqlite::types::Value::Blob(_) => Value::Null,
            };
            Ok((r.get::<_, String>(0)?, v))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }
}

pub(crate) fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        "[xy]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop::collection::btree_map("[a-c]", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Any sequence of partial records stores exactly their merge; no key is lost.
    #[test]
    fn merge_sequences_store_the_merge(seq in prop::collection::vec(
        (0u8..3, prop::collection::btree_map("[a-e]", value(), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))),
        1..10,
    )) {
        suite::merge_sequence(&mut Sqlite::new(), &seq);
    }
}

conformance!(Sqlite::new(), ready = true);
