//! Pipeline files (TOML): parsing, `${VAR}` interpolation, `.env` loading and typed
//! settings for connectors, sinks and transforms.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ConfigError;
use crate::registry::Registry;

/// Loads `.env` from the working directory if there is one; variables already set win.
/// A missing file is the normal case; one that cannot be parsed is an error naming its
/// line (never its text, which may hold a secret).
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(line, column)) => {
            let path = std::env::current_dir().map(|d| d.join(".env")).unwrap_or_else(|_| PathBuf::from(".env"));
            let number = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.lines().position(|l| l == line || l.trim() == line.trim()))
                .map(|i| format!("line {}", i + 1))
                .unwrap_or_else(|| "a line".into());
            Err(ConfigError::Other(format!(
                "{}: {number} cannot be parsed (at character {column}): write NAME=value, quote values with spaces or #, and remove stray characters",
                path.display()
            )))
        }
        Err(e) => Err(ConfigError::Other(format!("cannot read .env: {e}"))),
    }
}

/// The settings of one section (`[source]`, `[sink]`, one `[[transforms]]`), after
/// interpolation, ready for the component to deserialize into its own typed config.
#[derive(Debug, Clone)]
pub struct Settings {
    table: toml::Table,
    file: String,
    section: String,
    text: std::sync::Arc<str>,
}

impl Settings {
    /// Settings from a table (tests, built-in defaults).
    pub fn from_table(section: &str, table: toml::Table) -> Self {
        Settings { table, file: "<settings>".into(), section: section.into(), text: "".into() }
    }

    /// A config error about `key` of this section, located at its line when it is there.
    pub fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            location: locate_key(&self.text, &self.section, key).map(|l| format!("line {l}: ")).unwrap_or_default(),
            message,
        }
    }

    /// Deserializes the section into a component's config type. Use
    /// `#[serde(deny_unknown_fields)]` on it: unknown keys are reported with their line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        // `${VAR}` is expanded here, when the component is built, so commands that only
        // need the sink (status, state) work without the source's credentials.
        let mut table = self.table.clone();
        interpolate_table(&mut table, &self.section, &self.file)?;
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let detail = plain_types(inner.message().trim());
            let message = if path.is_empty() || path == "." { detail.clone() } else { format!("`{path}`: {detail}") };
            let leaf = path.rsplit('.').next().filter(|p| !p.is_empty() && *p != "?");
            let key = backticked_after(&detail, "unknown field")
                .or_else(|| backticked_after(&detail, "missing field"))
                .or(leaf);
            let location = key
                .and_then(|k| locate_key(&self.text, &self.section, k))
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            ConfigError::Invalid {
                file: self.file.clone(),
                location,
                message: format!("[{}]: {message}", self.section),
            }
        })
    }
}

/// serde's Rust type names in a message, in words a user of a TOML file knows.
fn plain_types(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, plain) in [
        ("usize", "a whole number"),
        ("u64", "a whole number"),
        ("u32", "a whole number"),
        ("u16", "a whole number"),
        ("u8", "a whole number"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("f64", "a number"),
        ("f32", "a number"),
        ("a sequence", "a list"),
        ("a map", "a table"),
    ] {
        out = out.replace(&format!("expected {rust}"), &format!("expected {plain}"));
    }
    out
}

fn backticked_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &message[message.find(marker)? + marker.len()..];
    let start = rest.find('`')? + 1;
    let end = start + rest[start..].find('`')?;
    Some(&rest[start..end])
}

/// Finds the 1-based line of `key = ...` inside `[section]` (or `[[section]]`).
fn locate_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let header = section.split('#').next().unwrap_or(section);
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').split(']').next().unwrap_or("").trim();
            inside = name == header;
            continue;
        }
        if inside {
            let k = t.split('=').next().unwrap_or("").trim().trim_matches('"');
            if k == key {
                return Some(i + 1);
            }
        }
    }
    None
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    batch_size: Option<usize>,
    #[serde(default)]
    streams: Option<Vec<String>>,
    #[serde(default)]
    timeout: Option<String>,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Directory of the daily JSONL files and `errors/`.
    #[serde(default = "default_log_dir")]
    pub dir: PathBuf,
    /// Console level (`error`, `warn`, `info`, `debug`, `trace`).
    #[serde(default = "default_level")]
    pub level: String,
    /// How long the daily files are kept.
    #[serde(default = "default_retention")]
    pub retention_days: Retention,
    /// How long `sync_logs` rows are kept.
    #[serde(default = "default_db_retention")]
    pub sync_logs_retention_days: Retention,
}

/// A retention setting: a number of days (1 to 36500) or `"forever"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep this many days.
    Days(u32),
    /// Never prune.
    Forever,
}

