//! The Postgres sink: the same tables and guarantees as SQLite, for several runners on
//! several machines writing to one database (self-hosted, or hosted such as Supabase).
//!
//! tokio-postgres over rustls (TLS with libpq's `sslmode` semantics, `postgres_tls.rs`;
//! `prefer` by default), one connection, one transaction per batch holding the records, their
//! checkpoint and their log rows. Inserts go in one statement per batch (`unnest` of typed
//! arrays); the run lock is a session advisory lock, released by the server if the process
//! dies, so a crashed runner never blocks the next one.

use chrono::{DateTime, NaiveDate, Utc};
use ferry_core::async_trait;
use ferry_core::config::{PipelineConfig, Settings};
use ferry_core::descriptor::{SqlType, StreamDescriptor};
use ferry_core::error::{ConfigError, SinkError};
use ferry_core::ident::{self, quote};
use ferry_core::record::merge_objects;
use ferry_core::registry::SinkDescriptor;
use ferry_core::secret::{Secret, redact};
use ferry_core::sink::{
    Access, LockOutcome, LogRow, RecordFailure, RunEnd, RunRecord, RunStart, Sink, SinkRecord, StateEntry, WriteBatch,
    WriteOutcome,
};
use ferry_core::source::Checkpoint;
use ferry_core::typed::{self, TypedValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Transaction};

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_framework", include_str!("../../migrations/postgres/0001_framework.sql")),
    ("0002_sync_logs_pipeline", include_str!("../../migrations/postgres/0002_sync_logs_pipeline.sql")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PgSettings {
    /// `postgres://user:password@host:5432/db?sslmode=require` (normally `${DATABASE_URL}`).
    url: Secret,
    /// Schema of every table (must exist).
    #[serde(default = "default_schema")]
    schema: String,
}

fn default_schema() -> String {
    "public".into()
}

/// The Postgres sink.
pub struct PostgresSink {
    client: Client,
    statements: Statements,
    schema: String,
    where_: String,
    lock_key: Option<i64>,
    /// Opened for a dry run: no migration, table or column is created, and a batch for a
    /// table that does not exist yet counts its records as inserted.
    dry_run: bool,
    /// Dry run: tables that do not exist (or lack a column) yet.
    dry_missing: std::collections::HashSet<&'static str>,
}

fn open(settings: &Settings, _pipeline: &PipelineConfig, access: Access) -> Result<Box<dyn Sink>, SinkError> {
    let s: PgSettings = settings.parse()?;
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| SinkError::Open("the postgres sink needs the async runtime".into()))?;
    let mut sink = tokio::task::block_in_place(|| handle.block_on(PostgresSink::connect(s.url.expose(), &s.schema)))?;
    sink.dry_run = access == Access::DryRun;
    Ok(Box::new(sink))
}

ferry_core::inventory::submit! {
    SinkDescriptor {
        name: "postgres",
        description: "Postgres (TLS via rustls): url = \"${DATABASE_URL}\", schema = \"public\"",
        open,
    }
}

fn pg(context: impl Into<String>, e: tokio_postgres::Error) -> SinkError {
    let detail = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| {
        let mut m = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            m = format!("{m}: {s}");
            src = s.source();
        }
        m
    });
    SinkError::Database { context: context.into(), message: redact(&detail) }
}

fn pg_type(t: SqlType) -> &'static str {
    match t {
        SqlType::Text => "TEXT",
        SqlType::Integer => "BIGINT",
        SqlType::Real => "DOUBLE PRECISION",
        SqlType::Boolean => "BOOLEAN",
        SqlType::Timestamp => "TIMESTAMPTZ",
        SqlType::Date => "DATE",
    }
}

/// A column of values for one statement, typed as Postgres wants it.
#[derive(Debug)]
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Ts(Vec<Option<DateTime<Utc>>>),
    Date(Vec<Option<NaiveDate>>),
}

impl Column {
    fn new(t: SqlType) -> Self {
        match t {
            SqlType::Text => Column::Text(Vec::new()),
            SqlType::Integer => Column::Int(Vec::new()),
            SqlType::Real => Column::Real(Vec::new()),
            SqlType::Boolean => Column::Bool(Vec::new()),
            SqlType::Timestamp => Column::Ts(Vec::new()),
            SqlType::Date => Column::Date(Vec::new()),
        }
    }

    fn push(&mut self, v: Option<&TypedValue>) {
        let v = v.filter(|v| **v != TypedValue::Null);
        match self {
            Column::Text(c) => c.push(v.map(TypedValue::to_key_text)),
            Column::Int(c) => c.push(v.and_then(|v| match v {
                TypedValue::Integer(i) => Some(*i),
                TypedValue::Bool(b) => Some(i64::from(*b)),
                _ => None,
            })),
            Column::Real(c) => c.push(v.and_then(|v| match v {
                TypedValue::Real(f) => Some(*f),
                TypedValue::Integer(i) => Some(*i as f64),
                _ => None,
            })),
            Column::Bool(c) => c.push(v.and_then(|v| match v {
                TypedValue::Bool(b) => Some(*b),
                _ => None,
            })),
            Column::Ts(c) => c.push(v.and_then(|v| typed::parse_timestamp(&v.to_key_text()))),
            Column::Date(c) => c.push(v.and_then(|v| NaiveDate::parse_from_str(&v.to_key_text(), "%Y-%m-%d").ok())),
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(c) => c,
            Column::Int(c) => c,
            Column::Real(c) => c,
            Column::Bool(c) => c,
            Column::Ts(c) => c,
            Column::Date(c) => c,
        }
    }

