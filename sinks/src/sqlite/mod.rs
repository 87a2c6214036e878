//! The SQLite sink: the embedded default.
//!
//! WAL, `busy_timeout`, one writer, cached prepared statements, one transaction per
//! batch holding the records, their checkpoint and their log rows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use ferry_core::async_trait;
use ferry_core::config::{PipelineConfig, Settings};
use ferry_core::descriptor::StreamDescriptor;
use ferry_core::error::SinkError;
use ferry_core::ident::quote;
use ferry_core::registry::SinkDescriptor;
use ferry_core::sink::{
    Access, LockOutcome, LogRow, RunEnd, RunRecord, RunStart, Sink, StateEntry, WriteBatch, WriteOutcome,
};
use ferry_core::source::Checkpoint;
use ferry_core::typed::{self};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params};
use serde::Deserialize;
use serde_json::Value;

mod checkpointer;
mod schema;
mod upsert;

use checkpointer::{Checkpointer, WRITER_AUTOCHECKPOINT, WRITER_AUTOCHECKPOINT_BEHIND};
use upsert::{apply_checkpoint, foreign_key_refusal, insert_logs, to_sql, upsert_batch};

/// Framework migrations, in order.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_framework", include_str!("../../../migrations/sqlite/0001_framework.sql")),
    ("0002_sync_logs_pipeline", include_str!("../../../migrations/sqlite/0002_sync_logs_pipeline.sql")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqliteSettings {
    /// Database file (default `data/<pipeline>.db`).
    #[serde(default)]
    path: Option<PathBuf>,
    /// How long a write waits for another writer, in milliseconds.
    #[serde(default = "default_busy")]
    busy_timeout_ms: u64,
}

fn default_busy() -> u64 {
    5_000
}

/// The SQLite sink.
pub struct SqliteSink {
    /// Declared before `conn`: it stops first, so the writer's connection closes last and
    /// folds what is left of the WAL into the file.
    checkpointer: Option<Checkpointer>,
    conn: Connection,
    path: PathBuf,
    pipeline: String,
    /// The framework migrations wait for `prepare`, which takes over foreign tables in
    /// the same transaction (so a refused takeover changes nothing).
    deferred_init: bool,
    /// Opened read-only: nothing is created or migrated.
    read_only: bool,
    /// Read-only on a file that has no ferry tables yet: runs, logs and state are empty.
    blank: bool,
    /// A dry run's scratch copy (removed when the sink is dropped, after `conn` closes).
    scratch: Option<tempfile::TempDir>,
}

pub(crate) fn now_text() -> String {
    ts_text(Utc::now())
}

pub(crate) fn ts_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a stored RFC 3339 time.
pub(crate) fn ts_opt(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    ts_opt(s).unwrap_or_default()
}

/// Runs blocking database work without stalling the async runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn open(settings: &Settings, pipeline: &PipelineConfig, access: Access) -> Result<Box<dyn Sink>, SinkError> {
    let s: SqliteSettings = settings.parse()?;
    let path = s.path.unwrap_or_else(|| PathBuf::from(format!("data/{}.db", pipeline.name)));
    // An empty path (what CI systems expand a missing secret to) or an in-memory database
    // would take every record and keep none.
    let text = path.to_string_lossy();
    if text.trim().is_empty() || text.trim() == ":memory:" || text.contains("mode=memory") {
        return Err(SinkError::Config(settings.invalid(
            "path",
            format!(
                "[sink] path = \"{text}\": a SQLite sink needs a file (e.g. \"data/{}.db\"); an empty or in-memory database would keep nothing",
                pipeline.name
            ),
        )));
    }
    let busy = Duration::from_millis(s.busy_timeout_ms);
    let mut sink = match access {
        Access::ReadWrite => SqliteSink::open(&path, busy)?,
        Access::ReadOnly => SqliteSink::open_read_only(&path, busy)?,
        Access::DryRun => SqliteSink::open_scratch(&path, busy)?,
    };
    sink.pipeline = pipeline.name.clone();
    Ok(Box::new(sink))
}

