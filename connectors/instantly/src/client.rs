//! The Instantly client: core's HTTP client with Instantly's error hints, the two
//! budgets, `limit=100` on every list call and cursor pagination with loop guards.

use ferry_core::error::{HttpError, SourceError};
use ferry_core::http::{ClientConfig, ErrorHints, HttpClient, Request, RetryBudget};
use serde_json::Value;

use crate::config::{EMAILS, InstantlyConfig, WORKSPACE};

/// What users are told for the statuses they must fix.
pub const HINTS: ErrorHints = ErrorHints {
    service: "instantly",
    unauthorized: "the API key is invalid or revoked; check the key the pipeline uses (`api_key` in [source], or INSTANTLY_API_KEY when the file sets none) or create a v2 key with the all:read scope",
    payment_required: "the workspace has no active paid plan; API access needs one",
    forbidden: "the key lacks a scope this endpoint needs; re-issue it with all:read",
    proxy_block: "blocked by a proxy or Cloudflare before reaching Instantly; set `user_agent` in [source] (e.g. a browser-like string) or check the network",
    error_fields: &[],
};

/// Page size of every list call (the documented maximum).
pub const PAGE: u32 = 100;

/// The connector's client, shared by all streams of a run.
#[derive(Clone, Debug)]
pub struct Client {
    http: HttpClient,
}

/// One page of a list endpoint.
#[derive(Debug)]
pub struct Page {
    /// The items.
    pub items: Vec<Value>,
    /// The cursor for the next page, when there is one.
    pub next: Option<String>,
}

impl Client {
    /// Builds the client from the connector's settings.
    pub fn new(config: &InstantlyConfig) -> Result<Self, HttpError> {
        let http = HttpClient::new(ClientConfig {
            base_url: config.base_url.clone(),
            user_agent: config.user_agent.clone(),
            bearer: config.api_key.clone(),
            budgets: config.rate_limits.clone(),
            retry: config.retry,
            hints: HINTS,
        })?;
        Ok(Client { http })
    }

    /// Core's client (metrics, retry budgets).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends a request counted against the workspace budget (and `/emails`'s own).
    pub async fn json(&self, mut req: Request, budget: &RetryBudget) -> Result<Value, SourceError> {
        req = req.budgets(&[WORKSPACE]);
        if req.path == "/emails" {
            req = req.budgets(&[EMAILS]);
        }
        Ok(self.http.send_json(&req, budget).await?)
    }

    /// One page of a list endpoint: `{items, next_starting_after}`.
    pub async fn page(&self, req: Request, budget: &RetryBudget) -> Result<Page, SourceError> {
        let endpoint = req.endpoint();
        let mut v = self.json(req, budget).await?;
        let items = match v.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(SourceError::Decode {
                    endpoint,
                    message: "expected an object with an `items` array".into(),
                });
            }
        };
        let next = match v.get("next_starting_after") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(Page { items, next })
    }

    /// A bare JSON array (analytics endpoints).
    pub async fn array(&self, req: Request, budget: &RetryBudget) -> Result<Vec<Value>, SourceError> {
        let endpoint = req.endpoint();
        match self.json(req, budget).await? {
            Value::Array(items) => Ok(items),
            _ => Err(SourceError::Decode { endpoint, message: "expected a JSON array".into() }),
        }
    }
}

/// Guards a paginated scan against servers that loop (core's
/// [`ferry_core::source::CursorGuard`], checking this API's pages).
#[derive(Debug, Default)]
pub struct LoopGuard(ferry_core::source::CursorGuard);

impl LoopGuard {
    /// Checks a page and the cursor it returned.
    pub fn check(&mut self, endpoint: &str, page: &Page, sent_cursor: Option<&str>) -> Result<(), SourceError> {
        self.0.check(endpoint, sent_cursor, &page.items, page.next.as_deref())
    }
}
