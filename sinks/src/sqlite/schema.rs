//! Stream tables in SQLite: creating them from descriptors, adding new typed columns in
//! place, and taking over tables an older tool wrote (the old Instantly collector's).
//!
//! A table that has `raw_json` but no `sync_batch_id` was not written by ferry. Taking it
//! over is planned first (nothing changes while planning, and an unexpected shape is
//! refused), then the file is copied to `<file>.pre-ferry-<time>`, then everything runs
//! in one transaction: framework tables, new columns, and a rebuild under the same name of
//! every table whose key or constraints cannot hold ferry's rows, carrying every old row
//! across (a key column the old table lacks is computed by the descriptor's `legacy_key`
//! expression; old rows that would collide keep the newest one's key and append `~rowid`
//! to the others'). The import is recorded as its own batch.

use std::collections::BTreeMap;

use ferry_core::descriptor::{SqlType, StreamDescriptor};
use ferry_core::error::SinkError;
use ferry_core::ident::{self, quote};
use ferry_core::typed;
use rusqlite::Connection;

/// One column as SQLite reports it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub name: String,
    pub decl: String,
    pub notnull: bool,
    pub default: Option<String>,
    pub pk: bool,
}

pub(crate) fn table_info(conn: &Connection, table: &str) -> Result<Vec<ColumnInfo>, SinkError> {
    let mut st = conn
        .prepare(&format!("PRAGMA table_info({})", quote(table)))
        .map_err(|e| SinkError::db(format!("inspecting {table}"), e))?;
    st.query_map([], |r| {
        Ok(ColumnInfo {
            name: r.get(1)?,
            decl: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            notnull: r.get::<_, i64>(3)? != 0,
            default: r.get(4)?,
            pk: r.get::<_, i64>(5)? != 0,
        })
    })
    .and_then(|rows| rows.collect())
    .map_err(|e| SinkError::db(format!("inspecting {table}"), e))
}

/// A foreign key of an existing table.
struct ForeignKey {
    from: Vec<String>,
    parent: String,
    /// Empty: the parent's primary key.
    to: Vec<String>,
    on_update: String,
    on_delete: String,
}

impl ForeignKey {
    fn clause(&self) -> String {
        let list = |cols: &[String]| cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let to = if self.to.is_empty() { String::new() } else { format!(" ({})", list(&self.to)) };
        format!(
            "FOREIGN KEY ({}) REFERENCES {}{to} ON UPDATE {} ON DELETE {}",
            list(&self.from),
            quote(&self.parent),
            self.on_update,
            self.on_delete
        )
    }
}

/// The foreign keys of a table, composite ones as one.
fn foreign_keys(conn: &Connection, table: &str) -> Result<Vec<ForeignKey>, SinkError> {
    let err = |e| SinkError::db(format!("inspecting foreign keys of {table}"), e);
    let mut st = conn.prepare(&format!("PRAGMA foreign_key_list({})", quote(table))).map_err(err)?;
    // (id, seq, parent, from, to, on_update, on_delete)
    type Row = (i64, i64, String, String, Option<String>, String, String);
    let mut rows: Vec<Row> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .and_then(|rows| rows.collect())
        .map_err(err)?;
    rows.sort_by_key(|r| (r.0, r.1));
    let mut keys: std::collections::BTreeMap<i64, ForeignKey> = std::collections::BTreeMap::new();
    for (id, _, parent, from, to, on_update, on_delete) in rows {
        let fk = keys.entry(id).or_insert_with(|| ForeignKey {
            from: Vec::new(),
            parent,
            to: Vec::new(),
            on_update,
            on_delete,
        });
        fk.from.push(from);
        if let Some(to) = to {
            fk.to.push(to);
        }
    }
    Ok(keys.into_values().collect())
}

