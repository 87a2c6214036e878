//! Stream descriptors: what a connector declares about each stream it offers.

use std::fmt;

/// SQL type of a typed column. Sinks map these to their own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// Text; numbers and booleans are stored in their JSON text form.
    Text,
    /// 64-bit integer; accepts JSON integers, booleans and integral strings.
    Integer,
    /// Double; accepts JSON numbers and numeric strings.
    Real,
    /// Boolean (0/1 in SQLite).
    Boolean,
    /// A timestamp kept as the source's ISO 8601 text (`timestamptz` in Postgres).
    Timestamp,
    /// A calendar date `YYYY-MM-DD` (`date` in Postgres).
    Date,
}

impl SqlType {
    /// The name `ferry connectors` prints.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Text => "text",
            SqlType::Integer => "integer",
            SqlType::Real => "real",
            SqlType::Boolean => "boolean",
            SqlType::Timestamp => "timestamp",
            SqlType::Date => "date",
        }
    }
}

/// A typed column extracted from the record's JSON.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name in the table.
    pub name: &'static str,
    /// Its SQL type.
    pub sql_type: SqlType,
    /// Dotted path into the record (`"payload.email"`).
    pub path: &'static str,
    /// Whether a missing or null value is an error (the primary key columns are).
    pub required: bool,
}

impl Column {
    /// An optional column read from `path`.
    pub const fn new(name: &'static str, sql_type: SqlType, path: &'static str) -> Self {
        Column { name, sql_type, path, required: false }
    }

    /// A column that must be present and non-null (used for primary keys).
    pub const fn key(name: &'static str, sql_type: SqlType, path: &'static str) -> Self {
        Column { name, sql_type, path, required: true }
    }
}

/// How a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Fetched whole each run; no cursor (resumable positions may still be saved).
    FullRefresh,
    /// A point-in-time snapshot of current state, fetched each run.
    Snapshot,
    /// Only new or changed items, by a cursor field.
    Incremental {
        /// The record field the cursor follows.
        cursor_field: &'static str,
    },
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncMode::FullRefresh => f.write_str("full refresh"),
            SyncMode::Snapshot => f.write_str("snapshot"),
            SyncMode::Incremental { cursor_field } => write!(f, "incremental on {cursor_field}"),
        }
    }
}

impl SyncMode {
    /// The kind of mode, as messages name it: `full-refresh`, `snapshot`, `incremental`.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncMode::FullRefresh => "full-refresh",
            SyncMode::Snapshot => "snapshot",
            SyncMode::Incremental { .. } => "incremental",
        }
    }

    /// Whether the stream is fetched whole every run (full refresh and snapshots).
    pub fn is_whole(&self) -> bool {
        !matches!(self, SyncMode::Incremental { .. })
    }
}

/// The time flags of `ferry sync` an incremental stream honours, declared by its
/// connector. Full-refresh and snapshot streams declare [`TimeFlagSupport::NONE`]: they
/// are fetched whole every run, so the flags have no use for them and are reported as
/// ignored. An incremental stream refuses (before anything is fetched) a flag it does
/// not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeFlagSupport {
    /// `--rollback`: `Source::cursor_at` gives the stream's cursor for a date.
    pub rollback: bool,
    /// `--from/--to/--last`: reads honour `ReadRequest::window` and leave the cursor alone.
    pub window: bool,
}

impl TimeFlagSupport {
    /// Honours none (every full-refresh or snapshot stream, and incremental streams whose
    /// cursor is not a date).
    pub const NONE: TimeFlagSupport = TimeFlagSupport { rollback: false, window: false };
    /// Honours `--rollback`, `--from/--to` and `--last`.
    pub const ALL: TimeFlagSupport = TimeFlagSupport { rollback: true, window: true };
}

/// What a stream does with a time flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagUse {
    /// The stream honours it.
    Honoured,
    /// The stream is fetched whole every run; the flag has no use for it (reported).
    Ignored,
    /// The stream cannot honour it; the run is refused.
    Refused,
}

/// Whether and how a stream is split into partitions read concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    /// One partition (named `""`).
    None,
    /// Partitions the source lists at run time (e.g. one per region).
    Dynamic {
        /// What a partition is, for people (`"region"`).
        by: &'static str,
    },
    /// The stream depends on another of its connector (its parent): the parent's records
    /// of the run commit before this stream writes, and this stream's partitions come
    /// from them ([`crate::source::Source::partitions_from`]). A run that selects this
    /// stream reads its parent too.
    Parent {
        /// The parent stream's name.
        stream: &'static str,
        /// What a partition is, for people (`"campaign"`).
        by: &'static str,
    },
}

impl Partitioning {
    /// The stream this one depends on.
    pub fn parent(&self) -> Option<&'static str> {
        match self {
            Partitioning::Parent { stream, .. } => Some(stream),
            _ => None,
        }
    }
}