/// The most days a retention setting accepts (100 years); beyond that, say `"forever"`.
pub const MAX_RETENTION_DAYS: i64 = 36_500;

impl Retention {
    /// Everything older than the returned instant is pruned; `None` keeps everything.
    pub fn cutoff(self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Retention::Days(d) => now.checked_sub_signed(chrono::Duration::days(i64::from(d))),
            Retention::Forever => None,
        }
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Days(i64),
            Word(String),
        }
        let usage = "use a number of days from 1 to 36500, or \"forever\" to keep everything";
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(usage))? {
            Raw::Days(n) if (1..=MAX_RETENTION_DAYS).contains(&n) => Ok(Retention::Days(n as u32)),
            Raw::Days(n) => Err(serde::de::Error::custom(format!("{n} days: {usage}"))),
            Raw::Word(w) if w == "forever" => Ok(Retention::Forever),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("\"{w}\": {usage}"))),
        }
    }
}

fn default_log_dir() -> PathBuf {
    PathBuf::from("logs")
}
fn default_level() -> String {
    "info".into()
}
fn default_retention() -> Retention {
    Retention::Days(30)
}
fn default_db_retention() -> Retention {
    Retention::Days(365)
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            dir: default_log_dir(),
            level: default_level(),
            retention_days: default_retention(),
            sync_logs_retention_days: default_db_retention(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: PipelineSection,
    source: toml::Table,
    #[serde(default)]
    transforms: Vec<toml::Table>,
    #[serde(default)]
    sink: Option<toml::Table>,
    #[serde(default)]
    logging: Option<LoggingConfig>,
}

/// One `[[transforms]]` entry.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    /// Registered transform name.
    pub kind: String,
    /// Streams it applies to (all when `None`).
    pub streams: Option<Vec<String>>,
    /// Its own settings.
    pub settings: Settings,
}

/// A parsed, interpolated pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where it came from (a path, or `<default pipeline for NAME>`).
    pub file: String,
    /// `[pipeline] name`: state, runs and locks are per name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Stream partitions read at once.
    pub concurrency: usize,
    /// Records per sink transaction (1..=500).
    pub batch_size: usize,
    /// Streams selected in the file (all when `None`).
    pub streams: Option<Vec<String>>,
    /// Run time limit.
    pub timeout: Option<Duration>,
    /// `[source] connector`.
    pub connector: String,
    /// `[source]` without `connector`.
    pub source: Settings,
    /// `[[transforms]]`.
    pub transforms: Vec<TransformConfig>,
    /// `[sink] type` (default `sqlite`).
    pub sink_type: String,
    /// `[sink]` without `type`.
    pub sink: Settings,
    /// `[logging]`.
    pub logging: LoggingConfig,
}

/// Console levels `[logging] level` accepts.
pub const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// The largest batch the engine hands a sink.
pub const MAX_BATCH: usize = 500;