ferry_core::inventory::submit! {
    SinkDescriptor {
        name: "sqlite",
        description: "SQLite file (embedded default): path = \"data/NAME.db\"",
        open,
    }
}

impl SqliteSink {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, SinkError> {
        let cannot = |e: &dyn std::fmt::Display| {
            SinkError::Open(format!(
                "cannot open SQLite database {}: {e}; check that the directory exists or can be created and is writable",
                path.display()
            ))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| cannot(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| cannot(&e))?;
        // A file that is not a database (or is damaged) says so, not "check the directory".
        let cannot = |e: &rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                SinkError::Open(format!(
                    "{} is not a SQLite database, or it is damaged ({}): point [sink] path at another file, or restore it from a backup",
                    path.display(),
                    sqlite_reason(e)
                ))
            }
            _ => cannot(&sqlite_reason(e)),
        };
        conn.busy_timeout(busy_timeout).map_err(|e| cannot(&e))?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16384;")
            .map_err(|e| cannot(&e))?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT).map_err(|e| cannot(&e))?;
        conn.set_prepared_statement_cache_capacity(256);
        Ok(Self::with_connection(conn, path, false))
    }

    fn with_connection(conn: Connection, path: &Path, read_only: bool) -> Self {
        SqliteSink {
            checkpointer: None,
            conn,
            path: path.to_owned(),
            pipeline: String::new(),
            deferred_init: false,
            read_only,
            blank: false,
            scratch: None,
        }
    }

    /// Opens an existing database read-only: nothing is created, migrated or switched to
    /// WAL, and a missing file is an error naming its absolute path.
    pub fn open_read_only(path: &Path, busy_timeout: Duration) -> Result<Self, SinkError> {
        if !path.is_file() {
            return Err(SinkError::Open(missing_database(path)));
        }
        let cannot = |e: &dyn std::fmt::Display| {
            SinkError::Open(format!("cannot open SQLite database {} read-only: {e}", path.display()))
        };
        let conn = read_only_connection(path).map_err(|e| cannot(&e))?;
        conn.busy_timeout(busy_timeout).map_err(|e| cannot(&e))?;
        if let Err(e) = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
            return Err(SinkError::Open(format!(
                "{} is not a SQLite database, or it is damaged ({}): check [sink] path",
                path.display(),
                sqlite_reason(&e)
            )));
        }
        Ok(Self::with_connection(conn, path, true))
    }
}

/// A read-only connection to an existing database that creates no file beside it.
fn read_only_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    // Without a `-wal` file every committed byte is in the database file, and a
    // read-only connection would leave behind `-wal` and `-shm` files it cannot
    // remove; `immutable` reads the file alone and creates nothing. With a `-wal`
    // (a sync running, or one killed), the normal read-only path sees its commits.
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if wal.exists() {
        Connection::open_with_flags(path, flags)
    } else {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let uri = format!("file:{}?immutable=1", uri_path(&absolute));
        Connection::open_with_flags(uri, flags)
    }
}

