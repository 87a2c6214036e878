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
use ferry_core::futures;
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
use tokio_postgres::{Client, GenericClient};

/// The column holding [`json_hash`] of each row.
const HASH_COLUMN: &str = "raw_json_hash";

fn add_hash_column(s: &StreamDescriptor) -> String {
    format!("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {HASH_COLUMN} BIGINT", quote(s.table))
}

/// Opens a batch's transaction. Its commit does not wait for the disk flush: a batch's
/// rows and its checkpoint still commit or vanish together (a server crash can lose the
/// last moments of commits, never half of one, and the re-run fetches them again), and the
/// run's final record commits with the server's own setting, which flushes every batch
/// before it: when a run is reported finished, its batches are on disk. Without this, a
/// 1M-record sync spent a tenth of its time waiting for 2,000 flushes.
const BEGIN_BATCH: &str = "BEGIN; SET LOCAL synchronous_commit TO off";

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
    /// Dry run: tables of an earlier version, without [`HASH_COLUMN`]; each batch adds it
    /// inside its transaction, which rolls back.
    dry_no_hash: std::collections::HashSet<&'static str>,
    /// A batch's transaction was begun and not yet committed or rolled back.
    open: bool,
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
    pg_ref(context, &e)
}

fn pg_ref(context: impl Into<String>, e: &tokio_postgres::Error) -> SinkError {
    let detail = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| {
        let mut m = e.to_string();
        let mut src = std::error::Error::source(e);
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
        match self {
            Column::Text(c) => c.push(match Cell::of(SqlType::Text, v) {
                Cell::Text(t) => Some(t.into_owned()),
                _ => None,
            }),
            Column::Int(c) => c.push(match Cell::of(SqlType::Integer, v) {
                Cell::Int(i) => Some(i),
                _ => None,
            }),
            Column::Real(c) => c.push(match Cell::of(SqlType::Real, v) {
                Cell::Real(f) => Some(f),
                _ => None,
            }),
            Column::Bool(c) => c.push(match Cell::of(SqlType::Boolean, v) {
                Cell::Bool(b) => Some(b),
                _ => None,
            }),
            Column::Ts(c) => c.push(match Cell::of(SqlType::Timestamp, v) {
                Cell::Ts(t) => Some(t),
                _ => None,
            }),
            Column::Date(c) => c.push(match Cell::of(SqlType::Date, v) {
                Cell::Date(d) => Some(d),
                _ => None,
            }),
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

/// The URL as the driver's settings and ferry's TLS settings; an unusable URL is a
/// config error naming what ferry cannot use.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, crate::postgres_tls::TlsSettings), SinkError> {
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
    Ok((cfg, tls))
}

/// Connects as libpq's `sslmode` says: `allow` tries plain first and TLS when the server
/// refuses a connection without it; `prefer` TLS when offered and plain when the TLS
/// handshake itself fails; the others TLS only. The connection's task is spawned.
async fn open_connection(
    cfg: &tokio_postgres::Config,
    tls: &crate::postgres_tls::TlsSettings,
) -> Result<Result<Client, tokio_postgres::Error>, SinkError> {
    use crate::postgres_tls::SslMode as Mode;
    use tokio_postgres::config::SslMode as Driver;
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls.client_config()?);
    let attempt = |mode: Driver| {
        let mut cfg = cfg.clone();
        cfg.ssl_mode(mode);
        let connector = connector.clone();
        async move {
            let (client, connection) = cfg.connect(connector).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::error!(step = "sink", error = %redact(&e.to_string()), "the Postgres connection ended");
                }
            });
            Ok(client)
        }
    };
    Ok(match tls.mode {
        Mode::Disable => attempt(Driver::Disable).await,
        Mode::Allow => match attempt(Driver::Disable).await {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
                attempt(Driver::Require).await
            }
            other => other,
        },
        Mode::Prefer => match attempt(Driver::Prefer).await {
            Err(e) if e.as_db_error().is_none() && e.to_string().contains("TLS") => attempt(Driver::Disable).await,
            other => other,
        },
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => attempt(Driver::Require).await,
    })
}

/// Why a connection failed, in the server's or the driver's words, and what to do.
fn connect_error(e: &tokio_postgres::Error, tls: &crate::postgres_tls::TlsSettings, hosts: &str) -> String {
    let detail = redact(&e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| {
        let mut m = e.to_string();
        if let Some(s) = std::error::Error::source(e) {
            m = format!("{m}: {s}");
        }
        m
    }));
    let hint = tls.explain(&detail, hosts).unwrap_or_else(|| match e.as_db_error() {
        // The other end spoke, but not Postgres's protocol.
        None if detail.contains("bytes remaining") || detail.contains("unexpected message") => {
            "the server at that port does not speak Postgres's protocol: check the host and port in [sink] url"
                .to_owned()
        }
        _ => "check the host, port, user and password in [sink] url".to_owned(),
    });
    format!("{detail}; {hint}")
}

