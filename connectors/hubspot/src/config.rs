//! `[source]` settings of a HubSpot pipeline.

use std::collections::BTreeMap;

use ferry_core::error::ConfigError;
use ferry_core::http::{Budget, RetryPolicy};
use ferry_core::secret::Secret;
use serde::Deserialize;

/// Budget names.
pub const APP: &str = "app";
/// The search endpoints' own budget (5 requests per second per account).
pub const SEARCH: &str = "search";

/// `[source] connector = "hubspot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// Private app or service key token; defaults to `HUBSPOT_ACCESS_TOKEN`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// API host.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Path of the object endpoints (`/crm/v3/objects`, or a dated version).
    #[serde(default = "default_objects_path")]
    pub objects_path: String,
    /// User-Agent.
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Properties to fetch per object type (default: every property the API lists).
    #[serde(default)]
    pub properties: BTreeMap<String, Vec<String>>,
    /// Account tier, for the per-10-second app budget: `free` / `starter` (100),
    /// `professional` / `enterprise` (190).
    #[serde(default = "default_tier")]
    pub tier: String,
    /// Budget overrides (`app`, `search`).
    #[serde(default)]
    pub rate_limits: BTreeMap<String, Budget>,
    /// Retry behaviour.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Re-read behind the saved cursor, in minutes (search results appear with a delay).
    #[serde(default = "default_lookback")]
    pub lookback_minutes: u32,
    /// Longest `properties` value of one list request, in characters. HubSpot answers 414
    /// past its URL limit, so a longer list is fetched in several requests per page whose
    /// properties are merged by id (15,000, as Airbyte's connector does).
    #[serde(default = "default_properties_chunk_chars")]
    pub properties_chunk_chars: usize,
}

fn default_base_url() -> String {
    "https://api.hubapi.com".into()
}
fn default_objects_path() -> String {
    "/crm/v3/objects".into()
}
fn default_user_agent() -> String {
    format!("ferry/{}", env!("CARGO_PKG_VERSION"))
}
fn default_tier() -> String {
    "free".into()
}
fn default_lookback() -> u32 {
    5
}
fn default_properties_chunk_chars() -> usize {
    15_000
}

impl HubspotConfig {
    /// Fills defaults and validates.
    pub fn resolve(mut self) -> Result<Self, ConfigError> {
        if self.access_token.as_ref().is_none_or(Secret::is_empty) {
            match std::env::var("HUBSPOT_ACCESS_TOKEN") {
                Ok(t) if !t.trim().is_empty() => self.access_token = Some(Secret::new(t.trim())),
                _ => {
                    return Err(ConfigError::Other(
                        "hubspot: no access token: set HUBSPOT_ACCESS_TOKEN (environment or .env) or `access_token` in [source]; create a private app or service key with the crm.objects.*.read scopes".into(),
                    ));
                }
            }
        }
        let per_10s = match self.tier.as_str() {
            "free" | "starter" => 100,
            "professional" | "enterprise" => 190,
            other => {
                return Err(ConfigError::Other(format!(
                    "hubspot: tier `{other}`: use free, starter, professional or enterprise"
                )));
            }
        };
        // N per 10 s, evenly paced, is N/10 per second.
        let mut budgets = BTreeMap::new();
        budgets.insert(APP.to_owned(), Budget { per_second: Some(per_10s / 10), per_minute: None });
        budgets.insert(SEARCH.to_owned(), Budget { per_second: Some(5), per_minute: None });
        ferry_core::http::check_budgets("hubspot", &self.rate_limits).map_err(ConfigError::Other)?;
        for (name, b) in std::mem::take(&mut self.rate_limits) {
            if name != APP && name != SEARCH {
                return Err(ConfigError::Other(format!(
                    "hubspot: unknown rate-limit budget `{name}`; budgets are `{APP}` and `{SEARCH}`"
                )));
            }
            budgets.insert(name, b);
        }
        self.rate_limits = budgets;
        if self.properties_chunk_chars == 0 {
            return Err(ConfigError::Other(
                "hubspot: properties_chunk_chars = 0: use a positive length (the default, 15000, fits HubSpot's URL limit)"
                    .into(),
            ));
        }
        self.base_url = self.base_url.trim_end_matches('/').to_owned();
        Ok(self)
    }
}