    /// The value at `i`, as a parameter.
    fn at(&self, i: usize) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(c) => &c[i],
            Column::Int(c) => &c[i],
            Column::Real(c) => &c[i],
            Column::Bool(c) => &c[i],
            Column::Ts(c) => &c[i],
            Column::Date(c) => &c[i],
        }
    }

    /// The Postgres type of a column's values (binary `COPY` sends exactly this type).
    fn value_type(t: SqlType) -> tokio_postgres::types::Type {
        use tokio_postgres::types::Type;
        match t {
            SqlType::Text => Type::TEXT,
            SqlType::Integer => Type::INT8,
            SqlType::Real => Type::FLOAT8,
            SqlType::Boolean => Type::BOOL,
            SqlType::Timestamp => Type::TIMESTAMPTZ,
            SqlType::Date => Type::DATE,
        }
    }

    fn array_type(t: SqlType) -> &'static str {
        match t {
            SqlType::Text => "TEXT[]",
            SqlType::Integer => "BIGINT[]",
            SqlType::Real => "DOUBLE PRECISION[]",
            SqlType::Boolean => "BOOLEAN[]",
            SqlType::Timestamp => "TIMESTAMPTZ[]",
            SqlType::Date => "DATE[]",
        }
    }
}

/// The run lock's key: the first 8 bytes of SHA-256 over `ferry:run`, the schema and the
/// pipeline name (length-prefixed, so no two pairs give the same text), as one 64-bit
/// advisory lock key. Pipelines of every schema of a database share the lock space; a
/// 64-bit key makes a collision among 10,000 pipelines a 1-in-370-billion event (with the
/// 32-bit `hashtext` it would be about 1 in 86).
pub fn run_lock_key(schema: &str, pipeline: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in ["ferry:run", schema, pipeline] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The query parameters of a `postgres://` URL that the driver does not know, by name.
fn unsupported_parameters(url: &str) -> Vec<String> {
    const KNOWN: &[&str] = &[
        "user",
        "password",
        "dbname",
        "options",
        "application_name",
        "sslnegotiation",
        "host",
        "hostaddr",
        "port",
        "connect_timeout",
        "tcp_user_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_retries",
        "target_session_attrs",
        "channel_binding",
        "load_balance_hosts",
    ];
    let Some((_, query)) = url.split_once('?') else { return Vec::new() };
    query
        .split('&')
        .filter_map(|pair| {
            let k = pair.split_once('=').map_or(pair, |(k, _)| k);
            (!k.is_empty() && !KNOWN.contains(&k)).then(|| format!("`{k}`"))
        })
        .collect()
}

impl PostgresSink {
    /// Connects and checks the schema exists.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, SinkError> {
        if let Ok(cfg) = url.parse::<tokio_postgres::Config>()
            && let Some(p) = cfg.get_password()
        {
            ferry_core::secret::register(&String::from_utf8_lossy(p));
        }
        ident::validate(schema).map_err(|e| SinkError::Config(ConfigError::Other(format!("[sink] schema: {e}"))))?;
        let (conn, tls) = crate::postgres_tls::split(url)?;
        let cfg: tokio_postgres::Config = conn.parse().map_err(|e: tokio_postgres::Error| {
            let unsupported = unsupported_parameters(&conn);
            let detail = if unsupported.is_empty() {
                String::new()
            } else {
                format!(" (not supported here: {})", unsupported.join(", "))
            };
            SinkError::Config(ConfigError::Other(format!(
                "[sink] url is not a Postgres connection string ferry can use: {}{detail}",
                redact(&e.to_string())
            )))
        })?;
        let hosts: Vec<String> = cfg
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        let target = format!("{} (database {})", hosts.join(","), cfg.get_dbname().unwrap_or("default"));
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls.client_config()?);
        let attempt = |mode: tokio_postgres::config::SslMode| {
            let mut cfg = cfg.clone();
            cfg.ssl_mode(mode);
            let connector = connector.clone();
            async move { cfg.connect(connector).await }
        };
        use crate::postgres_tls::SslMode as Mode;
        use tokio_postgres::config::SslMode as Driver;
        let connected = match tls.mode {
            Mode::Disable => attempt(Driver::Disable).await,
            // Plain first; TLS when the server refuses a connection without it.
            Mode::Allow => match attempt(Driver::Disable).await {
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
                    attempt(Driver::Require).await
                }
                other => other,
            },
            // TLS when offered; plain when the TLS handshake itself fails.
            Mode::Prefer => match attempt(Driver::Prefer).await {
                Err(e) if e.as_db_error().is_none() && e.to_string().contains("TLS") => attempt(Driver::Disable).await,
                other => other,
            },
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => attempt(Driver::Require).await,
        };
        let (client, connection) = connected.map_err(|e| {
            let detail = redact(&e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| {
                let mut m = e.to_string();
                if let Some(s) = std::error::Error::source(&e) {
                    m = format!("{m}: {s}");
                }
                m
            }));
            let hint = tls
                .explain(&detail, &hosts.join(","))
                .unwrap_or_else(|| "check the host, port, user and password in [sink] url".to_owned());
            SinkError::Open(format!(
                "cannot connect to Postgres at {target} (sslmode={}): {detail}; {hint}",
                tls.mode.name()
            ))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(step = "sink", error = %redact(&e.to_string()), "the Postgres connection ended");
            }
        });
        let exists = client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
            .await
            .map_err(|e| pg("checking the schema", e))?
            .is_some();
        if !exists {
            return Err(SinkError::Open(format!(
                "schema `{schema}` does not exist in {target}; create it (CREATE SCHEMA {}) or set [sink] schema",
                quote(schema)
            )));
        }
        // What the sink relies on is set here, whatever the URL's `options`, the role or the
        // database say: ISO dates (keys compare as text), UTC, standard strings, the schema.
        client
            .batch_execute(&format!(
                "SET DateStyle TO 'ISO, YMD'; SET TimeZone TO 'UTC'; SET IntervalStyle TO 'postgres'; \
                 SET standard_conforming_strings TO on; SET search_path TO {}",
                quote(schema)
            ))
            .await
            .map_err(|e| pg("setting up the session", e))?;
        Ok(PostgresSink {
            client,
            statements: Statements::default(),
            schema: schema.to_owned(),
            where_: target,
            lock_key: None,
            dry_run: false,
            dry_missing: Default::default(),
        })
    }

    /// Creates missing tables and adds missing columns (under the schema's DDL lock).
    async fn prepare_tables(&mut self, streams: &[&'static StreamDescriptor]) -> Result<(), SinkError> {
        for s in streams {
            ident::validate(s.table).map_err(SinkError::Schema)?;
            let existing = self.columns(s.table).await?;
            let t = quote(s.table);
            if existing.is_empty() {
                let mut cols: Vec<String> =
                    s.key_columns().map(|c| format!("{} {} NOT NULL", quote(c.name), pg_type(c.sql_type))).collect();
                cols.extend(typed::value_columns(s).map(|c| format!("{} {}", quote(c.name), pg_type(c.sql_type))));
                cols.push("raw_json JSONB NOT NULL".into());
                cols.push("sync_batch_id TEXT".into());
                cols.push("first_sync_batch_id TEXT".into());
                for c in ["synced_at", "created_at", "updated_at"] {
                    cols.push(format!("{c} TIMESTAMPTZ NOT NULL DEFAULT now()"));
                }
                let key: Vec<String> = s.primary_key.iter().map(|k| quote(k)).collect();
                cols.push(format!("UNIQUE ({})", key.join(", ")));
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {t} (\n  {}\n);\nCREATE INDEX IF NOT EXISTS {} ON {t} (sync_batch_id)",
                    cols.join(",\n  "),
                    quote(&format!("idx_{}_sync_batch_id", s.table))
                );
                self.client.batch_execute(&sql).await.map_err(|e| pg(format!("creating table {}", s.table), e))?;
                continue;
            }
            for c in s.columns.iter().filter(|c| !existing.iter().any(|e| e == c.name)) {
                let sql = format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {} {}", quote(c.name), pg_type(c.sql_type));
                self.client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| pg(format!("adding column {}.{}", s.table, c.name), e))?;
                // Existing rows get the new column from their raw_json where it converts.
                let path: Vec<String> = c.path.split('.').map(|p| format!("'{}'", p.replace('\'', "''"))).collect();
                let fill = format!(
                    "UPDATE {t} SET {col} = CASE WHEN jsonb_typeof(raw_json #> ARRAY[{p}]) IN ('string', 'number', 'boolean') THEN (raw_json #>> ARRAY[{p}])::{ty} END WHERE raw_json #> ARRAY[{p}] IS NOT NULL",
                    col = quote(c.name),
                    p = path.join(", "),
                    ty = pg_type(c.sql_type)
                );
                if let Err(e) = self.client.batch_execute(&fill).await {
                    tracing::warn!(step = "schema", table = s.table, column = c.name, error = %redact(&e.to_string()), "could not fill the new column from raw_json; new writes fill it");
                }
            }
        }
        Ok(())
    }

    async fn columns(&self, table: &str) -> Result<Vec<String>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                &[&self.schema, &table],
            )
            .await
            .map_err(|e| pg(format!("inspecting {table}"), e))?;
        rows.iter().map(|r| col(r, 0, "information_schema.columns")).collect()
    }
}