impl PostgresSink {
    /// Writes a batch of new rows with a binary `COPY` in two round trips: BEGIN, the table
    /// lock and the COPY statement; then the rows, the checkpoint, the log rows and the
    /// COMMIT. A stored key makes the COPY fail and the COMMIT roll back.
    async fn copy_batch(
        &mut self,
        stream: &StreamDescriptor,
        rows: &[Row],
        batch_id: &str,
        lock: &tokio_postgres::Statement,
        table: &str,
        ending: &Ending<'_>,
    ) -> Result<Copied, SinkError> {
        let payload = match copy_payload(stream, rows, batch_id) {
            Ok(p) => p,
            Err(reason) => return Ok(Copied::Unusable(reason)),
        };
        let stmt = match self.statements.get(&self.client, &copy_sql(stream)).await {
            Ok(stmt) => stmt,
            Err(e) => return Ok(Copied::Unusable(e.to_string())),
        };
        let lock_params: [&(dyn ToSql + Sync); 1] = [&table];
        let begin = self.begin_sql(stream);
        self.open = true;
        let db = &self.client;
        let (begun, locked, sink) = futures::join!(
            db.batch_execute(&begin),
            db.execute(lock, &lock_params),
            db.copy_in::<_, bytes::Bytes>(&stmt),
        );
        let result = async {
            begun.map_err(|e| pg("starting a batch", e))?;
            locked.map_err(|e| pg(format!("locking {}", stream.table), e))?;
            // The table refuses the COPY itself (a privilege, a column gone): that is the
            // batch's error. (The driver's connection does not survive this; the run ends.)
            let sink = sink.map_err(|e| pg(format!("writing {}", stream.table), e))?;
            let copy = async {
                let mut sink = std::pin::pin!(sink);
                futures::SinkExt::send(&mut sink, payload).await?;
                sink.finish().await
            };
            match ending.send(db, stream, copy).await {
                (Ok(_), ended) => ended.map(|()| Copied::All),
                (Err(e), _) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                    Ok(Copied::KeyStored)
                }
                (Err(e), _) => Ok(Copied::Unusable(e.to_string())),
            }
        }
        .await;
        if matches!(result, Ok(Copied::All)) {
            self.open = false;
        } else {
            // A failed COPY turned the COMMIT into a rollback; this makes sure.
            self.settle().await;
        }
        result
    }

    /// What opens a batch's transaction ([`BEGIN_BATCH`]); in a dry run on a table of an
    /// earlier version, also the column this version writes (rolled back with the batch).
    fn begin_sql(&self, s: &StreamDescriptor) -> String {
        if self.dry_no_hash.contains(s.table) {
            format!("{BEGIN_BATCH}; {}", add_hash_column(s))
        } else {
            BEGIN_BATCH.to_owned()
        }
    }

    /// How each table's first batch is written: an empty table copies it in; a table
    /// with rows compares it first, so a re-run's first batch does not fail a COPY on a
    /// stored key (an ERROR line in the server's log per table and run).
    async fn first_mix(&mut self, streams: &[&'static StreamDescriptor]) -> Result<(), SinkError> {
        for s in streams {
            if self.dry_missing.contains(s.table) {
                continue;
            }
            let sql = format!("SELECT EXISTS (SELECT FROM {})", quote(s.table));
            let row = self.client.query_one(&sql, &[]).await.map_err(|e| pg(format!("reading {}", s.table), e))?;
            let mix = if col::<bool>(&row, 0, s.table)? { Mix::MostlyStored } else { Mix::AllNew };
            self.statements.mix.insert(s.table.to_owned(), mix);
        }
        Ok(())
    }

    /// Rolls back a batch's transaction that did not end (its statement failed, or its
    /// write was abandoned midway), so the next statement does not run inside it.
    async fn settle(&mut self) {
        if self.open {
            // The connection may be gone; the next statement then says so.
            let _ = self.client.batch_execute("ROLLBACK").await;
            self.open = false;
        }
    }

    /// Connects and checks the schema exists.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, SinkError> {
        if let Ok(cfg) = url.parse::<tokio_postgres::Config>()
            && let Some(p) = cfg.get_password()
        {
            ferry_core::secret::register(&String::from_utf8_lossy(p));
        }
        ident::validate(schema).map_err(|e| SinkError::Config(ConfigError::Other(format!("[sink] schema: {e}"))))?;
        let (cfg, tls) = parse_url(url)?;
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
        // A server that accepts the connection and never answers (a wrong port behind a
        // firewall, a stuck pooler) must not hold the run forever: the URL's
        // `connect_timeout`, or 30 seconds, for the whole connection, handshakes included.
        let limit = cfg.get_connect_timeout().copied().unwrap_or(std::time::Duration::from_secs(30));
        let Ok(connected) = tokio::time::timeout(limit, open_connection(&cfg, &tls)).await else {
            return Err(SinkError::Open(format!(
                "cannot connect to Postgres at {target}: no answer within {} s; check the host and port in [sink] url (is it a Postgres server?), or raise `connect_timeout` there",
                limit.as_secs()
            )));
        };
        let client = connected?.map_err(|e| {
            SinkError::Open(format!(
                "cannot connect to Postgres at {target} (sslmode={}): {}",
                tls.mode.name(),
                connect_error(&e, &tls, &hosts.join(","))
            ))
        })?;
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
            dry_no_hash: Default::default(),
            open: false,
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
                cols.push(format!("{HASH_COLUMN} BIGINT"));
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
            if !existing.iter().any(|e| e == HASH_COLUMN) {
                // A table of an earlier version: its rows get their hash when next seen.
                self.client
                    .batch_execute(&add_hash_column(s))
                    .await
                    .map_err(|e| pg(format!("adding column {}.{HASH_COLUMN}", s.table), e))?;
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
    /// Per table: what its last batch held, which decides how the next is written.
    mix: std::collections::HashMap<String, Mix>,
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

/// Stores log rows (inside the caller's transaction).
async fn insert_logs(db: &impl GenericClient, stmts: &mut Statements, logs: &[LogRow]) -> Result<(), SinkError> {
    if logs.is_empty() {
        return Ok(());
    }
    let stmt = log_statement(stmts, db).await?;
    LogColumns::of(logs).insert(db, &stmt).await
}

async fn log_statement(
    stmts: &mut Statements,
    db: &impl GenericClient,
) -> Result<tokio_postgres::Statement, SinkError> {
    stmts
        .get(
            db,
            "INSERT INTO sync_logs (batch_id, pipeline, level, step, message, meta, created_at)
             SELECT b, (SELECT pipeline FROM sync_runs WHERE batch_id = b), l, s, m, j, c
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])
                  WITH ORDINALITY AS u(b, l, s, m, j, c, n)
             ORDER BY n",
        )
        .await
        .map_err(|e| pg("writing sync_logs", e))
}

