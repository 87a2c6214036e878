//! A batch into its stream table: keys looked up in one statement, records merged into
//! the stored JSON, only what changed written; and the checkpoint and log rows that
//! commit with it.

use std::collections::HashMap;

use ferry_core::descriptor::StreamDescriptor;
use ferry_core::ident::quote;
use ferry_core::record::merge_objects;
use ferry_core::sink::{LogRow, RecordFailure, SinkRecord, WriteOutcome};
use ferry_core::source::Checkpoint;
use ferry_core::typed::{self, TypedValue};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Transaction, params};
use serde_json::{Map, Value};

use super::ts_text;

pub(super) fn to_sql(v: TypedValue) -> SqlValue {
    match v {
        TypedValue::Null => SqlValue::Null,
        TypedValue::Text(s) => SqlValue::Text(s),
        TypedValue::Integer(i) => SqlValue::Integer(i),
        TypedValue::Real(f) => SqlValue::Real(f),
        TypedValue::Bool(b) => SqlValue::Integer(i64::from(b)),
    }
}

/// The statements one stream's upsert needs.
struct StreamSql {
    insert: String,
    update: String,
    /// Columns selected by the existence lookup: key columns, rowid, raw_json, values.
    lookup_head: String,
    /// raw_json and the typed values of one row, by rowid.
    by_rowid: String,
    key_count: usize,
    value_count: usize,
}

fn stream_sql(s: &StreamDescriptor) -> StreamSql {
    let t = quote(s.table);
    let value_cols: Vec<&str> = typed::value_columns(s).map(|c| c.name).collect();
    let mut select_cols: Vec<String> = s.primary_key.iter().map(|k| quote(k)).collect();
    select_cols.push("rowid".to_owned());
    select_cols.push("raw_json".to_owned());
    select_cols.extend(value_cols.iter().map(|c| quote(c)));
    let lookup_head = format!("SELECT {} FROM {t} WHERE ", select_cols.join(", "));
    let mut insert_cols: Vec<String> = s.primary_key.iter().map(|k| quote(k)).collect();
    insert_cols.extend(value_cols.iter().map(|c| quote(c)));
    for c in ["raw_json", "sync_batch_id", "first_sync_batch_id", "synced_at", "created_at", "updated_at"] {
        insert_cols.push(c.to_owned());
    }
    let placeholders: Vec<String> = (1..=insert_cols.len()).map(|i| format!("?{i}")).collect();
    let insert = format!("INSERT INTO {t} ({}) VALUES ({})", insert_cols.join(", "), placeholders.join(", "));
    let mut sets: Vec<String> =
        value_cols.iter().enumerate().map(|(i, c)| format!("{} = ?{}", quote(c), i + 1)).collect();
    let n = value_cols.len();
    sets.push(format!("raw_json = ?{}", n + 1));
    sets.push(format!("sync_batch_id = ?{}", n + 2));
    sets.push(format!("synced_at = ?{}", n + 3));
    sets.push(format!("updated_at = ?{}", n + 3));
    let update = format!("UPDATE {t} SET {} WHERE rowid = ?{}", sets.join(", "), n + 4);
    let by_rowid = format!("SELECT {} FROM {t} WHERE rowid = ?1", select_cols[s.primary_key.len() + 1..].join(", "));
    StreamSql { insert, update, lookup_head, by_rowid, key_count: s.primary_key.len(), value_count: value_cols.len() }
}

impl StreamSql {
    /// `... WHERE k IN (?1, ..., ?n)` or, for composite keys, `(a, b) IN (VALUES (?, ?), ...)`.
    fn lookup(&self, s: &StreamDescriptor, rows: usize) -> String {
        let k = self.key_count;
        let mut sql = self.lookup_head.clone();
        if k == 1 {
            sql.push_str(&quote(s.primary_key[0]));
            sql.push_str(" IN (");
            for i in 0..rows {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("?{}", i + 1));
            }
            sql.push(')');
        } else {
            let cols: Vec<String> = s.primary_key.iter().map(|c| quote(c)).collect();
            sql.push_str(&format!("({}) IN (VALUES ", cols.join(", ")));
            for i in 0..rows {
                if i > 0 {
                    sql.push_str(", ");
                }
                let ph: Vec<String> = (0..k).map(|j| format!("?{}", i * k + j + 1)).collect();
                sql.push_str(&format!("({})", ph.join(", ")));
            }
            sql.push(')');
        }
        sql
    }
}

/// Binds a typed value without copying it.
struct Bind<'a>(&'a TypedValue);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self.0 {
            TypedValue::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            TypedValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            TypedValue::Integer(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
            TypedValue::Real(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
            TypedValue::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
        })
    }
}

/// The text form both sides of the existence lookup agree on for a key: a single part as
/// it is, the parts of a composite key each prefixed by its length, so no two keys share
/// one (joined with a separator, ("a/b", "c") and ("a", "b/c") would, whatever the
/// separator).
fn key_string(parts: impl Iterator<Item = String>) -> String {
    use std::fmt::Write as _;
    let mut parts = parts.peekable();
    let first = parts.next().unwrap_or_default();
    if parts.peek().is_none() {
        return first;
    }
    let mut out = String::new();
    for p in std::iter::once(first).chain(parts) {
        let _ = write!(out, "{}:", p.len());
        out.push_str(&p);
    }
    out
}

