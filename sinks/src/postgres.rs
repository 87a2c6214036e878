//! The Postgres sink: the same tables and guarantees as SQLite, for several runners on
//! several machines writing to one database (self-hosted, or hosted such as Supabase).
//!
//! tokio-postgres over rustls (TLS when the URL's `sslmode` asks for it; `prefer` by
//! default), one connection, one transaction per batch holding the records, their
//! checkpoint and their log rows. Inserts go in one statement per batch (`unnest` of typed
//! arrays); the run lock is a session advisory lock, released by the server if the process
//! dies, so a crashed runner never blocks the next one.

use std::sync::Arc;

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
    lock_key: Option<String>,
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

fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, SinkError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::Open(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
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

/// The query parameters of a `postgres://` URL that the driver does not know, by name.
fn unsupported_parameters(url: &str) -> Vec<String> {
    const KNOWN: &[&str] = &[
        "user",
        "password",
        "dbname",
        "options",
        "application_name",
        "sslmode",
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
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !k.is_empty() && !KNOWN.contains(&k) {
                Some(format!("`{k}`"))
            } else if k == "sslmode" && !["disable", "prefer", "require"].contains(&v) {
                Some(format!("`sslmode={v}` (use disable, prefer or require)"))
            } else {
                None
            }
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
        let cfg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            let unsupported = unsupported_parameters(url);
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
        let (client, connection) = cfg.connect(tls()?).await.map_err(|e| {
            let detail = redact(&e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| {
                let mut m = e.to_string();
                if let Some(s) = std::error::Error::source(&e) {
                    m = format!("{m}: {s}");
                }
                m
            }));
            let hint = if detail.contains("certificate") {
                "the server's TLS certificate is not trusted: use a certificate from a public CA, or for a local server add ?sslmode=disable to the url"
            } else {
                "check the host, port, user and password in [sink] url"
            };
            SinkError::Open(format!("cannot connect to Postgres at {target}: {detail}; {hint}"))
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
struct Statements(std::collections::HashMap<String, tokio_postgres::Statement>);

impl Statements {
    async fn get(
        &mut self,
        tx: &impl GenericClient,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = tx.prepare(sql).await?;
        self.0.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Forgets every statement (a table's columns changed: the plans no longer fit).
    fn clear(&mut self) {
        self.0.clear();
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

/// A batch's record for one key: as prepared by the reader, or merged with a later record
/// of the same key in the same batch.
enum Pending {
    Prepared(SinkRecord),
    Merged(Map<String, Value>),
}

impl Pending {
    fn into_record(self) -> Map<String, Value> {
        match self {
            Pending::Prepared(r) => r.record(),
            Pending::Merged(m) => m,
        }
    }
}

/// Upserts a batch inside `tx`: one lookup, one multi-row insert, one update per changed row.
async fn upsert(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    records: Vec<SinkRecord>,
    batch_id: &str,
) -> Result<WriteOutcome, SinkError> {
    let ctx = || format!("writing {}", s.table);
    let mut outcome = WriteOutcome::default();
    let value_cols: Vec<&ferry_core::descriptor::Column> = typed::value_columns(s).collect();
    let key_cols: Vec<&ferry_core::descriptor::Column> = s.key_columns().collect();
    // Later records of the same key in one batch merge into the earlier ones first.
    let mut order: Vec<String> = Vec::new();
    let mut rows: std::collections::HashMap<String, (Vec<TypedValue>, Pending)> = Default::default();
    for record in records {
        if let Some(failure) = record.refusal() {
            outcome.stats.failed += 1;
            outcome.failures.push(failure);
            continue;
        }
        let key = record.key.clone().unwrap_or_default();
        let k = typed::key_text(&key);
        match rows.remove(&k) {
            Some((key, earlier)) => {
                let mut merged = earlier.into_record();
                merge_objects(&mut merged, record.record());
                rows.insert(k, (key, Pending::Merged(merged)));
            }
            None => {
                order.push(k.clone());
                rows.insert(k, (key, Pending::Prepared(record)));
            }
        }
    }
    if order.is_empty() {
        return Ok(outcome);
    }
    // Which keys exist already.
    let mut key_arrays: Vec<Column> = key_cols.iter().map(|c| Column::new(c.sql_type)).collect();
    for k in &order {
        for (i, v) in rows[k].0.iter().enumerate() {
            key_arrays[i].push(Some(v));
        }
    }
    let keys_sql: Vec<String> = key_cols.iter().map(|c| quote(c.name)).collect();
    let unnest: Vec<String> =
        key_cols.iter().enumerate().map(|(i, c)| format!("${}::{}", i + 1, Column::array_type(c.sql_type))).collect();
    // A join on the unnested keys: the planner probes the key index once per key (an
    // `IN (SELECT ...)` semi-join may scan the whole table per batch as it grows).
    let on: Vec<String> = keys_sql.iter().enumerate().map(|(i, k)| format!("t.{k} = u.k{i}")).collect();
    let lookup = format!(
        "SELECT {key_text}, t.raw_json FROM unnest({unnest}) AS u({aliases}) JOIN {table} AS t ON {on}",
        key_text =
            key_cols.iter().map(|c| format!("t.{}::text", quote(c.name))).collect::<Vec<_>>().join(" || '/' || "),
        table = quote(s.table),
        unnest = unnest.join(", "),
        aliases = (0..key_cols.len()).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", "),
        on = on.join(" AND "),
    );
    let params: Vec<&(dyn ToSql + Sync)> = key_arrays.iter().map(Column::param).collect();
    let lookup = stmts.get(tx, &lookup).await.map_err(|e| pg(ctx(), e))?;
    let found = tx.query(&lookup, &params).await.map_err(|e| pg(ctx(), e))?;
    let mut existing: std::collections::HashMap<String, Map<String, Value>> = found
        .iter()
        .map(|r| {
            Ok((
                col::<String>(r, 0, s.table)?,
                match col::<Value>(r, 1, s.table)? {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
            ))
        })
        .collect::<Result<_, SinkError>>()?;

    let mut inserts: Vec<(Vec<TypedValue>, Pending)> = Vec::new();
    let mut updates: Vec<(Vec<TypedValue>, Map<String, Value>)> = Vec::new();
    for k in order {
        let (key, record) = rows.remove(&k).expect("key listed");
        // Keys compare in Postgres's text form (dates as YYYY-MM-DD, numbers as digits).
        match existing.remove(&typed::key_text(&key)) {
            None => inserts.push((key, record)),
            Some(mut old) => {
                if merge_objects(&mut old, record.into_record()) {
                    updates.push((key, old));
                } else {
                    outcome.stats.unchanged += 1;
                }
            }
        }
    }

    if !inserts.is_empty() {
        let mut arrays: Vec<Column> =
            key_cols.iter().chain(value_cols.iter()).map(|c| Column::new(c.sql_type)).collect();
        let mut texts: Vec<String> = Vec::with_capacity(inserts.len());
        let inserted = inserts.len() as u64;
        for (key, record) in inserts {
            let (columns, text) = match record {
                Pending::Prepared(r) => (r.columns.map_err(SinkError::Schema)?, r.json),
                Pending::Merged(m) => {
                    (typed::column_values(s, &m).map_err(SinkError::Schema)?, Value::Object(m).to_string())
                }
            };
            for (i, v) in key.iter().enumerate() {
                arrays[i].push(Some(v));
            }
            for (i, v) in columns.iter().enumerate() {
                arrays[key.len() + i].push(v.as_ref());
            }
            texts.push(text);
        }
        let raws: Vec<JsonText<'_>> = texts.iter().map(|t| JsonText(t)).collect();
        let all: Vec<&ferry_core::descriptor::Column> = key_cols.iter().chain(value_cols.iter()).copied().collect();
        let names: Vec<String> = all.iter().map(|c| quote(c.name)).collect();
        let unnest: Vec<String> =
            all.iter().enumerate().map(|(i, c)| format!("${}::{}", i + 1, Column::array_type(c.sql_type))).collect();
        let n = all.len();
        // One statement per batch: the typed columns and raw_json zipped by a multi-array unnest.
        let sql = format!(
            "INSERT INTO {t} ({names}, raw_json, sync_batch_id, first_sync_batch_id)
             SELECT *, ${b}, ${b} FROM unnest({unnest}, ${j}::jsonb[])",
            t = quote(s.table),
            names = names.join(", "),
            unnest = unnest.join(", "),
            b = n + 2,
            j = n + 1,
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(Column::param).collect();
        params.push(&raws);
        let batch = batch_id.to_owned();
        params.push(&batch);
        let insert = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
        tx.execute(&insert, &params).await.map_err(|e| pg(ctx(), e))?;
        outcome.stats.inserted += inserted;
    }

    if !updates.is_empty() {
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
    }
    Ok(outcome)
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
        let key = format!("ferry:{}:{}", self.schema, run.pipeline);
        let got: bool = self
            .client
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
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
                .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
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