/// Log rows as columns: all of them go in one statement, so they can travel with the
/// batch's commit.
struct LogColumns<'a> {
    batch_id: Vec<&'a str>,
    level: Vec<&'a str>,
    step: Vec<&'a str>,
    message: Vec<&'a str>,
    meta: Vec<&'a Value>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> LogColumns<'a> {
    fn of(logs: &'a [LogRow]) -> Self {
        LogColumns {
            batch_id: logs.iter().map(|l| l.batch_id.as_str()).collect(),
            level: logs.iter().map(|l| l.level.as_str()).collect(),
            step: logs.iter().map(|l| l.step.as_str()).collect(),
            message: logs.iter().map(|l| l.message.as_str()).collect(),
            meta: logs.iter().map(|l| &l.meta).collect(),
            created_at: logs.iter().map(|l| l.created_at).collect(),
        }
    }

    async fn insert(&self, db: &impl GenericClient, stmt: &tokio_postgres::Statement) -> Result<(), SinkError> {
        if self.batch_id.is_empty() {
            return Ok(());
        }
        db.execute(stmt, &[&self.batch_id, &self.level, &self.step, &self.message, &self.meta, &self.created_at])
            .await
            .map(|_| ())
            .map_err(|e| pg("writing sync_logs", e))
    }
}

/// Saves a checkpoint (inside the caller's transaction).
async fn set_cursor(
    db: &impl GenericClient,
    stmts: &mut Statements,
    pipeline: &str,
    stream: &str,
    partition: &str,
    checkpoint: &Checkpoint,
    batch_id: &str,
) -> Result<u64, SinkError> {
    let stmt = checkpoint_statement(stmts, db, checkpoint).await?;
    CheckpointRow { pipeline, stream, partition, checkpoint, batch_id }.save(db, &stmt).await
}

async fn checkpoint_statement(
    stmts: &mut Statements,
    db: &impl GenericClient,
    checkpoint: &Checkpoint,
) -> Result<tokio_postgres::Statement, SinkError> {
    let sql = match checkpoint {
        Checkpoint::Set(_) => {
            "INSERT INTO sync_state (pipeline, stream, partition, cursor, batch_id, updated_at) VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (pipeline, stream, partition) DO UPDATE SET cursor = excluded.cursor, batch_id = excluded.batch_id, updated_at = excluded.updated_at"
        }
        Checkpoint::Clear => "DELETE FROM sync_state WHERE pipeline = $1 AND stream = $2 AND partition = $3",
    };
    stmts.get(db, sql).await.map_err(|e| pg("saving the checkpoint", e))
}