/// Statements prepared once per connection and reused: a statement sent as text is parsed
/// and planned by the server, and costs one more round trip, every time.
#[derive(Default)]
struct Statements {
    prepared: std::collections::HashMap<String, tokio_postgres::Statement>,
    /// Per table: whether most rows of its last batch were stored already (a re-run), which
    /// decides whether the next batch compares or inserts first.
    mostly_stored: std::collections::HashMap<String, bool>,
    /// Tables whose columns a binary `COPY` cannot fill (a type changed by hand): they
    /// take the `INSERT` path only.
    no_copy: std::collections::HashSet<String>,
}

impl Statements {
    async fn get(
        &mut self,
        tx: &impl GenericClient,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = tx.prepare(sql).await?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Forgets every statement (a table's columns changed: the plans no longer fit).
    fn clear(&mut self) {
        self.prepared.clear();
    }
}

async fn insert_logs(tx: &Transaction<'_>, stmts: &mut Statements, logs: &[LogRow]) -> Result<(), SinkError> {
    if logs.is_empty() {
        return Ok(());
    }
    let stmt = stmts
        .get(
            tx,
            "INSERT INTO sync_logs (batch_id, pipeline, level, step, message, meta, created_at)
             VALUES ($1, (SELECT pipeline FROM sync_runs WHERE batch_id = $1), $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(|e| pg("writing sync_logs", e))?;
    for l in logs {
        tx.execute(&stmt, &[&l.batch_id, &l.level, &l.step, &l.message, &l.meta, &l.created_at])
            .await
            .map_err(|e| pg("writing sync_logs", e))?;
    }
    Ok(())
}

async fn set_cursor(
    tx: &impl GenericClient,
    stmts: &mut Statements,
    pipeline: &str,
    stream: &str,
    partition: &str,
    checkpoint: &Checkpoint,
    batch_id: &str,
) -> Result<u64, SinkError> {
    let r = match checkpoint {
        Checkpoint::Set(cursor) => {
            let stmt = stmts.get(tx,
                "INSERT INTO sync_state (pipeline, stream, partition, cursor, batch_id, updated_at) VALUES ($1, $2, $3, $4, $5, now())
                 ON CONFLICT (pipeline, stream, partition) DO UPDATE SET cursor = excluded.cursor, batch_id = excluded.batch_id, updated_at = excluded.updated_at",
            ).await.map_err(|e| pg("saving the checkpoint", e))?;
            tx.execute(&stmt, &[&pipeline, &stream, &partition, cursor, &batch_id]).await
        }
        Checkpoint::Clear => {
            let stmt = stmts
                .get(tx, "DELETE FROM sync_state WHERE pipeline = $1 AND stream = $2 AND partition = $3")
                .await
                .map_err(|e| pg("saving the checkpoint", e))?;
            tx.execute(&stmt, &[&pipeline, &stream, &partition]).await
        }
    };
    r.map_err(|e| pg("saving the checkpoint", e))
}

/// One column of a row, typed; a value of another type (a column someone altered) is an
/// error naming the table and column, never a panic.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a tokio_postgres::Row,
    idx: usize,
    table: &str,
) -> Result<T, SinkError> {
    r.try_get(idx).map_err(|e| {
        let name = r.columns().get(idx).map(|c| c.name().to_owned()).unwrap_or_else(|| idx.to_string());
        SinkError::Database {
            context: format!("reading {table}.{name}"),
            message: format!("{e}; the column does not have the type ferry expects (was it altered?)"),
        }
    })
}

async fn stmts_lock(stmts: &mut Statements, tx: &Transaction<'_>) -> Result<tokio_postgres::Statement, SinkError> {
    stmts
        .get(tx, "SELECT pg_advisory_xact_lock(hashtext('ferry:tables'), hashtext($1::text))")
        .await
        .map_err(|e| pg("preparing the table lock", e))
}

fn run_record(r: &tokio_postgres::Row) -> Result<RunRecord, SinkError> {
    let t = "sync_runs";
    Ok(RunRecord {
        batch_id: col(r, 0, t)?,
        pipeline: col(r, 1, t)?,
        mode: col(r, 2, t)?,
        arguments: col(r, 3, t)?,
        started_at: col(r, 4, t)?,
        finished_at: col(r, 5, t)?,
        status: col(r, 6, t)?,
        stats: col(r, 7, t)?,
        heartbeat_at: col(r, 8, t)?,
    })
}

/// JSON text bound as `json` or `jsonb` as it is: the text the reader serialized, sent
/// without parsing it again (binary `jsonb` is a version byte followed by the text).
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == tokio_postgres::types::Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    tokio_postgres::types::accepts!(JSON, JSONB);
    tokio_postgres::types::to_sql_checked!();
}

/// A batch's record for one key: its key (and the key's text, [`key_id`]), its text
/// (canonical JSON) and its typed columns.
struct Row {
    key: Vec<TypedValue>,
    id: String,
    json: String,
    columns: Vec<Option<TypedValue>>,
}

/// A batch's row whose key is stored, with the stored object when it differs.
type StoredRow = (Row, Option<Map<String, Value>>);

/// Upserts a batch inside `tx`, in set-based statements: the new rows in one `INSERT`, the
/// stored rows compared with the batch's in the server (`jsonb =`, so an unchanged row
/// never travels back), and one `UPDATE` per changed row. Which goes first follows the
/// previous batch of the table: mostly new rows (a first sync) insert first, with
/// `ON CONFLICT DO NOTHING` returning what was new; mostly stored rows (a re-run) compare
/// first and insert only what is missing.
async fn upsert(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    records: Vec<SinkRecord>,
    batch_id: &str,
) -> Result<WriteOutcome, SinkError> {
    let mut outcome = WriteOutcome::default();
    // Later records of the same key in one batch merge into the earlier ones first.
    let mut order: Vec<String> = Vec::new();
    let mut rows: std::collections::HashMap<String, Row> = Default::default();
    for record in records {
        if let Some(failure) = record.refusal() {
            outcome.stats.failed += 1;
            outcome.failures.push(failure);
            continue;
        }
        let (Ok(key), Ok(columns)) = (record.key, record.columns) else { continue };
        let k = key_id(&key);
        match rows.remove(&k) {
            Some(earlier) => {
                let mut merged: Map<String, Value> = serde_json::from_str(&earlier.json).unwrap_or_default();
                merge_objects(&mut merged, serde_json::from_str(&record.json).unwrap_or_default());
                let columns = typed::column_values(s, &merged).map_err(SinkError::Schema)?;
                let json = Value::Object(merged).to_string();
                rows.insert(k.clone(), Row { key, id: k, json, columns });
            }
            None => {
                order.push(k.clone());
                rows.insert(k.clone(), Row { key, id: k, json: record.json, columns });
            }
        }
    }
    if order.is_empty() {
        return Ok(outcome);
    }
    let batch: Vec<Row> = order.iter().map(|k| rows.remove(k).expect("key listed")).collect();
    let mostly_stored = stmts.mostly_stored.get(s.table).copied().unwrap_or(false);
    let (stored, new): (Vec<StoredRow>, Vec<Row>) = if mostly_stored {
        let mut found = compare(tx, stmts, s, &batch).await?;
        let mut stored = Vec::new();
        let mut missing = Vec::new();
        for row in batch {
            match found.remove(&row.id) {
                Some(old) => stored.push((row, old)),
                None => missing.push(row),
            }
        }
        let inserted = insert(tx, stmts, s, &missing, batch_id, false).await?;
        debug_assert_eq!(inserted.len(), missing.len());
        (stored, missing)
    } else {
        let inserted = insert(tx, stmts, s, &batch, batch_id, true).await?;
        let (new, existing): (Vec<Row>, Vec<Row>) = batch.into_iter().partition(|r| inserted.contains(&r.id));
        let mut found = if existing.is_empty() { Default::default() } else { compare(tx, stmts, s, &existing).await? };
        let stored = existing
            .into_iter()
            .map(|r| {
                let old = found.remove(&r.id).flatten();
                (r, old)
            })
            .collect();
        (stored, new)
    };
    outcome.stats.inserted += new.len() as u64;
    let total = stored.len() + new.len();
    stmts.mostly_stored.insert(s.table.to_owned(), stored.len() * 2 > total);

    let mut updates: Vec<(Vec<TypedValue>, Map<String, Value>)> = Vec::new();
    for (row, old) in stored {
        match old {
            // Equal in the server: nothing to merge.
            None => outcome.stats.unchanged += 1,
            Some(mut old) => {
                if merge_objects(&mut old, serde_json::from_str(&row.json).unwrap_or_default()) {
                    updates.push((row.key, old));
                } else {
                    outcome.stats.unchanged += 1;
                }
            }
        }
    }
    update(tx, stmts, s, updates, batch_id, &mut outcome).await?;
    Ok(outcome)
}

/// The stored rows of `batch`'s keys: `None` where the stored JSON equals the batch's
/// (compared in the server), the stored object where it differs. Keys not stored are absent.
/// `jsonb =` compares numbers by value, so a stored `1.0` and a new `1` are equal and the
/// row is left as stored (the SQLite sink, comparing text, rewrites it).
async fn compare(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    batch: &[Row],
) -> Result<std::collections::HashMap<String, Option<Map<String, Value>>>, SinkError> {
    let ctx = || format!("writing {}", s.table);
    let key_cols: Vec<&ferry_core::descriptor::Column> = s.key_columns().collect();
    let mut key_arrays: Vec<Column> = key_cols.iter().map(|c| Column::new(c.sql_type)).collect();
    for row in batch {
        for (i, v) in row.key.iter().enumerate() {
            key_arrays[i].push(Some(v));
        }
    }
    let texts: Vec<JsonText<'_>> = batch.iter().map(|r| JsonText(&r.json)).collect();
    let n = key_cols.len();
    let unnest: Vec<String> =
        key_cols.iter().enumerate().map(|(i, c)| format!("${}::{}", i + 1, Column::array_type(c.sql_type))).collect();
    // A join on the unnested keys: the planner probes the key index once per key (an
    // `IN (SELECT ...)` semi-join may scan the whole table per batch as it grows).
    let on: Vec<String> = key_cols.iter().enumerate().map(|(i, c)| format!("t.{} = u.k{i}", quote(c.name))).collect();
    let sql = format!(
        "SELECT {key_text}, CASE WHEN t.raw_json = u.j THEN NULL ELSE t.raw_json END
         FROM unnest({unnest}, ${j}::jsonb[]) AS u({aliases}, j) JOIN {table} AS t ON {on}",
        key_text = key_text_sql(&key_cols),
        table = quote(s.table),
        unnest = unnest.join(", "),
        j = n + 1,
        aliases = (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", "),
        on = on.join(" AND "),
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = key_arrays.iter().map(Column::param).collect();
    params.push(&texts);
    let stmt = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
    let found = tx.query(&stmt, &params).await.map_err(|e| pg(ctx(), e))?;
    found
        .iter()
        .map(|r| {
            let old = match col::<Option<Value>>(r, 1, s.table)? {
                None => None,
                Some(Value::Object(m)) => Some(m),
                Some(_) => Some(Map::new()),
            };
            Ok((col::<String>(r, 0, s.table)?, old))
        })
        .collect()
}

/// A row's key as text in SQL, as [`key_id`] writes it.
fn key_text_sql(key_cols: &[&ferry_core::descriptor::Column]) -> String {
    if let [only] = key_cols {
        return format!("t.{}::text", quote(only.name));
    }
    key_cols
        .iter()
        .map(|c| format!("length(t.{k}::text) || ':' || t.{k}::text", k = quote(c.name)))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// A key as one text both sides agree on (Postgres's text form): a single part as it is,
/// the parts of a composite key each prefixed by its length in characters, so no two keys
/// share one (joined with a separator, ("a/b", "c") and ("a", "b/c") would).
fn key_id(key: &[TypedValue]) -> String {
    if let [only] = key {
        return only.to_key_text();
    }
    key.iter()
        .map(|v| {
            let t = v.to_key_text();
            format!("{}:{t}", t.chars().count())
        })
        .collect()
}

/// Inserts `rows` in one statement; with `skip_stored`, rows whose key is stored are left
/// alone (`ON CONFLICT DO NOTHING`). Returns the keys inserted.
async fn insert(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    rows: &[Row],
    batch_id: &str,
    skip_stored: bool,
) -> Result<std::collections::HashSet<String>, SinkError> {
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let ctx = || format!("writing {}", s.table);
    let key_cols: Vec<&ferry_core::descriptor::Column> = s.key_columns().collect();
    let value_cols: Vec<&ferry_core::descriptor::Column> = typed::value_columns(s).collect();
    let mut arrays: Vec<Column> = key_cols.iter().chain(value_cols.iter()).map(|c| Column::new(c.sql_type)).collect();
    for row in rows {
        for (i, v) in row.key.iter().enumerate() {
            arrays[i].push(Some(v));
        }
        for (i, v) in row.columns.iter().enumerate() {
            arrays[key_cols.len() + i].push(v.as_ref());
        }
    }
    let raws: Vec<JsonText<'_>> = rows.iter().map(|r| JsonText(&r.json)).collect();
    let all: Vec<&ferry_core::descriptor::Column> = key_cols.iter().chain(value_cols.iter()).copied().collect();
    let names: Vec<String> = all.iter().map(|c| quote(c.name)).collect();
    if skip_stored && !stmts.no_copy.contains(s.table) {
        match copy_rows(tx, s, &all, &names, &arrays, &raws, batch_id).await {
            Ok(()) => return Ok(rows.iter().map(|r| r.id.clone()).collect()),
            Err(e) => {
                if e.code() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    tracing::debug!(step = "write", table = s.table, error = %redact(&e.to_string()), "binary COPY not usable for this table; inserting instead");
                    stmts.no_copy.insert(s.table.to_owned());
                }
            }
        }
    }
    let unnest: Vec<String> =
        all.iter().enumerate().map(|(i, c)| format!("${}::{}", i + 1, Column::array_type(c.sql_type))).collect();
    let n = all.len();
    let keys: Vec<String> = key_cols.iter().map(|c| quote(c.name)).collect();
    // One statement per batch: the typed columns and raw_json zipped by a multi-array unnest.
    let sql = format!(
        "INSERT INTO {t} AS t ({names}, raw_json, sync_batch_id, first_sync_batch_id)
         SELECT *, ${b}, ${b} FROM unnest({unnest}, ${j}::jsonb[]){conflict}
         RETURNING {key_text}",
        t = quote(s.table),
        names = names.join(", "),
        unnest = unnest.join(", "),
        b = n + 2,
        j = n + 1,
        conflict = if skip_stored { format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")) } else { String::new() },
        key_text = key_text_sql(&key_cols),
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(Column::param).collect();
    params.push(&raws);
    let batch = batch_id.to_owned();
    params.push(&batch);
    let stmt = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
    let inserted = tx.query(&stmt, &params).await.map_err(|e| pg(ctx(), e))?;
    inserted.iter().map(|r| col::<String>(r, 0, s.table)).collect()
}

/// Appends rows with a binary `COPY` straight into the table, inside a savepoint: the
/// server's bulk path, several times cheaper per row than `INSERT ... SELECT`. A key that
/// is stored already makes it fail and roll back to the savepoint; the caller then inserts
/// the batch row by row with `ON CONFLICT`.
async fn copy_rows(
    tx: &Transaction<'_>,
    s: &StreamDescriptor,
    all: &[&ferry_core::descriptor::Column],
    names: &[String],
    arrays: &[Column],
    raws: &[JsonText<'_>],
    batch_id: &str,
) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::types::Type;
    let sql = format!(
        "COPY {} ({}, raw_json, sync_batch_id, first_sync_batch_id) FROM STDIN (FORMAT binary)",
        quote(s.table),
        names.join(", ")
    );
    let mut types: Vec<Type> = all.iter().map(|c| Column::value_type(c.sql_type)).collect();
    types.extend([Type::JSONB, Type::TEXT, Type::TEXT]);
    let copied = async {
        // Sent together (the driver pipelines them): one round trip, not two.
        let (saved, sink) = ferry_core::futures::join!(tx.batch_execute("SAVEPOINT ferry_copy"), tx.copy_in(&sql));
        saved?;
        let sink = sink?;
        let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        let batch = batch_id.to_owned();
        for (i, raw) in raws.iter().enumerate() {
            let mut values: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a.at(i)).collect();
            values.extend([raw as &(dyn ToSql + Sync), &batch, &batch]);
            writer.as_mut().write(&values).await?;
        }
        writer.finish().await
    }
    .await;
    match copied {
        // The savepoint goes with the transaction.
        Ok(_) => Ok(()),
        Err(e) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT ferry_copy").await?;
            Err(e)
        }
    }
}

/// Writes merged rows back, one `UPDATE` each.
async fn update(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    updates: Vec<(Vec<TypedValue>, Map<String, Value>)>,
    batch_id: &str,
    outcome: &mut WriteOutcome,
) -> Result<(), SinkError> {
    if updates.is_empty() {
        return Ok(());
    }
    let ctx = || format!("writing {}", s.table);
    let key_cols: Vec<&ferry_core::descriptor::Column> = s.key_columns().collect();
    let value_cols: Vec<&ferry_core::descriptor::Column> = typed::value_columns(s).collect();
    // A column whose path the merged JSON lacks keeps its stored value ($flag false).
    let mut sets = Vec::new();
    for (i, c) in value_cols.iter().enumerate() {
        let (v, f) = (2 * i + 1, 2 * i + 2);
        sets.push(format!(
            "{col} = CASE WHEN ${f} THEN ${v}::{ty} ELSE {col} END",
            col = quote(c.name),
            ty = pg_type(c.sql_type)
        ));
    }
    let base = 2 * value_cols.len();
    sets.push(format!("raw_json = ${}", base + 1));
    sets.push(format!("sync_batch_id = ${}", base + 2));
    sets.push("synced_at = now()".into());
    sets.push("updated_at = now()".into());
    let key_where: Vec<String> = key_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} = ${}::{}", quote(c.name), base + 3 + i, pg_type(c.sql_type)))
        .collect();
    let sql = format!("UPDATE {} SET {} WHERE {}", quote(s.table), sets.join(", "), key_where.join(" AND "));
    let stmt = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
    for (key, merged) in updates {
        let values = match typed::row_values(s, &merged) {
            Ok(v) => v,
            Err(reason) => {
                outcome.stats.failed += 1;
                outcome.failures.push(RecordFailure { key: typed::key_text(&key), reason });
                continue;
            }
        };
        let mut singles: Vec<Column> = Vec::new();
        let mut flags: Vec<bool> = Vec::new();
        for (c, v) in value_cols.iter().zip(values.columns.iter()) {
            let mut col = Column::new(c.sql_type);
            col.push(v.as_ref());
            singles.push(col);
            flags.push(v.is_some());
        }
        let mut keys: Vec<Column> = Vec::new();
        for (c, v) in key_cols.iter().zip(key.iter()) {
            let mut col = Column::new(c.sql_type);
            col.push(Some(v));
            keys.push(col);
        }
        let scalars: Vec<Box<dyn ToSql + Sync + Send>> = singles.iter().chain(keys.iter()).map(scalar).collect();
        let raw = Value::Object(merged);
        let batch = batch_id.to_owned();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (i, f) in flags.iter().enumerate() {
            params.push(scalars[i].as_ref());
            params.push(f);
        }
        params.push(&raw);
        params.push(&batch);
        for k in &scalars[value_cols.len()..] {
            params.push(k.as_ref());
        }
        tx.execute(&stmt, &params).await.map_err(|e| pg(ctx(), e))?;
        outcome.stats.updated += 1;
    }
    Ok(())
}

/// The single value of a one-element column, as a scalar parameter.
fn scalar(c: &Column) -> Box<dyn ToSql + Sync + Send> {
    match c {
        Column::Text(v) => Box::new(v[0].clone()),
        Column::Int(v) => Box::new(v[0]),
        Column::Real(v) => Box::new(v[0]),
        Column::Bool(v) => Box::new(v[0]),
        Column::Ts(v) => Box::new(v[0]),
        Column::Date(v) => Box::new(v[0]),
    }
}

#[async_trait]
impl Sink for PostgresSink {
    fn location(&self) -> String {
        format!("{}, schema {}", self.where_, self.schema)
    }

    async fn init(&mut self) -> Result<(), SinkError> {
        let tx = self.client.transaction().await.map_err(|e| pg("starting migration", e))?;
        // One runner migrates at a time.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('ferry:migrations:' || $1::text))", &[&self.schema])
            .await
            .map_err(|e| pg("locking migrations", e))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS ferry_migrations (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            .await
            .map_err(|e| pg("creating ferry_migrations", e))?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt("SELECT 1 FROM ferry_migrations WHERE version = $1", &[version])
                .await
                .map_err(|e| pg("reading ferry_migrations", e))?
                .is_some();
            if !done {
                tx.batch_execute(sql).await.map_err(|e| pg(format!("applying migration {version}"), e))?;
                tx.execute("INSERT INTO ferry_migrations (version) VALUES ($1)", &[version])
                    .await
                    .map_err(|e| pg("recording migration", e))?;
            }
        }
        if self.dry_run {
            // Checked, never kept: a dry run changes no database.
            return tx.rollback().await.map_err(|e| pg("rolling back the dry run's migration check", e));
        }
        tx.commit().await.map_err(|e| pg("committing migration", e))
    }

    async fn prepare(&mut self, streams: &[&'static StreamDescriptor]) -> Result<(), SinkError> {
        self.statements.clear();
        if self.dry_run {
            for s in streams {
                let existing = self.columns(s.table).await?;
                if existing.is_empty() || s.columns.iter().any(|c| !existing.iter().any(|e| e == c.name)) {
                    self.dry_missing.insert(s.table);
                }
            }
            return Ok(());
        }
        // Runners starting at once would both create a missing table: one schema's DDL at
        // a time (a session lock, released whatever happens).
        let key = format!("{}.ddl", self.schema);
        self.client
            .execute("SELECT pg_advisory_lock(hashtext('ferry:tables'), hashtext($1::text))", &[&key])
            .await
            .map_err(|e| pg("locking the schema for table changes", e))?;
        let result = self.prepare_tables(streams).await;
        let unlocked = self
            .client
            .execute("SELECT pg_advisory_unlock(hashtext('ferry:tables'), hashtext($1::text))", &[&key])
            .await
            .map_err(|e| pg("unlocking the schema", e));
        result.and(unlocked.map(|_| ()))
    }

    async fn begin_run(&mut self, run: &RunStart) -> Result<LockOutcome, SinkError> {
        let key = run_lock_key(&self.schema, &run.pipeline);
        let got: bool = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1::bigint)", &[&key])
            .await
            .map_err(|e| pg("taking the run lock", e))
            .and_then(|r| col(&r, 0, "pg_try_advisory_lock"))?;
        if !got {
            let holder = self
                .client
                .query_opt(
                    "SELECT batch_id, started_at::text FROM sync_runs WHERE pipeline = $1 AND status = 'running' ORDER BY started_at DESC LIMIT 1",
                    &[&run.pipeline],
                )
                .await
                .map_err(|e| pg("reading the run lock", e))?;
            let (batch_id, started_at) = match holder {
                Some(r) => (col(&r, 0, "sync_runs")?, col(&r, 1, "sync_runs")?),
                None => ("unknown".into(), "unknown".into()),
            };
            return Err(SinkError::Locked { pipeline: run.pipeline.clone(), batch_id, started_at });
        }
        self.lock_key = Some(key);
        // Holding the lock, any 'running' row is left over from a runner that died.
        let stale = self
            .client
            .query(
                "UPDATE sync_runs SET status = 'abandoned', finished_at = now() WHERE pipeline = $1 AND status = 'running' RETURNING batch_id, heartbeat_at",
                &[&run.pipeline],
            )
            .await
            .map_err(|e| pg("taking over a stale run", e))?;
        let (host, pid) = ferry_core::sink::this_process();
        self.client
            .execute(
                "INSERT INTO sync_runs (batch_id, pipeline, mode, arguments, started_at, status, stats, heartbeat_at, host, pid)
                 VALUES ($1, $2, $3, $4, $5, 'running', '{}', now(), $6, $7)",
                &[&run.batch_id, &run.pipeline, &run.mode, &run.arguments, &run.started_at, &host, &(pid as i32)],
            )
            .await
            .map_err(|e| pg("recording the run", e))?;
        Ok(match stale.last() {
            Some(r) => {
                LockOutcome::TookOver { batch_id: col(r, 0, "sync_runs")?, heartbeat_at: col(r, 1, "sync_runs")? }
            }
            None => LockOutcome::Acquired,
        })
    }

    async fn heartbeat(&mut self, batch_id: &str) -> Result<(), SinkError> {
        self.client
            .execute("UPDATE sync_runs SET heartbeat_at = now() WHERE batch_id = $1", &[&batch_id])
            .await
            .map(|_| ())
            .map_err(|e| pg("updating the heartbeat", e))
    }

    async fn end_run(&mut self, end: &RunEnd, logs: Vec<LogRow>) -> Result<(), SinkError> {
        let tx = self.client.transaction().await.map_err(|e| pg("recording the run's end", e))?;
        insert_logs(&tx, &mut self.statements, &logs).await?;
        tx.execute(
            "UPDATE sync_runs SET status = $2, finished_at = $3, stats = $4, heartbeat_at = $3 WHERE batch_id = $1",
            &[&end.batch_id, &end.status, &end.finished_at, &end.stats],
        )
        .await
        .map_err(|e| pg("recording the run's end", e))?;
        tx.commit().await.map_err(|e| pg("recording the run's end", e))?;
        if let Some(key) = self.lock_key.take() {
            self.client
                .execute("SELECT pg_advisory_unlock($1::bigint)", &[&key])
                .await
                .map_err(|e| pg("releasing the run lock", e))?;
        }
        Ok(())
    }

    async fn load_state(&mut self, pipeline: &str) -> Result<Vec<StateEntry>, SinkError> {
        if self.dry_run && self.columns("sync_state").await?.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT stream, partition, cursor, batch_id, updated_at FROM sync_state WHERE pipeline = $1 ORDER BY stream, partition",
                &[&pipeline],
            )
            .await
            .map_err(|e| pg("reading sync_state", e))?;
        rows.iter()
            .map(|r| {
                let t = "sync_state";
                Ok(StateEntry {
                    stream: col(r, 0, t)?,
                    partition: col(r, 1, t)?,
                    cursor: col(r, 2, t)?,
                    batch_id: col(r, 3, t)?,
                    updated_at: col(r, 4, t)?,
                })
            })
            .collect()
    }

    async fn write(&mut self, batch: WriteBatch) -> Result<WriteOutcome, SinkError> {
        if self.dry_run && self.dry_missing.contains(batch.stream.table) {
            // The table does not exist yet: every record it would take is new.
            let mut outcome = WriteOutcome::default();
            let mut seen = std::collections::HashSet::new();
            for r in &batch.records {
                match r.refusal() {
                    Some(f) => {
                        outcome.stats.failed += 1;
                        outcome.failures.push(f);
                    }
                    None if seen.insert(r.key.as_ref().map(|k| format!("{k:?}")).unwrap_or_default()) => {
                        outcome.stats.inserted += 1
                    }
                    None => outcome.stats.unchanged += 1,
                }
            }
            return Ok(outcome);
        }
        let tx = self.client.transaction().await.map_err(|e| pg("starting a batch", e))?;
        // Runners of other pipelines may write the same table: each batch's lookup, insert
        // and merge-update happen under a per-table transaction lock (released at commit),
        // so two writers never both insert a key or merge over each other. The two-int
        // form is a keyspace of its own, apart from the run locks.
        let lock = stmts_lock(&mut self.statements, &tx).await?;
        let table = format!("{}.{}", self.schema, batch.stream.table);
        tx.execute(&lock, &[&table]).await.map_err(|e| pg(format!("locking {}", batch.stream.table), e))?;
        let outcome = upsert(&tx, &mut self.statements, batch.stream, batch.records, &batch.batch_id).await?;
        if let Some(state) = &batch.state {
            set_cursor(
                &tx,
                &mut self.statements,
                &batch.pipeline,
                batch.stream.name,
                &state.partition,
                &state.checkpoint,
                &batch.batch_id,
            )
            .await?;
        }
        insert_logs(&tx, &mut self.statements, &batch.logs).await?;
        if batch.dry_run {
            tx.rollback().await.map_err(|e| pg("rolling back the dry run", e))?;
        } else {
            tx.commit().await.map_err(|e| pg(format!("committing {}", batch.stream.table), e))?;
        }
        Ok(outcome)
    }

    async fn write_logs(&mut self, logs: Vec<LogRow>) -> Result<(), SinkError> {
        let tx = self.client.transaction().await.map_err(|e| pg("writing sync_logs", e))?;
        insert_logs(&tx, &mut self.statements, &logs).await?;
        tx.commit().await.map_err(|e| pg("writing sync_logs", e))
    }

    async fn set_state(
        &mut self,
        pipeline: &str,
        batch_id: &str,
        entries: Vec<(String, String, Option<Value>)>,
    ) -> Result<u64, SinkError> {
        let tx = self.client.transaction().await.map_err(|e| pg("changing sync_state", e))?;
        let mut changed = 0;
        for (stream, partition, cursor) in entries {
            changed += match (partition.as_str(), cursor) {
                ("*", None) => tx
                    .execute("DELETE FROM sync_state WHERE pipeline = $1 AND stream = $2", &[&pipeline, &stream])
                    .await
                    .map_err(|e| pg("changing sync_state", e))?,
                ("*", Some(c)) => tx
                    .execute(
                        "UPDATE sync_state SET cursor = $3, batch_id = $4, updated_at = now() WHERE pipeline = $1 AND stream = $2",
                        &[&pipeline, &stream, &c, &batch_id],
                    )
                    .await
                    .map_err(|e| pg("changing sync_state", e))?,
                (p, None) => set_cursor(&tx, &mut self.statements, pipeline, &stream, p, &Checkpoint::Clear, batch_id).await?,
                (p, Some(c)) => set_cursor(&tx, &mut self.statements, pipeline, &stream, p, &Checkpoint::Set(c), batch_id).await?,
            };
        }
        tx.commit().await.map_err(|e| pg("changing sync_state", e))?;
        Ok(changed)
    }

    async fn recent_runs(&mut self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT batch_id, pipeline, mode, arguments, started_at, finished_at, status, stats, heartbeat_at
                 FROM sync_runs WHERE pipeline = $1 ORDER BY started_at DESC LIMIT $2",
                &[&pipeline, &(limit.min(i64::MAX as usize) as i64)],
            )
            .await
            .map_err(|e| pg("reading sync_runs", e))?;
        rows.iter().map(run_record).collect()
    }