fn typed_text(v: &TypedValue) -> String {
    match v {
        TypedValue::Bool(b) => i64::from(*b).to_string(),
        other => other.to_key_text(),
    }
}

fn sql_text(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "null".into(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(f) => f.to_string(),
        SqlValue::Text(t) => t.clone(),
        SqlValue::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// A stored row the batch touches.
struct Existing {
    rowid: i64,
    /// The stored raw_json bytes and typed columns. `None` while the stored text is the
    /// text of the batch's first record of this key (the common, unchanged case, and the
    /// row just inserted): nothing is copied out of SQLite for it.
    stored: Option<(Vec<u8>, Vec<SqlValue>)>,
}

/// Reads a row's raw_json bytes and typed columns.
fn read_stored(
    row: &rusqlite::Row<'_>,
    raw_at: usize,
    value_count: usize,
) -> rusqlite::Result<(Vec<u8>, Vec<SqlValue>)> {
    let raw = match row.get_ref(raw_at)? {
        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => t.to_vec(),
        _ => Vec::new(),
    };
    let mut columns = Vec::with_capacity(value_count);
    for i in 0..value_count {
        columns.push(row.get::<_, SqlValue>(raw_at + 1 + i)?);
    }
    Ok((raw, columns))
}

/// Finds which keys of the batch already exist, in one query per 500 keys. A stored
/// row whose raw_json equals `first[key]` (read as bytes: no UTF-8 validation) is only
/// marked as such.
fn lookup_existing(
    tx: &Transaction<'_>,
    s: &StreamDescriptor,
    sql: &StreamSql,
    keys: &[&[TypedValue]],
    first: &HashMap<&str, &str>,
) -> rusqlite::Result<HashMap<String, Existing>> {
    let mut found = HashMap::with_capacity(keys.len());
    let k = sql.key_count;
    for chunk in keys.chunks(500) {
        let mut stmt = tx.prepare_cached(&sql.lookup(s, chunk.len()))?;
        let binds: Vec<Bind<'_>> = chunk.iter().flat_map(|key| key.iter().map(Bind)).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(binds.iter()))?;
        while let Some(row) = rows.next()? {
            let mut key_parts = Vec::with_capacity(k);
            for i in 0..k {
                key_parts.push(sql_text(&row.get::<_, SqlValue>(i)?));
            }
            let key = key_string(key_parts.into_iter());
            let same = match row.get_ref(k + 1)? {
                rusqlite::types::ValueRef::Text(t) => first.get(key.as_str()).is_some_and(|f| f.as_bytes() == t),
                _ => false,
            };
            let stored = if same { None } else { Some(read_stored(row, k + 1, sql.value_count)?) };
            found.insert(key, Existing { rowid: row.get(k)?, stored });
        }
    }
    Ok(found)
}

fn to_json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Upserts a batch's records (merge, unchanged detection, failures isolated).
/// The refusal reason for a statement that broke a foreign key; any other error stays an
/// error (and fails the batch).
pub(super) fn foreign_key_refusal(e: rusqlite::Error) -> rusqlite::Result<String> {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Ok(
            "its parent row is not stored (a foreign key of this table): the record is stored once its parent is synced"
                .into(),
        ),
        _ => Err(e),
    }
}

pub(super) fn upsert_batch(
    tx: &Transaction<'_>,
    s: &StreamDescriptor,
    records: Vec<SinkRecord>,
    batch_id: &str,
    now: &str,
) -> rusqlite::Result<WriteOutcome> {
    let sql = stream_sql(s);
    let mut outcome = WriteOutcome::default();
    // (key values, typed columns, canonical text, key string) of the records to store.
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        if let Some(failure) = record.refusal() {
            outcome.stats.failed += 1;
            outcome.failures.push(failure);
            continue;
        }
        let SinkRecord { json, key: Ok(key), columns: Ok(columns) } = record else {
            unreachable!("a record with no key or unfit columns is refused above")
        };
        let text = key_string(key.iter().map(typed_text));
        rows.push((key, columns, json, text));
    }
    let mut first: HashMap<&str, &str> = HashMap::with_capacity(rows.len());
    for (_, _, json, key) in &rows {
        first.entry(key.as_str()).or_insert(json.as_str());
    }
    let keys: Vec<&[TypedValue]> = rows.iter().map(|(k, ..)| k.as_slice()).collect();
    let mut existing = lookup_existing(tx, s, &sql, &keys, &first)?;
    let mut insert = tx.prepare_cached(&sql.insert)?;
    let mut update = tx.prepare_cached(&sql.update)?;
    let null = TypedValue::Null;
    for (key_values, columns, json, key) in &rows {
        let Some(row) = existing.get_mut(key) else {
            let binds: Vec<Bind<'_>> =
                key_values.iter().map(Bind).chain(columns.iter().map(|c| Bind(c.as_ref().unwrap_or(&null)))).collect();
            let mut params: Vec<&dyn rusqlite::ToSql> = binds.iter().map(|b| b as &dyn rusqlite::ToSql).collect();
            params.extend([json as &dyn rusqlite::ToSql, &batch_id, &batch_id, &now, &now, &now]);
            if let Err(e) = insert.execute(params.as_slice()) {
                // A row whose parent is not stored (a foreign key an older tool declared)
                // is refused alone; the rest of the batch lands.
                let reason = foreign_key_refusal(e)?;
                outcome.stats.failed += 1;
                outcome.failures.push(RecordFailure { key: typed::key_text(key_values), reason });
                continue;
            }
            outcome.stats.inserted += 1;
            // This record is the first of its key in the batch, so `first` holds the text
            // just stored; a later record with the same key merges into it.
            existing.insert(key.clone(), Existing { rowid: tx.last_insert_rowid(), stored: None });
            continue;
        };
        // Maps serialize with sorted keys, so a record identical to what ferry stored has
        // the same text: unchanged without parsing the stored JSON.
        let stored_text = match &row.stored {
            Some((raw, _)) => raw.as_slice(),
            None => first[key.as_str()].as_bytes(),
        };
        if json.as_bytes() == stored_text {
            outcome.stats.unchanged += 1;
            continue;
        }
        // A later record of a key differs from the stored row: read that row in full.
        let (raw, stored_columns) = match row.stored.take() {
            Some(stored) => stored,
            None => tx.prepare_cached(&sql.by_rowid)?.query_row([row.rowid], |r| read_stored(r, 0, sql.value_count))?,
        };
        let mut merged = match serde_json::from_slice::<Value>(&raw) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let new: Map<String, Value> = serde_json::from_str(json).map_err(to_json_err)?;
        if !merge_objects(&mut merged, new) {
            outcome.stats.unchanged += 1;
            row.stored = Some((raw, stored_columns));
            continue;
        }
        // Typed columns follow the merged JSON; a path the JSON never had keeps the
        // column's stored value (legacy columns filled by an older tool).
        let merged_columns = match typed::column_values(s, &merged) {
            Ok(v) => v,
            Err(reason) => {
                outcome.stats.failed += 1;
                outcome.failures.push(RecordFailure { key: typed::key_text(key_values), reason });
                row.stored = Some((raw, stored_columns));
                continue;
            }
        };
        let stored_columns_copy = stored_columns.clone();
        let cols: Vec<SqlValue> =
            merged_columns.into_iter().zip(stored_columns).map(|(new, old)| new.map(to_sql).unwrap_or(old)).collect();
        let merged_text = serde_json::to_string(&merged).map_err(to_json_err)?;
        let mut params: Vec<&dyn rusqlite::ToSql> = cols.iter().map(|c| c as &dyn rusqlite::ToSql).collect();
        params.extend([&merged_text as &dyn rusqlite::ToSql, &batch_id, &now, &row.rowid]);
        if let Err(e) = update.execute(params.as_slice()) {
            let reason = foreign_key_refusal(e)?;
            outcome.stats.failed += 1;
            outcome.failures.push(RecordFailure { key: typed::key_text(key_values), reason });
            row.stored = Some((raw, stored_columns_copy));
            continue;
        }
        outcome.stats.updated += 1;
        row.stored = Some((merged_text.into_bytes(), cols));
    }
    Ok(outcome)
}