/// Everything ferry needs to know about a stream, registered with
/// `inventory::submit!` by its connector.
#[derive(Debug)]
pub struct StreamDescriptor {
    /// The connector that owns the stream.
    pub connector: &'static str,
    /// Stream name, unique within its connector.
    pub name: &'static str,
    /// Destination table.
    pub table: &'static str,
    /// Names of the columns (from `columns`) that form the primary key.
    pub primary_key: &'static [&'static str],
    /// Typed columns, including the key columns.
    pub columns: &'static [Column],
    /// How the stream is read.
    pub mode: SyncMode,
    /// Partitioning.
    pub partitioning: Partitioning,
    /// Days re-read behind the cursor on each incremental run (analytics get revised).
    pub default_lookback_days: u32,
    /// The time flags the stream honours (`--rollback`, `--from/--to/--last`).
    pub time_flags: TimeFlagSupport,
    /// One line for `ferry connectors`.
    pub description: &'static str,
    /// Taking over a table an older tool wrote: for each key column that table lacks, an
    /// SQLite expression computing it from an old row (e.g. `("scope", "'workspace'")`).
    pub legacy_key: &'static [(&'static str, &'static str)],
}

inventory::collect!(StreamDescriptor);

impl StreamDescriptor {
    /// The key columns, in key order.
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.primary_key.iter().filter_map(|k| self.columns.iter().find(|c| c.name == *k))
    }

    /// What the stream does with `flag`: from its sync mode and its declared support.
    pub fn flag_use(&self, flag: crate::window::TimeFlag) -> FlagUse {
        if self.mode.is_whole() {
            return FlagUse::Ignored;
        }
        let honoured = if flag.is_window() { self.time_flags.window } else { self.time_flags.rollback };
        if honoured { FlagUse::Honoured } else { FlagUse::Refused }
    }

    /// The time flags, for `ferry connectors`: those honoured, refused or ignored.
    pub fn time_flags_summary(&self) -> String {
        if self.mode.is_whole() {
            return format!("ignored ({}: fetched whole)", self.mode.kind());
        }
        let flags = [("--rollback", self.time_flags.rollback), ("--from/--to, --last", self.time_flags.window)];
        let names = |honoured: bool| flags.iter().filter(|f| f.1 == honoured).map(|f| f.0).collect::<Vec<_>>();
        match (names(true), names(false)) {
            (yes, no) if no.is_empty() => yes.join(", "),
            (yes, no) if yes.is_empty() => format!("refused: {}", no.join(", ")),
            (yes, no) => format!("{} (refused: {})", yes.join(", "), no.join(", ")),
        }
    }

    /// Checks the descriptor is coherent: the key names columns, names are valid SQL
    /// identifiers, no column repeats.
    pub fn validate(&self) -> Result<(), String> {
        crate::ident::validate(self.table).map_err(|e| format!("table: {e}"))?;
        if self.primary_key.is_empty() {
            return Err("no primary key".into());
        }
        for k in self.primary_key {
            if !self.columns.iter().any(|c| c.name == *k) {
                return Err(format!("primary key `{k}` is not a declared column"));
            }
        }
        if self.mode.is_whole() && self.time_flags != TimeFlagSupport::NONE {
            return Err(format!(
                "a {} stream is fetched whole every run and cannot honour time flags: declare TimeFlagSupport::NONE",
                self.mode.kind()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in self.columns {
            crate::ident::validate(c.name).map_err(|e| format!("column: {e}"))?;
            if crate::ident::RESERVED_COLUMNS.contains(&c.name) {
                return Err(format!("column `{}` is reserved for ferry", c.name));
            }
            if !seen.insert(c.name) {
                return Err(format!("column `{}` declared twice", c.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::TimeFlag;

    const COLUMNS: &[Column] = &[Column::key("id", SqlType::Text, "id")];

    fn stream(mode: SyncMode, time_flags: TimeFlagSupport) -> StreamDescriptor {
        StreamDescriptor {
            connector: "c",
            name: "s",
            table: "c_s",
            primary_key: &["id"],
            columns: COLUMNS,
            mode,
            partitioning: Partitioning::None,
            default_lookback_days: 0,
            time_flags,
            description: "",
            legacy_key: &[],
        }
    }

    #[test]
    fn time_flags_follow_the_mode_and_the_declaration() {
        let dated = SyncMode::Incremental { cursor_field: "updated_at" };
        let s = stream(dated, TimeFlagSupport { rollback: true, window: false });
        assert_eq!(s.flag_use(TimeFlag::Rollback), FlagUse::Honoured);
        for f in [TimeFlag::From, TimeFlag::To, TimeFlag::Last] {
            assert_eq!(s.flag_use(f), FlagUse::Refused);
        }
        assert_eq!(s.time_flags_summary(), "--rollback (refused: --from/--to, --last)");
        assert_eq!(
            stream(dated, TimeFlagSupport::NONE).time_flags_summary(),
            "refused: --rollback, --from/--to, --last"
        );
        let whole = stream(SyncMode::Snapshot, TimeFlagSupport::NONE);
        assert_eq!(whole.flag_use(TimeFlag::Rollback), FlagUse::Ignored);
        assert!(whole.validate().is_ok());
        let incoherent = stream(SyncMode::FullRefresh, TimeFlagSupport::ALL);
        assert!(incoherent.validate().unwrap_err().contains("full-refresh"));
    }
}