    async fn recent_errors(
        &mut self,
        pipeline: &str,
        batch_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogRow>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT batch_id, level, step, message, meta, created_at FROM sync_logs
                 WHERE level IN ('WARN', 'ERROR') AND ($1::text IS NULL OR batch_id = $1) AND pipeline = $3
                 ORDER BY id DESC LIMIT $2",
                &[&batch_id, &(limit.min(i64::MAX as usize) as i64), &pipeline],
            )
            .await
            .map_err(|e| pg("reading sync_logs", e))?;
        rows.iter()
            .map(|r| {
                let t = "sync_logs";
                Ok(LogRow {
                    batch_id: col(r, 0, t)?,
                    level: col(r, 1, t)?,
                    step: col(r, 2, t)?,
                    message: col(r, 3, t)?,
                    meta: col::<Option<Value>>(r, 4, t)?.unwrap_or(Value::Null),
                    created_at: col(r, 5, t)?,
                })
            })
            .collect()
    }

    async fn prune_logs(&mut self, pipeline: &str, before: DateTime<Utc>) -> Result<u64, SinkError> {
        self.client
            .execute("DELETE FROM sync_logs WHERE created_at < $1 AND pipeline = $2", &[&before, &pipeline])
            .await
            .map_err(|e| pg("pruning sync_logs", e))
    }
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink").field("at", &self.where_).field("schema", &self.schema).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lock_keys_differ_across_pipelines_and_schemas() {
        let mut seen = std::collections::HashSet::new();
        for schema in ["public", "instantly", "tenant_7"] {
            for i in 0..20_000 {
                assert!(seen.insert(run_lock_key(schema, &format!("pipeline-{i}"))), "{schema} {i}");
            }
        }
        // Texts that join to the same string are different pairs.
        assert_ne!(run_lock_key("a", "b:c"), run_lock_key("a:b", "c"));
        assert_eq!(run_lock_key("public", "daily"), run_lock_key("public", "daily"));
    }
}