/// Whether a unique index (or constraint) covers exactly these columns.
fn has_unique(conn: &Connection, table: &str, cols: &[&str]) -> Result<bool, SinkError> {
    let err = |e| SinkError::db(format!("inspecting indexes of {table}"), e);
    let mut st = conn.prepare(&format!("PRAGMA index_list({})", quote(table))).map_err(err)?;
    let indexes: Vec<(String, bool)> = st
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(2)? != 0)))
        .and_then(|rows| rows.collect())
        .map_err(err)?;
    for (name, unique) in indexes.into_iter().filter(|(_, u)| *u) {
        let _ = unique;
        let mut st = conn.prepare(&format!("PRAGMA index_info({})", quote(&name))).map_err(err)?;
        let mut icols: Vec<String> =
            st.query_map([], |r| r.get::<_, String>(2)).and_then(|rows| rows.collect()).map_err(err)?;
        let mut want: Vec<String> = cols.iter().map(|c| c.to_ascii_lowercase()).collect();
        icols.iter_mut().for_each(|c| *c = c.to_ascii_lowercase());
        icols.sort();
        want.sort();
        if icols == want {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) fn sql_type(t: SqlType) -> &'static str {
    match t {
        SqlType::Text | SqlType::Timestamp | SqlType::Date => "TEXT",
        SqlType::Integer | SqlType::Boolean => "INTEGER",
        SqlType::Real => "REAL",
    }
}

/// Declared types ferry can read and write (SQLite's affinity keywords).
fn known_type(decl: &str) -> bool {
    let d = decl.to_ascii_uppercase();
    d.is_empty()
        || ["INT", "CHAR", "CLOB", "TEXT", "REAL", "FLOA", "DOUB", "NUMERIC", "DEC", "BOOL", "DATE", "TIME", "JSON"]
            .iter()
            .any(|k| d.contains(k))
}

const NOW: &str = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";

/// What preparing one table takes.
#[derive(Debug)]
pub(crate) struct TableStep {
    pub table: &'static str,
    /// The stream, when existing rows' typed columns must be filled from their raw_json
    /// (columns were added, or the table was taken over).
    pub backfill: Option<&'static StreamDescriptor>,
    /// For people (`ferry migrate --dry-run`).
    pub summary: String,
    /// Statements, in order.
    pub sql: Vec<String>,
    /// A table ferry did not write (its rows are counted before and after).
    pub adopted: bool,
}

/// The plan for a set of streams.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub steps: Vec<TableStep>,
}

impl Plan {
    /// Whether tables an older tool wrote are taken over.
    pub(crate) fn adopts(&self) -> bool {
        self.steps.iter().any(|s| s.adopted)
    }
}

fn ferry_columns(legacy_batch: Option<&str>) -> Vec<(&'static str, String)> {
    // Rows of a taken-over table belong to the import batch: a DEFAULT fills them without
    // an UPDATE (which would fire the old tool's `updated_at` triggers).
    let batch = legacy_batch.map(|b| format!("TEXT DEFAULT '{b}'")).unwrap_or_else(|| "TEXT".into());
    vec![
        ("raw_json", "TEXT NOT NULL DEFAULT '{}'".into()),
        ("sync_batch_id", batch.clone()),
        ("first_sync_batch_id", batch),
        ("synced_at", "TEXT".into()),
        ("created_at", "TEXT".into()),
        ("updated_at", "TEXT".into()),
    ]
}

/// Plans the tables of `streams`; `legacy_batch` is the id the import would record.
/// Changes nothing; refuses shapes it cannot map.
pub(crate) fn plan(
    conn: &Connection,
    streams: &[&'static StreamDescriptor],
    legacy_batch: &str,
) -> Result<Plan, SinkError> {
    let mut plan = Plan::default();
    for s in streams {
        ident::validate(s.table).map_err(SinkError::Schema)?;
        let cols = table_info(conn, s.table)?;
        if cols.is_empty() {
            plan.steps.push(create(s));
            continue;
        }
        let refuse = |why: String| {
            SinkError::Schema(format!(
                "cannot take over table {}: {why}; nothing was changed (move the table aside or fix it, then run again)",
                s.table
            ))
        };
        for c in &cols {
            if !known_type(&c.decl) {
                return Err(refuse(format!("column {} has type {} that ferry cannot map", c.name, c.decl)));
            }
        }
        let has = |n: &str| cols.iter().any(|c| c.name.eq_ignore_ascii_case(n));
        if !has("raw_json") {
            return Err(refuse(
                "it has no raw_json column, so it is not a table ferry or the old collector wrote".into(),
            ));
        }
        let adopted = !has("sync_batch_id");
        let batch = adopted.then_some(legacy_batch);
        let key_ok = s.primary_key.iter().all(|k| has(k)) && has_unique(conn, s.table, s.primary_key)?;
        let blocking_not_null: Vec<&str> = typed::value_columns(s)
            .filter(|c| cols.iter().any(|o| o.name.eq_ignore_ascii_case(c.name) && o.notnull && o.default.is_none()))
            .map(|c| c.name)
            .collect();
        if key_ok && blocking_not_null.is_empty() {
            let mut sql = Vec::new();
            let mut added = Vec::new();
            for c in s.columns.iter().filter(|c| !has(c.name)) {
                sql.push(format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    quote(s.table),
                    quote(c.name),
                    sql_type(c.sql_type)
                ));
                added.push(c.name.to_owned());
            }
            for (name, decl) in ferry_columns(batch) {
                if !has(name) {
                    sql.push(format!("ALTER TABLE {} ADD COLUMN {name} {decl}", quote(s.table)));
                    added.push(name.to_owned());
                }
            }
            if !sql.is_empty() {
                sql.push(sync_batch_index(s.table));
                plan.steps.push(TableStep {
                    table: s.table,
                    backfill: Some(*s),
                    summary: format!("{}: add columns {}", s.table, added.join(", ")),
                    sql,
                    adopted,
                });
            }
            continue;
        }
        // Rebuild under the same name.
        let mut key_exprs = Vec::new();
        for k in s.primary_key {
            if has(k) {
                key_exprs.push(quote(k));
            } else if let Some((_, e)) = s.legacy_key.iter().find(|(n, _)| n == k) {
                key_exprs.push(format!("({e})"));
            } else {
                return Err(refuse(format!("it has no column {k} and the connector says how to derive none")));
            }
        }
        plan.steps.push(rebuild(conn, s, &cols, &key_exprs, batch, &blocking_not_null)?);
    }
    Ok(plan)
}