impl PipelineConfig {
    /// Reads a pipeline: `spec` is a TOML file path, or the name of a registered
    /// connector, which resolves to that connector's default pipeline.
    pub fn resolve(spec: &str) -> Result<Self, ConfigError> {
        let path = Path::new(spec);
        // `ferry sync instantly` uses ./instantly.toml when there is one: the file a user
        // copies from the examples to change settings wins over the built-in default.
        let local = PathBuf::from(format!("{spec}.toml"));
        if !spec.is_empty() && !spec.contains(['/', '\\']) && !spec.ends_with(".toml") && local.is_file() {
            let text =
                std::fs::read_to_string(&local).map_err(|source| ConfigError::Read { path: local.clone(), source })?;
            return Self::parse(&text, &local.display().to_string());
        }
        if path.exists() || spec.ends_with(".toml") || spec.contains('/') {
            let text =
                std::fs::read_to_string(path).map_err(|source| match source.kind() {
                    // A database or another binary file given where a pipeline belongs.
                    std::io::ErrorKind::InvalidData => ConfigError::Other(format!(
                        "{spec} is not a pipeline file (TOML text): pass the pipeline file that names it, or a connector name"
                    )),
                    _ => ConfigError::Read { path: path.to_owned(), source },
                })?;
            return Self::parse(&text, spec);
        }
        let registry = Registry::global()?;
        let connector = registry.connector(spec).map_err(|_| {
            ConfigError::Other(format!(
                "`{spec}` is neither a pipeline file nor a connector name; connectors: {}",
                registry.connectors.keys().copied().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let text = match connector.default_pipeline {
            Some(text) => text.to_owned(),
            None => format!(
                "[pipeline]\nname = \"{spec}\"\n\n[source]\nconnector = \"{spec}\"\n\n[sink]\ntype = \"sqlite\"\npath = \"data/{spec}.db\"\n"
            ),
        };
        Self::parse(&text, &format!("<default pipeline for {spec}>"))
    }

    /// Parses pipeline text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { file: file.to_owned(), message: plain_types(e.to_string().trim()) })?;
        let shared: std::sync::Arc<str> = text.into();
        let invalid =
            |message: String| ConfigError::Invalid { file: file.to_owned(), location: String::new(), message };
        let settings = |section: &str, table: toml::Table| -> Result<Settings, ConfigError> {
            Ok(Settings { table, file: file.to_owned(), section: section.to_owned(), text: shared.clone() })
        };

        let p = raw.pipeline;
        let name = interpolate(&p.name, "pipeline.name", file)?;
        crate::ident::validate(&name).map_err(|e| invalid(format!("[pipeline] name: {e}")))?;
        let concurrency = p.concurrency.unwrap_or(8);
        if concurrency == 0 || concurrency > 256 {
            return Err(invalid(format!("[pipeline] concurrency = {concurrency}: use 1 to 256")));
        }
        let batch_size = p.batch_size.unwrap_or(MAX_BATCH);
        if batch_size == 0 || batch_size > MAX_BATCH {
            return Err(invalid(format!("[pipeline] batch_size = {batch_size}: use 1 to {MAX_BATCH}")));
        }
        let timeout = match p.timeout {
            Some(t) => Some(crate::window::parse_duration(&t).map_err(|e| ConfigError::Invalid {
                file: file.to_owned(),
                location: locate_key(text, "pipeline", "timeout").map(|l| format!("line {l}: ")).unwrap_or_default(),
                message: format!("[pipeline] timeout = \"{t}\": {e}"),
            })?),
            None => None,
        };

        let mut source = raw.source;
        let connector = match source.remove("connector") {
            Some(toml::Value::String(c)) => c,
            Some(other) => {
                return Err(invalid(format!("[source] connector must be a string, found {}", other.type_str())));
            }
            None => {
                return Err(invalid("[source] needs `connector = \"NAME\"`; see `ferry connectors`".into()));
            }
        };
        let source = settings("source", source)?;

        let mut transforms = Vec::new();
        for (i, mut t) in raw.transforms.into_iter().enumerate() {
            let kind = match t.remove("type") {
                Some(toml::Value::String(k)) => k,
                _ => {
                    return Err(invalid(format!("[[transforms]] #{}: needs `type = \"NAME\"`", i + 1)));
                }
            };
            let streams = match t.remove("streams") {
                None => None,
                Some(v) => Some(
                    Vec::<String>::deserialize(v)
                        .map_err(|e| invalid(format!("[[transforms]] #{} streams: {}", i + 1, e.message())))?,
                ),
            };
            let settings = settings(&format!("transforms#{}", i + 1), t)?;
            transforms.push(TransformConfig { kind, streams, settings });
        }

        let mut sink = raw.sink.unwrap_or_default();
        let sink_type = match sink.remove("type") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(invalid("[sink] type must be a string".into())),
            None => "sqlite".to_owned(),
        };
        let sink = settings("sink", sink)?;

        let mut logging = raw.logging.unwrap_or_default();
        logging.dir = PathBuf::from(interpolate(&logging.dir.to_string_lossy(), "logging.dir", file)?);
        let at = |section: &str, key: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            location: locate_key(text, section, key).map(|l| format!("line {l}: ")).unwrap_or_default(),
            message,
        };
        if logging.dir.as_os_str().is_empty() {
            return Err(at("logging", "dir", "[logging] dir is empty: name a directory (default \"logs\")".into()));
        }
        if !LEVELS.contains(&logging.level.as_str()) {
            return Err(at(
                "logging",
                "level",
                format!("[logging] level = \"{}\": use {}", logging.level, LEVELS.join(", ")),
            ));
        }
        if let Some(streams) = &p.streams {
            if streams.is_empty() {
                return Err(at(
                    "pipeline",
                    "streams",
                    "[pipeline] streams = []: name at least one stream, or remove the line to sync them all".into(),
                ));
            }
            if let Some(twice) = streams.iter().enumerate().find(|(i, s)| streams[..*i].contains(s)).map(|(_, s)| s) {
                return Err(at("pipeline", "streams", format!("[pipeline] streams: `{twice}` is named twice")));
            }
        }

        Ok(PipelineConfig {
            file: file.to_owned(),
            name,
            description: p.description,
            concurrency,
            batch_size,
            streams: p.streams,
            timeout,
            connector,
            source,
            transforms,
            sink_type,
            sink,
            logging,
        })
    }
}

/// Replaces `${VAR}` in every string of a table, recursively.
fn interpolate_table(table: &mut toml::Table, prefix: &str, file: &str) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        interpolate_value(value, &format!("{prefix}.{key}"), file)?;
    }
    Ok(())
}