impl SqliteSink {
    /// Opens a scratch copy of `path` for a dry run (an empty one when there is no file):
    /// the run does everything a real one does, takeover included, to the copy.
    pub fn open_scratch(path: &Path, busy_timeout: Duration) -> Result<Self, SinkError> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-dry-run-")
            .tempdir()
            .map_err(|e| SinkError::Open(format!("cannot create a scratch directory for the dry run: {e}")))?;
        let copy = dir.path().join(path.file_name().unwrap_or_else(|| std::ffi::OsStr::new("dry-run.db")));
        if path.is_file() {
            let copy_text = copy.to_string_lossy().into_owned();
            read_only_connection(path).and_then(|src| src.execute("VACUUM INTO ?1", [copy_text])).map_err(|e| {
                SinkError::Open(format!("cannot copy {} for the dry run: {}", path.display(), sqlite_reason(&e)))
            })?;
        }
        let mut sink = Self::open(&copy, busy_timeout)?;
        sink.scratch = Some(dir);
        Ok(sink)
    }

    /// Starts the background checkpointer on the first batch written (not before: a
    /// takeover copies the file first), then hands it each commit. Should it fail to
    /// start, the writer keeps checkpointing by itself.
    fn checkpoint_in_background(&mut self) {
        if self.checkpointer.is_none() {
            match Checkpointer::start(&self.path) {
                Ok(c) => {
                    if self.conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_BEHIND).is_ok() {
                        self.checkpointer = Some(c);
                    }
                }
                Err(e) => tracing::debug!(step = "checkpoint", error = %e, "no background checkpointer"),
            }
        }
        if let Some(c) = &self.checkpointer {
            c.after_commit();
        }
    }

    /// Before a takeover the framework tables do not exist: reading runs, logs or state
    /// says what to do instead of "no such table".
    fn taken_over(&self) -> Result<(), SinkError> {
        if !self.deferred_init {
            return Ok(());
        }
        Err(SinkError::Open(format!(
            "{} holds tables another tool wrote, and ferry has not taken it over yet, so it has no runs, logs or state to show: run `ferry migrate` with this pipeline file (add --dry-run to see the plan first; the file is backed up byte for byte before anything changes), or `ferry sync`, which does the same",
            self.path.display()
        )))
    }

    /// Switches the file to WAL. Not done on open: a file another tool wrote keeps its
    /// journal mode (and every byte) until its takeover has committed.
    fn use_wal(&self) -> Result<(), SinkError> {
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| SinkError::db(format!("switching {} to WAL", self.path.display()), e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(step = "open", journal_mode = %mode, "SQLite did not switch to WAL; concurrent readers may block the sync");
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), SinkError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| SinkError::db("starting migration", e))?;
        apply_migrations(&tx)?;
        tx.commit().map_err(|e| SinkError::db("committing migration", e))
    }

    fn describe(&self, streams: &[&'static StreamDescriptor]) -> Result<Vec<String>, SinkError> {
        let plan = schema::plan(&self.conn, streams, "<import batch>")?;
        let mut lines = Vec::new();
        if plan.adopts() {
            lines.push(format!(
                "back up {} to {}.pre-ferry-<time> (byte for byte)",
                self.path.display(),
                self.path.display()
            ));
            lines.push(
                "create ferry's tables (sync_logs, sync_runs, sync_state) and record a legacy-import batch".into(),
            );
        }
        let counts = schema::counts(&self.conn, &plan)?;
        for step in &plan.steps {
            match counts.get(step.table) {
                Some(n) => lines.push(format!(
                    "{} [{n} row{} kept; their batch: the legacy import]",
                    step.summary,
                    if *n == 1 { "" } else { "s" }
                )),
                None => lines.push(step.summary.clone()),
            }
        }
        Ok(lines)
    }

    fn backup(&self) -> Result<PathBuf, SinkError> {
        let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
        let target = PathBuf::from(format!("{}.pre-ferry-{stamp}", self.path.display()));
        std::fs::copy(&self.path, &target).map_err(|e| {
            SinkError::Open(format!("cannot write the backup {}: {e}; nothing was changed", target.display()))
        })?;
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            std::fs::copy(&wal, format!("{}-wal", target.display()))
                .map_err(|e| SinkError::Open(format!("cannot back up {}: {e}; nothing was changed", wal.display())))?;
        }
        Ok(target)
    }

    fn prepare_tables(&mut self, streams: &[&'static StreamDescriptor]) -> Result<(), SinkError> {
        let import_batch = uuid::Uuid::now_v7().to_string();
        let plan = schema::plan(&self.conn, streams, &import_batch)?;
        if !plan.adopts() {
            if self.deferred_init {
                self.migrate()?;
                self.deferred_init = false;
            }
            let tx = self.conn.transaction().map_err(|e| SinkError::db("preparing tables", e))?;
            for step in &plan.steps {
                for sql in &step.sql {
                    tx.execute_batch(sql).map_err(|e| SinkError::db(step.summary.clone(), e))?;
                }
                if let Some(stream) = step.backfill {
                    backfill(&tx, stream)?;
                }
                tracing::info!(step = "schema", table = step.table, change = %step.summary, "table prepared");
            }
            return tx.commit().map_err(|e| SinkError::db("preparing tables", e));
        }
        let backup = self.backup()?;
        tracing::warn!(step = "schema", backup = %backup.display(), "taking over tables another tool wrote; backup written first");
        let started = Utc::now();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| {
            SinkError::Open(format!(
                "cannot take over {}: the database is locked by another writer ({e}); stop the other program and run again; nothing was changed",
                self.path.display()
            ))
        })?;
        let before = schema::counts(&tx, &plan)?;
        apply_migrations(&tx)?;
        for step in &plan.steps {
            for sql in &step.sql {
                tx.execute_batch(sql).map_err(|e| SinkError::db(step.summary.clone(), e))?;
            }
            if let Some(stream) = step.backfill {
                backfill(&tx, stream)?;
            }
        }
        let after = schema::counts(&tx, &plan)?;
        if before != after {
            return Err(SinkError::Schema(format!(
                "taking over tables would change row counts ({before:?} -> {after:?}); rolled back, nothing was changed"
            )));
        }
        let tables: serde_json::Map<String, Value> = plan
            .steps
            .iter()
            .filter(|s| s.adopted)
            .map(|s| {
                let n = before.get(s.table).copied().unwrap_or(0);
                (
                    s.table.to_owned(),
                    serde_json::json!({"rows_before": n, "rows_after": after.get(s.table), "change": s.summary}),
                )
            })
            .collect();
        let meta = serde_json::json!({"backup": backup.display().to_string(), "tables": tables});
        tx.execute(
            "INSERT INTO sync_runs (batch_id, pipeline, mode, arguments, started_at, finished_at, status, stats, heartbeat_at)
             VALUES (?1, ?2, 'legacy-import', '{}', ?3, ?4, 'ok', ?5, ?4)",
            params![import_batch, self.pipeline, ts_text(started), now_text(), meta.to_string()],
        )
        .map_err(|e| SinkError::db("recording the legacy import", e))?;
        insert_logs(
            &tx,
            &[LogRow {
                batch_id: import_batch.clone(),
                level: "INFO".into(),
                step: ferry_core::logging::step::MIGRATE.into(),
                message: "took over tables written by another tool".into(),
                meta: meta.clone(),
                created_at: Utc::now(),
            }],
        )
        .map_err(|e| SinkError::db("logging the legacy import", e))?;
        tx.commit().map_err(|e| SinkError::db("committing the takeover", e))?;
        self.deferred_init = false;
        self.use_wal()?;
        tracing::info!(step = "schema", batch = %import_batch, tables = tables.len(), "took over the old tables; every row kept");
        Ok(())
    }
}

