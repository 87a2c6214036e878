//! Error types of the core library.

use std::path::PathBuf;

/// A pipeline file or setting that cannot be used. Users fix these (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or shape error, with location.
    #[error("{file}: {message}")]
    Parse {
        /// The file (or `<default pipeline>`).
        file: String,
        /// toml's message, including line and column.
        message: String,
    },
    /// A setting is wrong.
    #[error("{file}: {location}{message}")]
    Invalid {
        /// The file.
        file: String,
        /// `line N: ` when known.
        location: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// `${VAR}` names a variable that is not set.
    #[error("{file}: environment variable {var} is not set (used by `{key}`); export it or add it to .env")]
    MissingVar {
        /// The file.
        file: String,
        /// The variable.
        var: String,
        /// The setting using it.
        key: String,
    },
    /// A connector, sink, transform or stream name that is not registered.
    #[error("unknown {kind} `{name}`; available: {available}")]
    Unknown {
        /// `connector`, `sink`, `transform`, `stream`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// Registered names.
        available: String,
    },
    /// A time flag (`--rollback`, `--from`, `--to`, `--last`) that a selected incremental
    /// stream cannot honour; the run is refused before anything is fetched.
    #[error("{flags} cannot be honoured by stream {stream} ({connector}, {mode}): {hint}")]
    TimeFlagRefused {
        /// The refused flags, as typed (`--from, --to`).
        flags: String,
        /// The stream.
        stream: String,
        /// Its connector.
        connector: String,
        /// Its sync mode (`incremental on seq`).
        mode: String,
        /// What to do instead.
        hint: String,
    },
    /// Anything else the user must fix.
    #[error("{0}")]
    Other(String),
}

/// An HTTP exchange that failed after retries (or was not retryable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    /// Status code when a response came back.
    pub status: Option<u16>,
    /// The endpoint (method and path, no query secrets).
    pub endpoint: String,
    /// What failed and what to do.
    pub message: String,
}

/// A source could not produce a stream's records.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A response did not have the expected shape.
    #[error("{endpoint}: unexpected response: {message}")]
    Decode {
        /// Endpoint.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
    /// Pagination went wrong (a repeated cursor, a repeated page).
    #[error("{endpoint}: {message}")]
    Pagination {
        /// Endpoint.
        endpoint: String,
        /// What happened, naming the cursor.
        message: String,
    },
    /// Anything else (synthetic failure points, configuration found at read time).
    #[error("{0}")]
    Other(String),
}

impl SourceError {
    /// The HTTP status, when the error came from a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            SourceError::Http(e) => e.status,
            _ => None,
        }
    }
}

/// A sink could not store something.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Another run holds the pipeline's lock.
    #[error(
        "another run of pipeline `{pipeline}` is in progress (batch {batch_id}, started {started_at}); wait for it or pass --wait"
    )]
    Locked {
        /// Pipeline.
        pipeline: String,
        /// The holder's batch id.
        batch_id: String,
        /// When it started.
        started_at: String,
    },
    /// The destination cannot be opened (path, permissions, connection).
    #[error("{0}")]
    Open(String),
    /// A statement failed.
    #[error("{context}: {message}")]
    Database {
        /// What ferry was doing.
        context: String,
        /// The database's message (never containing credentials).
        message: String,
    },
    /// A descriptor or migration problem.
    #[error("{0}")]
    Schema(String),
    /// The sink's settings are wrong (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl SinkError {
    /// Wraps a database error with what ferry was doing.
    pub fn db(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        SinkError::Database { context: context.into(), message: crate::secret::redact(&err.to_string()) }
    }
}

/// A transform could not process a record.
#[derive(Debug, thiserror::Error)]
#[error("transform `{transform}`: {message}")]
pub struct TransformError {
    /// The transform.
    pub transform: String,
    /// What went wrong.
    pub message: String,
}

/// ferry's process exit codes, all in one place (`ferry --help` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything ran as asked.
    Ok = 0,
    /// The run or command failed (also a run stopped by its time limit).
    Failed = 1,
    /// A usage or configuration error: nothing was done.
    Usage = 2,
    /// Some streams failed; what the others read is stored.
    Partial = 3,
    /// Another run of the pipeline holds the lock (`EX_TEMPFAIL`: try again later).
    Locked = 75,
    /// Stopped by a signal (128 + SIGINT).
    Interrupted = 130,
}

impl Exit {
    /// Every code, for help texts and their test.
    pub const ALL: [Exit; 6] = [Exit::Ok, Exit::Failed, Exit::Usage, Exit::Partial, Exit::Locked, Exit::Interrupted];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }
}