pub(super) fn insert_logs(tx: &Transaction<'_>, logs: &[LogRow]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO sync_logs (batch_id, pipeline, level, step, message, meta, created_at)
         VALUES (?1, (SELECT pipeline FROM sync_runs WHERE batch_id = ?1), ?2, ?3, ?4, ?5, ?6)",
    )?;
    for l in logs {
        stmt.execute(params![l.batch_id, l.level, l.step, l.message, l.meta.to_string(), ts_text(l.created_at)])?;
    }
    Ok(())
}

pub(super) fn apply_checkpoint(
    tx: &Transaction<'_>,
    pipeline: &str,
    stream: &str,
    partition: &str,
    checkpoint: &Checkpoint,
    batch_id: &str,
    now: &str,
) -> rusqlite::Result<()> {
    match checkpoint {
        Checkpoint::Set(cursor) => {
            tx.prepare_cached(
                "INSERT INTO sync_state (pipeline, stream, partition, cursor, batch_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (pipeline, stream, partition) DO UPDATE SET cursor = excluded.cursor, batch_id = excluded.batch_id, updated_at = excluded.updated_at",
            )?
            .execute(params![pipeline, stream, partition, cursor.to_string(), batch_id, now])?;
        }
        Checkpoint::Clear => {
            tx.prepare_cached("DELETE FROM sync_state WHERE pipeline = ?1 AND stream = ?2 AND partition = ?3")?
                .execute(params![pipeline, stream, partition])?;
        }
    }
    Ok(())
}