/// Fills typed columns of existing rows from their raw_json, where the JSON has a value
/// and the column differs (columns just added, or left empty by an older tool). Rows whose
/// JSON cannot fill a column keep what they have.
fn backfill(tx: &Transaction<'_>, s: &StreamDescriptor) -> Result<u64, SinkError> {
    let cols: Vec<&str> = typed::value_columns(s).map(|c| c.name).collect();
    if cols.is_empty() {
        return Ok(0);
    }
    let err = |e| SinkError::db(format!("filling typed columns of {}", s.table), e);
    let select = format!(
        "SELECT rowid, raw_json, {} FROM {}",
        cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
        quote(s.table)
    );
    let mut changes: Vec<(i64, Vec<SqlValue>)> = Vec::new();
    {
        let mut st = tx.prepare(&select).map_err(err)?;
        let mut rows = st.query([]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let raw: String = row.get(1).map_err(err)?;
            let Ok(Value::Object(record)) = serde_json::from_str::<Value>(&raw) else { continue };
            let Ok(values) = typed::row_values(s, &record) else { continue };
            let mut out = Vec::with_capacity(cols.len());
            let mut differs = false;
            for (i, new) in values.columns.into_iter().enumerate() {
                let old: SqlValue = row.get(i + 2).map_err(err)?;
                match new.map(to_sql) {
                    Some(v) if v != old => {
                        differs = true;
                        out.push(v);
                    }
                    _ => out.push(old),
                }
            }
            if differs {
                changes.push((row.get(0).map_err(err)?, out));
            }
        }
    }
    let sets: Vec<String> = cols.iter().enumerate().map(|(i, c)| format!("{} = ?{}", quote(c), i + 1)).collect();
    let update = format!("UPDATE {} SET {} WHERE rowid = ?{}", quote(s.table), sets.join(", "), cols.len() + 1);
    let mut st = tx.prepare(&update).map_err(err)?;
    let (mut filled, mut orphans) = (0u64, 0u64);
    for (rowid, mut values) in changes.iter().cloned() {
        values.push(SqlValue::Integer(rowid));
        // A row whose JSON names a parent the table's foreign key cannot find (a campaign
        // deleted in the old tool) keeps its columns as they were.
        match st.execute(rusqlite::params_from_iter(values.iter())) {
            Ok(_) => filled += 1,
            Err(e) => {
                foreign_key_refusal(e).map_err(err)?;
                orphans += 1;
            }
        }
    }
    if orphans > 0 {
        tracing::warn!(
            step = "schema",
            table = s.table,
            rows = orphans,
            "typed columns of rows whose parent is not stored were left as they were"
        );
    }
    Ok(filled)
}