/// What ends a batch's transaction, sent with its last statement so that the whole end
/// costs one round trip: the checkpoint, the log rows and the COMMIT (ROLLBACK for a dry
/// run). Its statements are prepared beforehand, so none can fall behind the COMMIT.
struct Ending<'a> {
    checkpoint: Option<(tokio_postgres::Statement, CheckpointRow<'a>)>,
    logs: Option<(tokio_postgres::Statement, LogColumns<'a>)>,
    end: &'static str,
}

impl<'a> Ending<'a> {
    async fn prepare(stmts: &mut Statements, db: &Client, batch: &'a WriteBatch) -> Result<Self, SinkError> {
        let checkpoint = match &batch.state {
            Some(state) => Some((
                checkpoint_statement(stmts, db, &state.checkpoint).await?,
                CheckpointRow {
                    pipeline: &batch.pipeline,
                    stream: batch.stream.name,
                    partition: &state.partition,
                    checkpoint: &state.checkpoint,
                    batch_id: &batch.batch_id,
                },
            )),
            None => None,
        };
        let logs = match batch.logs.as_slice() {
            [] => None,
            logs => Some((log_statement(stmts, db).await?, LogColumns::of(logs))),
        };
        Ok(Ending { checkpoint, logs, end: if batch.dry_run { "ROLLBACK" } else { "COMMIT" } })
    }

    /// Sends `first` (the batch's last statement), the checkpoint, the log rows and the
    /// COMMIT together; returns `first`'s result and the end's. A failed statement turns
    /// the COMMIT into a rollback, and the end's result names that statement.
    async fn send<F>(
        &self,
        db: &Client,
        s: &StreamDescriptor,
        first: F,
    ) -> (Result<u64, tokio_postgres::Error>, Result<(), SinkError>)
    where
        F: std::future::Future<Output = Result<u64, tokio_postgres::Error>>,
    {
        let (first, saved, logged, ended) = futures::join!(
            first,
            async {
                match &self.checkpoint {
                    Some((stmt, row)) => row.save(db, stmt).await.map(|_| ()),
                    None => Ok(()),
                }
            },
            async {
                match &self.logs {
                    Some((stmt, logs)) => logs.insert(db, stmt).await,
                    None => Ok(()),
                }
            },
            db.batch_execute(self.end),
        );
        let end = match (&first, saved, logged) {
            (Err(e), _, _) => Err(pg_ref(format!("writing {}", s.table), e)),
            (Ok(_), Err(e), _) | (Ok(_), Ok(()), Err(e)) => Err(e),
            (Ok(_), Ok(()), Ok(())) => ended.map_err(|e| pg(format!("committing {}", s.table), e)),
        };
        (first, end)
    }
}

/// One partition's checkpoint, for [`checkpoint_statement`].
struct CheckpointRow<'a> {
    pipeline: &'a str,
    stream: &'a str,
    partition: &'a str,
    checkpoint: &'a Checkpoint,
    batch_id: &'a str,
}

impl CheckpointRow<'_> {
    async fn save(&self, db: &impl GenericClient, stmt: &tokio_postgres::Statement) -> Result<u64, SinkError> {
        let r = match self.checkpoint {
            Checkpoint::Set(cursor) => {
                db.execute(stmt, &[&self.pipeline, &self.stream, &self.partition, cursor, &self.batch_id]).await
            }
            Checkpoint::Clear => db.execute(stmt, &[&self.pipeline, &self.stream, &self.partition]).await,
        };
        r.map_err(|e| pg("saving the checkpoint", e))
    }
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

