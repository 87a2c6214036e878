//! `[source]` settings of an Instantly pipeline.

use std::collections::BTreeMap;

use ferry_core::error::ConfigError;
use ferry_core::http::{Budget, RetryPolicy};
use ferry_core::secret::Secret;
use serde::Deserialize;

/// The default base URL of API v2.
pub const DEFAULT_BASE_URL: &str = "https://api.instantly.ai/api/v2";

/// Budget names.
pub const WORKSPACE: &str = "workspace";
/// The `/emails` budget (20 requests per minute, documented).
pub const EMAILS: &str = "emails";

/// `[source] connector = "instantly"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstantlyConfig {
    /// API v2 key; defaults to `INSTANTLY_API_KEY` from the environment or `.env`.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// API base URL.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// User-Agent sent with every request (some proxies block requests without one).
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// First day `--all` and first runs fetch date-grained streams from (YYYY-MM-DD).
    #[serde(default = "default_start_date")]
    pub start_date: String,
    /// Rate-limit budgets by name (`workspace`, `emails`).
    #[serde(default)]
    pub rate_limits: BTreeMap<String, Budget>,
    /// Retry behaviour.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Emails: overlap re-read behind the saved cursor, in minutes.
    #[serde(default = "default_overlap")]
    pub emails_overlap_minutes: u32,
    /// Daily analytics: days re-read behind the saved cursor (past days get revised).
    #[serde(default = "default_lookback")]
    pub daily_lookback_days: u32,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_user_agent() -> String {
    format!("ferry/{} (+https://github.com/ferry-etl/ferry)", env!("CARGO_PKG_VERSION"))
}
fn default_start_date() -> String {
    "2024-01-01".to_owned()
}
fn default_overlap() -> u32 {
    60
}
fn default_lookback() -> u32 {
    7
}

/// The budgets unless the pipeline overrides them: well under the documented
/// 100 req/s and 6,000 req/min, since other integrations share the workspace's budget,
/// and the documented 20 req/min of `/emails`.
pub fn default_budgets() -> BTreeMap<String, Budget> {
    let mut b = BTreeMap::new();
    b.insert(WORKSPACE.to_owned(), Budget { per_second: Some(10), per_minute: Some(600) });
    b.insert(EMAILS.to_owned(), Budget { per_second: None, per_minute: Some(20) });
    b
}

impl InstantlyConfig {
    /// Fills defaults and validates.
    pub fn resolve(mut self) -> Result<Self, ConfigError> {
        if self.api_key.as_ref().is_none_or(Secret::is_empty) {
            match std::env::var("INSTANTLY_API_KEY") {
                Ok(k) if !k.trim().is_empty() => self.api_key = Some(Secret::new(k.trim())),
                _ => {
                    return Err(ConfigError::Other(
                        "instantly: no API key: set INSTANTLY_API_KEY (environment or .env) or `api_key` in [source]; create a v2 key with the all:read scope in Instantly under Settings > Integrations > API Keys".into(),
                    ));
                }
            }
        }
        ferry_core::http::check_budgets("instantly", &self.rate_limits).map_err(ConfigError::Other)?;
        let mut budgets = default_budgets();
        for (name, b) in std::mem::take(&mut self.rate_limits) {
            if name != WORKSPACE && name != EMAILS {
                return Err(ConfigError::Other(format!(
                    "instantly: unknown rate-limit budget `{name}`; budgets are `{WORKSPACE}` and `{EMAILS}`"
                )));
            }
            budgets.insert(name, b);
        }
        self.rate_limits = budgets;
        self.base_url = self.base_url.trim_end_matches('/').to_owned();
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(ConfigError::Other(format!(
                "instantly: base_url `{}` must start with http:// or https://",
                self.base_url
            )));
        }
        let start = ferry_core::window::parse_date(&self.start_date)
            .map_err(|e| ConfigError::Other(format!("instantly: start_date: {e}")))?;
        if start > chrono::Utc::now() {
            return Err(ConfigError::Other(format!(
                "instantly: start_date = \"{}\" is in the future: nothing would be fetched; use a past date",
                self.start_date
            )));
        }
        Ok(self)
    }
}