fn apply_migrations(tx: &Transaction<'_>) -> Result<(), SinkError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS ferry_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .map_err(|e| SinkError::db("creating ferry_migrations", e))?;
    for (version, sql) in MIGRATIONS {
        let done: bool = tx
            .query_row("SELECT EXISTS(SELECT 1 FROM ferry_migrations WHERE version = ?1)", [version], |r| r.get(0))
            .map_err(|e| SinkError::db("reading ferry_migrations", e))?;
        if !done {
            tx.execute_batch(sql).map_err(|e| SinkError::db(format!("applying migration {version}"), e))?;
            tx.execute(
                "INSERT INTO ferry_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, now_text()],
            )
            .map_err(|e| SinkError::db("recording migration", e))?;
        }
    }
    Ok(())
}

fn run_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let arguments: String = row.get(3)?;
    let stats: String = row.get(7)?;
    Ok(RunRecord {
        batch_id: row.get(0)?,
        pipeline: row.get(1)?,
        mode: row.get(2)?,
        arguments: serde_json::from_str(&arguments).unwrap_or(Value::Null),
        started_at: parse_ts(&row.get::<_, String>(4)?),
        finished_at: row.get::<_, Option<String>>(5)?.map(|s| parse_ts(&s)),
        status: row.get(6)?,
        stats: serde_json::from_str(&stats).unwrap_or(Value::Null),
        heartbeat_at: parse_ts(&row.get::<_, String>(8)?),
    })
}

/// A path as the path part of a SQLite `file:` URI (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().replace('\\', "/").chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The message for a database file that is not there, for commands that only read.
fn missing_database(path: &Path) -> String {
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "?".into());
    let absolute =
        std::path::absolute(path).map(|p| p.display().to_string()).unwrap_or_else(|_| path.display().to_string());
    format!(
        "no database at {absolute}: nothing has been synced there yet, or the path is mistyped (relative paths resolve against the current directory, {cwd}); nothing was created"
    )
}