fn sync_batch_index(table: &str) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} (sync_batch_id)",
        quote(&format!("idx_{table}_sync_batch_id")),
        quote(table)
    )
}

fn create(s: &'static StreamDescriptor) -> TableStep {
    let mut cols = Vec::new();
    for c in s.key_columns() {
        cols.push(format!("{} {} NOT NULL", quote(c.name), sql_type(c.sql_type)));
    }
    for c in typed::value_columns(s) {
        cols.push(format!("{} {}", quote(c.name), sql_type(c.sql_type)));
    }
    cols.push("raw_json TEXT NOT NULL".into());
    cols.push("sync_batch_id TEXT".into());
    cols.push("first_sync_batch_id TEXT".into());
    for c in ["synced_at", "created_at", "updated_at"] {
        cols.push(format!("{c} TEXT NOT NULL DEFAULT {NOW}"));
    }
    let key: Vec<String> = s.primary_key.iter().map(|k| quote(k)).collect();
    cols.push(format!("UNIQUE ({})", key.join(", ")));
    TableStep {
        table: s.table,
        backfill: None,
        summary: format!("{}: create", s.table),
        sql: vec![format!("CREATE TABLE {} (\n  {}\n)", quote(s.table), cols.join(",\n  ")), sync_batch_index(s.table)],
        adopted: false,
    }
}