async fn stmts_lock(stmts: &mut Statements, db: &impl GenericClient) -> Result<tokio_postgres::Statement, SinkError> {
    stmts
        .get(db, "SELECT pg_advisory_xact_lock(hashtext('ferry:tables'), hashtext($1::text))")
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

/// One value as its column takes it: the record's value converted by the column's type
/// (a value that does not convert is NULL, as the typed column of every sink holds it).
enum Cell<'a> {
    Null,
    Text(std::borrow::Cow<'a, str>),
    Int(i64),
    Real(f64),
    Bool(bool),
    Ts(DateTime<Utc>),
    Date(NaiveDate),
    /// JSON text, sent as it is.
    Json(&'a str),
}

impl<'a> Cell<'a> {
    fn of(t: SqlType, v: Option<&'a TypedValue>) -> Self {
        let text = |v: &'a TypedValue| match v {
            TypedValue::Text(s) => std::borrow::Cow::Borrowed(s.as_str()),
            other => std::borrow::Cow::Owned(other.to_key_text()),
        };
        let Some(v) = v.filter(|v| **v != TypedValue::Null) else { return Cell::Null };
        let cell = match (t, v) {
            (SqlType::Text, v) => Some(Cell::Text(text(v))),
            (SqlType::Integer, TypedValue::Integer(i)) => Some(Cell::Int(*i)),
            (SqlType::Integer, TypedValue::Bool(b)) => Some(Cell::Int(i64::from(*b))),
            (SqlType::Real, TypedValue::Real(f)) => Some(Cell::Real(*f)),
            (SqlType::Real, TypedValue::Integer(i)) => Some(Cell::Real(*i as f64)),
            (SqlType::Boolean, TypedValue::Bool(b)) => Some(Cell::Bool(*b)),
            (SqlType::Timestamp, v) => typed::parse_timestamp(&text(v)).map(Cell::Ts),
            (SqlType::Date, v) => NaiveDate::parse_from_str(&text(v), "%Y-%m-%d").ok().map(Cell::Date),
            _ => None,
        };
        cell.unwrap_or(Cell::Null)
    }

    /// Appends the value to a binary `COPY` row: its length, then its bytes as the
    /// driver encodes the type.
    fn encode(&self, buf: &mut bytes::BytesMut) -> Result<(), String> {
        use tokio_postgres::types::Type;
        let at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        let written = match self {
            Cell::Null => {
                buf[at..].copy_from_slice(&(-1i32).to_be_bytes());
                return Ok(());
            }
            // Text is its UTF-8 bytes (the driver's encoder first compares the type's name
            // with three extension types, per value: a twentieth of the client's time).
            Cell::Text(t) => {
                buf.extend_from_slice(t.as_bytes());
                Ok(tokio_postgres::types::IsNull::No)
            }
            Cell::Int(i) => i.to_sql(&Type::INT8, buf),
            Cell::Real(f) => f.to_sql(&Type::FLOAT8, buf),
            Cell::Bool(b) => b.to_sql(&Type::BOOL, buf),
            Cell::Ts(t) => t.to_sql(&Type::TIMESTAMPTZ, buf),
            Cell::Date(d) => d.to_sql(&Type::DATE, buf),
            Cell::Json(j) => JsonText(j).to_sql(&Type::JSONB, buf),
        };
        written.map_err(|e| e.to_string())?;
        let len = i32::try_from(buf.len() - at - 4).map_err(|_| "a value larger than 2 GiB".to_owned())?;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// A batch's record for one key: its key (and the key's text, [`key_id`]), its text
/// (canonical JSON) and its typed columns.
struct Row {
    key: Vec<TypedValue>,
    id: String,
    json: String,
    columns: Vec<Option<TypedValue>>,
    /// [`json_hash`] of `json`.
    hash: i64,
}

/// XXH3 (64 bits) of a record's text, stored as `raw_json_hash`: the hash of the
/// last record text merged into the row (or found to change nothing in it). Merging is
/// idempotent, so a record whose text hashes the same changes nothing, and a re-run tells
/// its unchanged rows by comparing 8 bytes in the server instead of parsing and comparing
/// every document (which was two thirds of the server's work in an all-unchanged re-run).
/// A different hash is not a change by itself: the stored document is fetched and merged.
/// A specified algorithm, so stored hashes stay valid across versions; not a cryptographic
/// one, as nothing is gained by forging it: whoever controls the records can send the old
/// record itself.
fn json_hash(json: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(json.as_bytes()) as i64
}

/// A batch's records as rows, one per key (a later record of a key is merged into the
/// earlier one); records no table can hold are refused into `outcome`.
fn batch_rows(
    s: &StreamDescriptor,
    records: Vec<SinkRecord>,
    outcome: &mut WriteOutcome,
) -> Result<Vec<Row>, SinkError> {
    let mut rows: Vec<Row> = Vec::with_capacity(records.len());
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::with_capacity(records.len());
    for record in records {
        if let Some(failure) = record.refusal() {
            outcome.stats.failed += 1;
            outcome.failures.push(failure);
            continue;
        }
        let (Ok(key), Ok(columns)) = (record.key, record.columns) else { continue };
        let id = key_id(&key);
        match index.get(&id) {
            Some(&at) => {
                let earlier = &mut rows[at];
                let mut merged: Map<String, Value> = serde_json::from_str(&earlier.json).unwrap_or_default();
                merge_objects(&mut merged, serde_json::from_str(&record.json).unwrap_or_default());
                earlier.columns = typed::column_values(s, &merged).map_err(SinkError::Schema)?;
                earlier.json = Value::Object(merged).to_string();
                earlier.hash = json_hash(&earlier.json);
            }
            None => {
                index.insert(id.clone(), rows.len());
                let hash = json_hash(&record.json);
                rows.push(Row { key, id, json: record.json, columns, hash });
            }
        }
    }
    Ok(rows)
}

/// A dry run's outcome for a table that does not exist yet: every record it would take is
/// new (a key seen earlier in the batch merges, unchanged).
fn all_new(records: &[SinkRecord]) -> WriteOutcome {
    let mut outcome = WriteOutcome::default();
    let mut seen = std::collections::HashSet::new();
    for r in records {
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
    outcome
}

/// What the previous batch of a table held, which decides how the next one is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Only new keys (a first sync): the next batch is copied in.
    AllNew,
    /// Some stored keys: inserted with `ON CONFLICT DO NOTHING` first.
    MostlyNew,
    /// Mostly stored keys (a re-run): compared first.
    MostlyStored,
}

/// Upserts rows in set-based statements: the new rows in one `INSERT`, the stored rows
/// compared by [`json_hash`] in the server ([`compare`]: a row of the same hash never
/// travels back), and one `UPDATE` per changed row.
async fn upsert(
    tx: &Client,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    batch: Vec<Row>,
    batch_id: &str,
    outcome: &mut WriteOutcome,
) -> Result<(), SinkError> {
    if batch.is_empty() {
        return Ok(());
    }
    // Mostly new rows insert first (`ON CONFLICT DO NOTHING` returns what was new) and
    // compare the rest; mostly stored rows compare first and insert what is missing.
    let (inserted_first, rest) = if stmts.mix.get(s.table) == Some(&Mix::MostlyStored) {
        (0, batch)
    } else {
        let inserted = insert(tx, stmts, s, &batch, batch_id).await?;
        (inserted.len(), batch.into_iter().filter(|r| !inserted.contains(&r.id)).collect())
    };
    let mut found = if rest.is_empty() { Default::default() } else { compare(tx, stmts, s, &rest).await? };
    let stored_keys = rest.len();
    let mut missing = Vec::new();
    let mut updates: Vec<(Vec<TypedValue>, Map<String, Value>, i64)> = Vec::new();
    let mut unchanged = Vec::new();
    for row in rest {
        match found.remove(&row.id) {
            // The same hash: the same record as last time, which changes nothing.
            None => outcome.stats.unchanged += 1,
            Some(Stored::Missing) => missing.push(row),
            Some(Stored::Differs(mut old)) => {
                if merge_objects(&mut old, serde_json::from_str(&row.json).unwrap_or_default()) {
                    updates.push((row.key, old, row.hash));
                } else {
                    outcome.stats.unchanged += 1;
                    unchanged.push(row);
                }
            }
        }
    }
    rehash(tx, stmts, s, &unchanged).await?;
    // A row deleted by someone else since the insert above is inserted again.
    let inserted = inserted_first + insert(tx, stmts, s, &missing, batch_id).await?.len();
    outcome.stats.inserted += inserted as u64;
    let stored = stored_keys - missing.len();
    let mix = match stored {
        0 => Mix::AllNew,
        n if n > inserted => Mix::MostlyStored,
        _ => Mix::MostlyNew,
    };
    stmts.mix.insert(s.table.to_owned(), mix);
    update(tx, stmts, s, updates, batch_id, outcome).await
}

/// A batch's row as the table holds it, when it does not hold it as the batch has it.
enum Stored {
    /// No row has the key.
    Missing,
    /// The stored object, which differs from the batch's.
    Differs(Map<String, Value>),
}

/// The key columns of `rows` as typed arrays, and their SQL: `$1::type[], ...` and the
/// join of the unnested keys (aliased `u.k0`, ...) with the table's (aliased `t`).
struct KeyArrays {
    arrays: Vec<Column>,
    unnest: Vec<String>,
    on: String,
    names: String,
}

impl KeyArrays {
    fn of(s: &StreamDescriptor, rows: &[Row]) -> Self {
        let key_cols: Vec<&ferry_core::descriptor::Column> = s.key_columns().collect();
        let mut arrays: Vec<Column> = key_cols.iter().map(|c| Column::new(c.sql_type)).collect();
        for row in rows {
            for (i, v) in row.key.iter().enumerate() {
                arrays[i].push(Some(v));
            }
        }
        let unnest = key_cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, Column::array_type(c.sql_type)))
            .collect();
        // A join on the unnested keys: the planner probes the key index once per key (an
        // `IN (SELECT ...)` semi-join may scan the whole table per batch as it grows).
        let on: Vec<String> =
            key_cols.iter().enumerate().map(|(i, c)| format!("t.{} = u.k{i}", quote(c.name))).collect();
        let names: Vec<String> = (0..key_cols.len()).map(|i| format!("k{i}")).collect();
        KeyArrays { arrays, unnest, on: on.join(" AND "), names: names.join(", ") }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.arrays.iter().map(Column::param).collect()
    }

    /// The unnested keys' text, as [`key_id`] writes it.
    fn key_text(&self) -> String {
        let parts: Vec<String> = (0..self.arrays.len()).map(|i| format!("u.k{i}")).collect();
        key_text_sql(&parts)
    }
}

/// The rows of `batch` the table does not hold as they are, by key text ([`key_id`]): a
/// key it lacks, or a row whose [`json_hash`] differs from the batch's, with its stored
/// object. A row of the same hash is not read at all.
async fn compare(
    tx: &Client,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    batch: &[Row],
) -> Result<std::collections::HashMap<String, Stored>, SinkError> {
    let ctx = || format!("writing {}", s.table);
    let keys = KeyArrays::of(s, batch);
    let hashes: Vec<i64> = batch.iter().map(|r| r.hash).collect();
    let sql = format!(
        "SELECT {key_text}, t.raw_json
         FROM unnest({unnest}, ${h}::int8[]) AS u({names}, h) LEFT JOIN {table} AS t ON {on}
         WHERE t.{HASH_COLUMN} IS DISTINCT FROM u.h",
        key_text = keys.key_text(),
        table = quote(s.table),
        unnest = keys.unnest.join(", "),
        h = keys.arrays.len() + 1,
        names = keys.names,
        on = keys.on,
    );
    let mut params = keys.params();
    params.push(&hashes);
    let stmt = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
    let found = tx.query(&stmt, &params).await.map_err(|e| pg(ctx(), e))?;
    found
        .iter()
        .map(|r| {
            let stored = match col::<Option<Value>>(r, 1, s.table)? {
                None => Stored::Missing,
                Some(Value::Object(m)) => Stored::Differs(m),
                Some(_) => Stored::Differs(Map::new()),
            };
            Ok((col::<String>(r, 0, s.table)?, stored))
        })
        .collect()
}

/// Records the batch's hash on stored rows it leaves unchanged (a row written by an
/// earlier version, or whose stored text the server formats differently), so the next
/// run with the same records compares hashes only. The row is otherwise untouched.
async fn rehash(tx: &Client, stmts: &mut Statements, s: &StreamDescriptor, rows: &[Row]) -> Result<(), SinkError> {
    if rows.is_empty() {
        return Ok(());
    }
    let keys = KeyArrays::of(s, rows);
    let hashes: Vec<i64> = rows.iter().map(|r| r.hash).collect();
    let sql = format!(
        "UPDATE {table} AS t SET {HASH_COLUMN} = u.h FROM unnest({unnest}, ${h}::int8[]) AS u({names}, h) WHERE {on}",
        table = quote(s.table),
        unnest = keys.unnest.join(", "),
        h = keys.arrays.len() + 1,
        names = keys.names,
        on = keys.on,
    );
    let mut params = keys.params();
    params.push(&hashes);
    let ctx = || format!("writing {}", s.table);
    let stmt = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
    tx.execute(&stmt, &params).await.map_err(|e| pg(ctx(), e))?;
    Ok(())
}

/// A key as text in SQL, as [`key_id`] writes it, from the expressions of its parts.
fn key_text_sql(parts: &[String]) -> String {
    if let [only] = parts {
        return format!("{only}::text");
    }
    parts.iter().map(|p| format!("length({p}::text) || ':' || {p}::text")).collect::<Vec<_>>().join(" || ")
}

/// The key columns of the row aliased `t`, as SQL expressions.
fn table_key(key_cols: &[&ferry_core::descriptor::Column]) -> Vec<String> {
    key_cols.iter().map(|c| format!("t.{}", quote(c.name))).collect()
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

/// Inserts `rows` in one statement; rows whose key is stored are left alone (`ON CONFLICT
/// DO NOTHING`). Returns the keys inserted.
async fn insert(
    tx: &Client,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    rows: &[Row],
    batch_id: &str,
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
    let hashes: Vec<i64> = rows.iter().map(|r| r.hash).collect();
    let all: Vec<&ferry_core::descriptor::Column> = key_cols.iter().chain(value_cols.iter()).copied().collect();
    let names: Vec<String> = all.iter().map(|c| quote(c.name)).collect();
    let unnest: Vec<String> =
        all.iter().enumerate().map(|(i, c)| format!("${}::{}", i + 1, Column::array_type(c.sql_type))).collect();
    let n = all.len();
    let keys: Vec<String> = key_cols.iter().map(|c| quote(c.name)).collect();
    // One statement per batch: the typed columns and raw_json zipped by a multi-array unnest.
    let sql = format!(
        "INSERT INTO {t} AS t ({names}, raw_json, {HASH_COLUMN}, sync_batch_id, first_sync_batch_id)
         SELECT *, ${b}, ${b} FROM unnest({unnest}, ${j}::jsonb[], ${h}::int8[])
         ON CONFLICT ({keys}) DO NOTHING
         RETURNING {key_text}",
        t = quote(s.table),
        names = names.join(", "),
        unnest = unnest.join(", "),
        b = n + 3,
        j = n + 1,
        h = n + 2,
        keys = keys.join(", "),
        key_text = key_text_sql(&table_key(&key_cols)),
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(Column::param).collect();
    params.push(&raws);
    params.push(&hashes);
    let batch = batch_id.to_owned();
    params.push(&batch);
    let stmt = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
    let inserted = tx.query(&stmt, &params).await.map_err(|e| pg(ctx(), e))?;
    inserted.iter().map(|r| col::<String>(r, 0, s.table)).collect()
}

/// How a binary `COPY` of a batch went.
enum Copied {
    /// Every row was copied and the transaction committed.
    All,
    /// A key of the batch is stored already: the transaction rolled back.
    KeyStored,
    /// The table or a value does not fit the binary format (a column's type changed by
    /// hand, a value out of the server's range): the transaction rolled back.
    Unusable(String),
}

/// The batch's rows in the binary `COPY` format, in one buffer sent as one message (the
/// driver's own binary writer hands every 4 KiB to the connection task through a one-slot
/// channel, a thread hand-off each time: a third of the COPY's time in the benchmark).
/// `Err` names a value the format cannot carry.
fn copy_payload(s: &StreamDescriptor, rows: &[Row], batch_id: &str) -> Result<bytes::Bytes, String> {
    let types: Vec<SqlType> = s.key_columns().chain(typed::value_columns(s)).map(|c| c.sql_type).collect();
    let fields = i16::try_from(types.len() + 4).map_err(|_| "more than 32,000 columns".to_owned())?;
    let mut buf = bytes::BytesMut::with_capacity(rows.iter().map(|r| r.json.len() + 128).sum::<usize>() + 32);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&[0; 8]); // flags, header extension length
    for row in rows {
        buf.extend_from_slice(&fields.to_be_bytes());
        let values = row.key.iter().map(Some).chain(row.columns.iter().map(Option::as_ref));
        for (t, v) in types.iter().zip(values) {
            Cell::of(*t, v).encode(&mut buf)?;
        }
        Cell::Json(&row.json).encode(&mut buf)?;
        Cell::Int(row.hash).encode(&mut buf)?;
        for _ in 0..2 {
            Cell::Text(batch_id.into()).encode(&mut buf)?;
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(buf.freeze())
}

fn copy_sql(s: &StreamDescriptor) -> String {
    let names: Vec<String> = s.key_columns().chain(typed::value_columns(s)).map(|c| quote(c.name)).collect();
    format!(
        "COPY {} ({}, raw_json, {HASH_COLUMN}, sync_batch_id, first_sync_batch_id) FROM STDIN (FORMAT binary)",
        quote(s.table),
        names.join(", ")
    )
}

/// Writes merged rows back, one `UPDATE` each.
async fn update(
    tx: &Client,
    stmts: &mut Statements,
    s: &StreamDescriptor,
    updates: Vec<(Vec<TypedValue>, Map<String, Value>, i64)>,
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
    sets.push(format!("{HASH_COLUMN} = ${}", base + 3));
    let key_where: Vec<String> = key_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} = ${}::{}", quote(c.name), base + 4 + i, pg_type(c.sql_type)))
        .collect();
    let sql = format!("UPDATE {} SET {} WHERE {}", quote(s.table), sets.join(", "), key_where.join(" AND "));
    let stmt = stmts.get(tx, &sql).await.map_err(|e| pg(ctx(), e))?;
    for (key, merged, hash) in updates {
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
        params.push(&hash);
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
                } else if !existing.iter().any(|e| e == HASH_COLUMN) {
                    self.dry_no_hash.insert(s.table);
                }
            }
            return self.first_mix(streams).await;
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
        result.and(unlocked.map(|_| ()))?;
        self.first_mix(streams).await
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

    async fn write(&mut self, mut batch: WriteBatch) -> Result<WriteOutcome, SinkError> {
        if self.dry_run && self.dry_missing.contains(batch.stream.table) {
            return Ok(all_new(&batch.records));
        }
        self.settle().await;
        let stream = batch.stream;
        let mut outcome = WriteOutcome::default();
        let rows = batch_rows(stream, std::mem::take(&mut batch.records), &mut outcome)?;
        let ending = Ending::prepare(&mut self.statements, &self.client, &batch).await?;
        let lock = stmts_lock(&mut self.statements, &self.client).await?;
        // Runners of other pipelines may write the same table: each batch's lookup, insert
        // and merge-update happen under a per-table transaction lock (released at commit),
        // so two writers never both insert a key or merge over each other. The two-int
        // form is a keyspace of its own, apart from the run locks.
        let table = format!("{}.{}", self.schema, stream.table);
        let all_new = self.statements.mix.get(stream.table).is_none_or(|m| *m == Mix::AllNew);
        if all_new && !rows.is_empty() && !self.statements.no_copy.contains(stream.table) {
            match self.copy_batch(stream, &rows, &batch.batch_id, &lock, &table, &ending).await? {
                Copied::All => {
                    outcome.stats.inserted += rows.len() as u64;
                    return Ok(outcome);
                }
                Copied::KeyStored => {
                    self.statements.mix.insert(stream.table.to_owned(), Mix::MostlyNew);
                }
                Copied::Unusable(reason) => {
                    tracing::debug!(step = "write", table = stream.table, error = %redact(&reason), "binary COPY not usable for this table; inserting instead");
                    self.statements.no_copy.insert(stream.table.to_owned());
                }
            }
        }
        let lock_params: [&(dyn ToSql + Sync); 1] = [&table];
        let begin = self.begin_sql(stream);
        self.open = true;
        let db = &self.client;
        // Sent at once and answered in order (the driver pipelines requests polled
        // together): BEGIN and the lock travel with the batch's first statement.
        let (begun, locked, written) = futures::join!(
            db.batch_execute(&begin),
            db.execute(&lock, &lock_params),
            upsert(db, &mut self.statements, stream, rows, &batch.batch_id, &mut outcome),
        );
        let result = async {
            begun.map_err(|e| pg("starting a batch", e))?;
            locked.map_err(|e| pg(format!("locking {}", stream.table), e))?;
            written?;
            ending.send(db, stream, std::future::ready(Ok(0))).await.1
        }
        .await;
        match result {
            Ok(()) => {
                self.open = false;
                Ok(outcome)
            }
            Err(e) => {
                self.settle().await;
                Err(e)
            }
        }
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