/// SQLite's own words for an error, without rusqlite's repetition of the OS error.
fn sqlite_reason(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(m))
            if m.contains(&f.to_string()) || f.to_string().contains(m.as_str()) =>
        {
            m.clone()
        }
        rusqlite::Error::SqliteFailure(f, Some(m)) => format!("{m} ({f})"),
        other => other.to_string(),
    }
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, SinkError> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
    .map_err(|e| SinkError::db("reading the schema", e))
}

#[async_trait]
impl Sink for SqliteSink {
    async fn init(&mut self) -> Result<(), SinkError> {
        blocking(|| {
            if self.read_only {
                self.deferred_init = !schema::foreign_tables(&self.conn)?.is_empty();
                self.blank = !self.deferred_init && !table_exists(&self.conn, "sync_runs")?;
                return Ok(());
            }
            if schema::foreign_tables(&self.conn)?.is_empty() {
                self.use_wal()?;
                self.migrate()
            } else {
                self.deferred_init = true;
                Ok(())
            }
        })
    }

    async fn prepare(&mut self, streams: &[&'static StreamDescriptor]) -> Result<(), SinkError> {
        blocking(|| self.prepare_tables(streams))
    }

    fn location(&self) -> String {
        match &self.scratch {
            Some(_) => "a scratch copy (dry run)".into(),
            None => std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone()).display().to_string(),
        }
    }