fn rebuild(
    conn: &Connection,
    s: &'static StreamDescriptor,
    cols: &[ColumnInfo],
    key_exprs: &[String],
    batch: Option<&str>,
    not_null: &[&str],
) -> Result<TableStep, SinkError> {
    let t = quote(s.table);
    let tmp = quote(&format!("{}__ferry_rebuild", s.table));
    let is_key = |n: &str| s.primary_key.iter().any(|k| k.eq_ignore_ascii_case(n));
    let single_pk = cols.iter().filter(|c| c.pk).count() == 1;
    let mut defs = Vec::new();
    let mut carried = Vec::new();
    for c in cols.iter().filter(|c| !is_key(&c.name)) {
        let mut d = format!("{} {}", quote(&c.name), c.decl);
        if c.pk && single_pk {
            d.push_str(" PRIMARY KEY");
        }
        if let Some(v) = &c.default {
            d.push_str(&format!(" DEFAULT ({v})"));
        }
        defs.push(d);
        carried.push(quote(&c.name));
    }
    for c in s.key_columns() {
        defs.push(format!("{} {} NOT NULL", quote(c.name), sql_type(c.sql_type)));
    }
    let has = |n: &str| cols.iter().any(|c| c.name.eq_ignore_ascii_case(n));
    for c in typed::value_columns(s).filter(|c| !has(c.name)) {
        defs.push(format!("{} {}", quote(c.name), sql_type(c.sql_type)));
    }
    for (name, decl) in ferry_columns(batch) {
        if !has(name) {
            defs.push(format!("{name} {decl}"));
        }
    }
    let keys: Vec<String> = s.primary_key.iter().map(|k| quote(k)).collect();
    defs.push(format!("UNIQUE ({})", keys.join(", ")));
    // The old table's foreign keys come back, with their actions, wherever their columns
    // are still in the table (tools reading the file with foreign keys on rely on them).
    let in_new = |n: &str| is_key(n) || has(n);
    let kept = foreign_keys(conn, s.table)?.into_iter().filter(|fk| fk.from.iter().all(|c| in_new(c)));
    defs.extend(kept.map(|fk| fk.clause()));

    let n = key_exprs.len();
    let mut select_keys: Vec<String> = (0..n).map(|i| format!("__k{i}")).collect();
    // Old rows that would share a key: the newest keeps it, the others get `~rowid`.
    select_keys[n - 1] = format!("CASE WHEN __rn = 1 THEN __k{} ELSE __k{} || '~' || __ferry_rowid END", n - 1, n - 1);
    let inner_keys: Vec<String> = key_exprs.iter().enumerate().map(|(i, e)| format!("{e} AS __k{i}")).collect();
    let insert = format!(
        "INSERT INTO {tmp} ({carried}{sep}{keys}) SELECT {carried}{sep}{select_keys} FROM (SELECT *, rowid AS __ferry_rowid, {inner}, row_number() OVER (PARTITION BY {part} ORDER BY rowid DESC) AS __rn FROM {t})",
        carried = carried.join(", "),
        sep = if carried.is_empty() { "" } else { ", " },
        keys = keys.join(", "),
        select_keys = select_keys.join(", "),
        inner = inner_keys.join(", "),
        part = key_exprs.join(", "),
    );
    // Indexes and triggers of the old table come back, unless they would enforce the old key.
    let mut st = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND type IN ('index', 'trigger') AND sql IS NOT NULL",
        )
        .map_err(|e| SinkError::db(format!("inspecting {}", s.table), e))?;
    let extras: Vec<String> = st
        .query_map([s.table], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| SinkError::db(format!("inspecting {}", s.table), e))?;
    let extras: Vec<String> =
        extras.into_iter().filter(|sql| !sql.to_ascii_uppercase().starts_with("CREATE UNIQUE")).collect();

    let mut sql = vec![
        format!("DROP TABLE IF EXISTS {tmp}"),
        format!("CREATE TABLE {tmp} (\n  {}\n)", defs.join(",\n  ")),
        insert,
        format!("DROP TABLE {t}"),
        format!("ALTER TABLE {tmp} RENAME TO {t}"),
    ];
    sql.extend(extras);
    sql.push(sync_batch_index(s.table));
    let mut why = Vec::new();
    if !has_unique(conn, s.table, s.primary_key).unwrap_or(false) {
        why.push(format!("key becomes ({})", s.primary_key.join(", ")));
    }
    if !not_null.is_empty() {
        why.push(format!("{} may be null", not_null.join(", ")));
    }
    Ok(TableStep {
        table: s.table,
        backfill: Some(s),
        summary: format!("{}: rebuild in place, every row carried over ({})", s.table, why.join("; ")),
        sql,
        adopted: batch.is_some(),
    })
}

/// Row counts of the adopted tables, for the import's log.
pub(crate) fn counts(conn: &Connection, plan: &Plan) -> Result<BTreeMap<String, i64>, SinkError> {
    let mut out = BTreeMap::new();
    for s in plan.steps.iter().filter(|s| s.adopted) {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(s.table)), [], |r| r.get(0))
            .map_err(|e| SinkError::db(format!("counting {}", s.table), e))?;
        out.insert(s.table.to_owned(), n);
    }
    Ok(out)
}

/// Tables with `raw_json` but no `sync_batch_id`: written by another tool.
pub(crate) fn foreign_tables(conn: &Connection) -> Result<Vec<String>, SinkError> {
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .map_err(|e| SinkError::db("listing tables", e))?;
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| SinkError::db("listing tables", e))?;
    let mut out = Vec::new();
    for n in names {
        let cols = table_info(conn, &n)?;
        let has = |x: &str| cols.iter().any(|c| c.name.eq_ignore_ascii_case(x));
        if has("raw_json") && !has("sync_batch_id") {
            out.push(n);
        }
    }
    Ok(out)
}