fn interpolate_value(value: &mut toml::Value, key: &str, file: &str) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => *s = interpolate(s, key, file)?,
        toml::Value::Array(items) => {
            for item in items {
                interpolate_value(item, key, file)?;
            }
        }
        toml::Value::Table(t) => interpolate_table(t, key, file)?,
        _ => {}
    }
    Ok(())
}

/// Registers what an environment variable holds for redaction when it is a credential: a
/// variable named like one (`..._KEY`, `TOKEN`, `SECRET`, `PASSWORD`, `PASS`), and the
/// password of any URL with one (`postgres://user:PASSWORD@host/db`), whatever the name.
fn register_credentials(var: &str, value: &str) {
    let upper = var.to_ascii_uppercase();
    if ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASS"].iter().any(|w| upper.contains(w)) {
        crate::secret::register(value);
    }
    if let Ok(url) = reqwest::Url::parse(value)
        && let Some(password) = url.password()
    {
        let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
        crate::secret::register(&decoded);
    }
}

/// Expands `${VAR}` from the environment; `$${` is a literal `${`. Values that are
/// credentials are registered for redaction ([`register_credentials`]).
pub fn interpolate(text: &str, key: &str, file: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after.find('}').ok_or_else(|| ConfigError::Invalid {
            file: file.to_owned(),
            location: String::new(),
            message: format!("`{key}`: unclosed `${{` in value"),
        })?;
        let var = &after[..end];
        let value = std::env::var(var).map_err(|_| ConfigError::MissingVar {
            file: file.to_owned(),
            var: var.to_owned(),
            key: key.to_owned(),
        })?;
        if value.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                file: file.to_owned(),
                location: String::new(),
                message: format!(
                    "environment variable {var} (used by `{key}`) contains a control character (a carriage return or newline at its end?): remove it from the environment or .env"
                ),
            });
        }
        register_credentials(var, &value);
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[pipeline]
name = "t"

[source]
connector = "synthetic"
records = 10

[[transforms]]
type = "drop_fields"
streams = ["users"]
fields = ["x"]

[sink]
type = "sqlite"
path = "data/t.db"
"#;

    #[test]
    fn parses_sections() {
        let p = PipelineConfig::parse(GOOD, "t.toml").unwrap();
        assert_eq!(p.connector, "synthetic");
        assert_eq!(p.sink_type, "sqlite");
        assert_eq!(p.transforms[0].streams.as_deref(), Some(&["users".to_owned()][..]));
        assert_eq!(p.concurrency, 8);
        assert_eq!(p.logging.retention_days, Retention::Days(30));
    }

    #[test]
    fn unknown_top_level_key_names_key_and_line() {
        let text = GOOD.replace("name = \"t\"", "name = \"t\"\nconcurency = 3");
        let err = PipelineConfig::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("concurency"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn unknown_component_key_names_key_and_line() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Src {
            records: u32,
        }
        let text = GOOD.replace("records = 10", "records = 10\nrecrods = 3");
        let p = PipelineConfig::parse(&text, "t.toml").unwrap();
        let err = p.source.parse::<Src>().unwrap_err().to_string();
        assert!(err.contains("recrods") && err.contains("line 8"), "{err}");
    }

    #[test]
    fn missing_variable_is_named() {
        let text = GOOD.replace("path = \"data/t.db\"", "path = \"${FERRY_TEST_SURELY_UNSET}/t.db\"");
        let p = PipelineConfig::parse(&text, "t.toml").unwrap();
        let err = p.sink.parse::<toml::Table>().unwrap_err().to_string();
        assert!(err.contains("FERRY_TEST_SURELY_UNSET") && err.contains("sink.path"), "{err}");
    }

    #[test]
    fn a_password_in_any_url_is_redacted_whatever_the_variable_is_called() {
        register_credentials("PG_PRIMARY", "postgres://app:pa%2Fss-7d1e9@db.internal:5432/prod");
        let shown = crate::secret::redact("connecting to postgres://app:pa%2Fss-7d1e9@db.internal with pa/ss-7d1e9");
        assert!(!shown.contains("7d1e9"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        register_credentials("NOT_A_CREDENTIAL", "plain-value-9f3a");
        assert!(crate::secret::redact("plain-value-9f3a").contains("9f3a"));
    }

    #[test]
    fn interpolation_and_escape() {
        // PATH is set in every environment ferry's tests run in (set_var is unsafe).
        let path = std::env::var("PATH").unwrap();
        assert_eq!(interpolate("${PATH}/a $${LIT}", "k", "f").unwrap(), format!("{path}/a ${{LIT}}"));
    }
}