    async fn describe_plan(&mut self, streams: &[&'static StreamDescriptor]) -> Result<Vec<String>, SinkError> {
        blocking(|| self.describe(streams))
    }

    async fn begin_run(&mut self, run: &RunStart) -> Result<LockOutcome, SinkError> {
        blocking(|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| SinkError::db("taking the run lock", e))?;
            type Holder = (String, String, String, Option<String>, Option<u32>);
            let holders: Vec<Holder> = {
                let mut stmt = tx
                    .prepare("SELECT batch_id, started_at, heartbeat_at, host, pid FROM sync_runs WHERE pipeline = ?1 AND status = 'running'")
                    .map_err(|e| SinkError::db("reading the run lock", e))?;
                stmt.query_map([&run.pipeline], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| SinkError::db("reading the run lock", e))?
            };
            let (host, pid) = ferry_core::sink::this_process();
            let stale_before = Utc::now() - chrono::Duration::from_std(run.stale_after).unwrap_or_default();
            let mut outcome = LockOutcome::Acquired;
            for (batch_id, started_at, heartbeat_at, host, pid) in holders {
                let hb = parse_ts(&heartbeat_at);
                let dead = ferry_core::sink::holder_alive(host.as_deref(), pid) == Some(false);
                if hb > stale_before && !dead {
                    return Err(SinkError::Locked { pipeline: run.pipeline.clone(), batch_id, started_at });
                }
                tx.execute(
                    "UPDATE sync_runs SET status = 'abandoned', finished_at = ?2 WHERE batch_id = ?1",
                    params![batch_id, now_text()],
                )
                .map_err(|e| SinkError::db("taking over a stale lock", e))?;
                outcome = LockOutcome::TookOver { batch_id, heartbeat_at: hb };
            }
            tx.execute(
                "INSERT INTO sync_runs (batch_id, pipeline, mode, arguments, started_at, status, stats, heartbeat_at, host, pid)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', '{}', ?6, ?7, ?8)",
                params![
                    run.batch_id,
                    run.pipeline,
                    run.mode,
                    run.arguments.to_string(),
                    ts_text(run.started_at),
                    now_text(),
                    host,
                    pid
                ],
            )
            .map_err(|e| SinkError::db("recording the run", e))?;
            tx.commit().map_err(|e| SinkError::db("taking the run lock", e))?;
            Ok(outcome)
        })
    }

    async fn heartbeat(&mut self, batch_id: &str) -> Result<(), SinkError> {
        blocking(|| {
            self.conn
                .execute("UPDATE sync_runs SET heartbeat_at = ?2 WHERE batch_id = ?1", params![batch_id, now_text()])
                .map(|_| ())
                .map_err(|e| SinkError::db("updating the heartbeat", e))
        })
    }

    async fn end_run(&mut self, end: &RunEnd, logs: Vec<LogRow>) -> Result<(), SinkError> {
        blocking(|| {
            let tx = self.conn.transaction().map_err(|e| SinkError::db("recording the run's end", e))?;
            insert_logs(&tx, &logs).map_err(|e| SinkError::db("writing sync_logs", e))?;
            tx.execute(
                "UPDATE sync_runs SET status = ?2, finished_at = ?3, stats = ?4, heartbeat_at = ?3 WHERE batch_id = ?1",
                params![end.batch_id, end.status, ts_text(end.finished_at), end.stats.to_string()],
            )
            .map_err(|e| SinkError::db("recording the run's end", e))?;
            tx.commit().map_err(|e| SinkError::db("recording the run's end", e))
        })
    }

    async fn load_state(&mut self, pipeline: &str) -> Result<Vec<StateEntry>, SinkError> {
        self.taken_over()?;
        if self.blank {
            return Ok(Vec::new());
        }
        blocking(|| {
            let mut stmt = self
                .conn
                .prepare("SELECT stream, partition, cursor, batch_id, updated_at FROM sync_state WHERE pipeline = ?1 ORDER BY stream, partition")
                .map_err(|e| SinkError::db("reading sync_state", e))?;
            stmt.query_map([pipeline], |r| {
                let cursor: String = r.get(2)?;
                Ok(StateEntry {
                    stream: r.get(0)?,
                    partition: r.get(1)?,
                    cursor: serde_json::from_str(&cursor).unwrap_or(Value::String(cursor)),
                    batch_id: r.get(3)?,
                    updated_at: parse_ts(&r.get::<_, String>(4)?),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| SinkError::db("reading sync_state", e))
        })
    }

    async fn write(&mut self, batch: WriteBatch) -> Result<WriteOutcome, SinkError> {
        blocking(|| {
            let s = batch.stream;
            let now = now_text();
            let n = batch.records.len();
            let ctx = || format!("writing {} ({n} records)", s.table);
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| SinkError::db(ctx(), e))?;
            let outcome = upsert_batch(&tx, s, batch.records, &batch.batch_id, &now)
                .map_err(|e| SinkError::db(format!("writing {} ({n} records)", s.table), e))?;
            if let Some(state) = &batch.state {
                apply_checkpoint(
                    &tx,
                    &batch.pipeline,
                    s.name,
                    &state.partition,
                    &state.checkpoint,
                    &batch.batch_id,
                    &now,
                )
                .map_err(|e| SinkError::db("saving the checkpoint", e))?;
            }
            insert_logs(&tx, &batch.logs).map_err(|e| SinkError::db("writing sync_logs", e))?;
            if batch.dry_run {
                tx.rollback().map_err(|e| SinkError::db("rolling back the dry run", e))?;
            } else {
                tx.commit().map_err(|e| SinkError::db(ctx(), e))?;
                self.checkpoint_in_background();
            }
            Ok(outcome)
        })
    }

    async fn write_logs(&mut self, logs: Vec<LogRow>) -> Result<(), SinkError> {
        if logs.is_empty() {
            return Ok(());
        }
        blocking(|| {
            let tx = self.conn.transaction().map_err(|e| SinkError::db("writing sync_logs", e))?;
            insert_logs(&tx, &logs).map_err(|e| SinkError::db("writing sync_logs", e))?;
            tx.commit().map_err(|e| SinkError::db("writing sync_logs", e))
        })
    }

    async fn set_state(
        &mut self,
        pipeline: &str,
        batch_id: &str,
        entries: Vec<(String, String, Option<Value>)>,
    ) -> Result<u64, SinkError> {
        self.taken_over()?;
        blocking(|| {
            let tx = self.conn.transaction().map_err(|e| SinkError::db("changing sync_state", e))?;
            let now = now_text();
            let mut changed = 0u64;
            for (stream, partition, cursor) in entries {
                let n = match (partition.as_str(), cursor) {
                    ("*", None) => tx.execute("DELETE FROM sync_state WHERE pipeline = ?1 AND stream = ?2", params![pipeline, stream]),
                    ("*", Some(c)) => tx.execute(
                        "UPDATE sync_state SET cursor = ?3, batch_id = ?4, updated_at = ?5 WHERE pipeline = ?1 AND stream = ?2",
                        params![pipeline, stream, c.to_string(), batch_id, now],
                    ),
                    (p, None) => tx.execute(
                        "DELETE FROM sync_state WHERE pipeline = ?1 AND stream = ?2 AND partition = ?3",
                        params![pipeline, stream, p],
                    ),
                    (p, Some(c)) => apply_checkpoint(&tx, pipeline, &stream, p, &Checkpoint::Set(c), batch_id, &now).map(|_| 1),
                }
                .map_err(|e| SinkError::db("changing sync_state", e))?;
                changed += n as u64;
            }
            tx.commit().map_err(|e| SinkError::db("changing sync_state", e))?;
            Ok(changed)
        })
    }

    async fn recent_runs(&mut self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        self.taken_over()?;
        if self.blank {
            return Ok(Vec::new());
        }
        blocking(|| {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT batch_id, pipeline, mode, arguments, started_at, finished_at, status, stats, heartbeat_at
                     FROM sync_runs WHERE pipeline = ?1 ORDER BY started_at DESC LIMIT ?2",
                )
                .map_err(|e| SinkError::db("reading sync_runs", e))?;
            stmt.query_map(params![pipeline, limit as i64], run_record)
                .and_then(|rows| rows.collect())
                .map_err(|e| SinkError::db("reading sync_runs", e))
        })
    }

    async fn recent_errors(
        &mut self,
        pipeline: &str,
        batch_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogRow>, SinkError> {
        self.taken_over()?;
        if self.blank {
            return Ok(Vec::new());
        }
        blocking(|| {
            let mut stmt = self
                .conn
                .prepare(
                    // By run, not by the pipeline column: a file read-only from before that
                    // column existed is read the same way.
                    "SELECT batch_id, level, step, message, meta, created_at FROM sync_logs
                     WHERE level IN ('WARN', 'ERROR') AND (?1 IS NULL OR batch_id = ?1)
                       AND batch_id IN (SELECT batch_id FROM sync_runs WHERE pipeline = ?3)
                     ORDER BY id DESC LIMIT ?2",
                )
                .map_err(|e| SinkError::db("reading sync_logs", e))?;
            stmt.query_map(params![batch_id, limit.min(i64::MAX as usize) as i64, pipeline], |r| {
                let meta: Option<String> = r.get(4)?;
                Ok(LogRow {
                    batch_id: r.get(0)?,
                    level: r.get(1)?,
                    step: r.get(2)?,
                    message: r.get(3)?,
                    meta: meta.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or(Value::Null),
                    created_at: parse_ts(&r.get::<_, String>(5)?),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| SinkError::db("reading sync_logs", e))
        })
    }

    async fn prune_logs(&mut self, pipeline: &str, before: DateTime<Utc>) -> Result<u64, SinkError> {
        self.taken_over()?;
        blocking(|| {
            self.conn
                .execute(
                    "DELETE FROM sync_logs WHERE created_at < ?1 AND pipeline = ?2",
                    params![ts_text(before), pipeline],
                )
                .map(|n| n as u64)
                .map_err(|e| SinkError::db("pruning sync_logs", e))
        })
    }
}
