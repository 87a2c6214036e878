//! The HubSpot client: core's HTTP client with HubSpot's error hints and budgets.

use ferry_core::error::{HttpError, SourceError};
use ferry_core::http::{ClientConfig, ErrorHints, HttpClient, Request, RetryBudget};
use serde_json::Value;

use crate::config::{APP, HubspotConfig, SEARCH};

/// What users are told for the statuses they must fix.
pub const HINTS: ErrorHints = ErrorHints {
    service: "hubspot",
    unauthorized: "the access token is invalid or expired; check HUBSPOT_ACCESS_TOKEN",
    payment_required: "the account's plan does not include this API",
    forbidden: "the token lacks a scope (crm.objects.contacts.read, crm.objects.companies.read, crm.objects.deals.read, crm.objects.owners.read)",
    proxy_block: "blocked by a proxy before reaching HubSpot; check the network or set `user_agent`",
    // What HubSpot's support asks for.
    error_fields: &["category", "policyName", "correlationId"],
};

/// The connector's client.
#[derive(Clone, Debug)]
pub struct Client {
    http: HttpClient,
}

impl Client {
    /// Builds the client.
    pub fn new(config: &HubspotConfig) -> Result<Self, HttpError> {
        let http = HttpClient::new(ClientConfig {
            base_url: config.base_url.clone(),
            user_agent: config.user_agent.clone(),
            bearer: config.access_token.clone(),
            budgets: config.rate_limits.clone(),
            retry: config.retry,
            hints: HINTS,
        })?;
        Ok(Client { http })
    }

    /// Core's client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends a request: search calls count against the search budget, the rest against
    /// the app's per-10-second budget.
    pub async fn json(&self, req: Request, budget: &RetryBudget) -> Result<Value, SourceError> {
        let req = if req.path.ends_with("/search") { req.budgets(&[SEARCH]) } else { req.budgets(&[APP]) };
        Ok(self.http.send_json(&req, budget).await?)
    }

    /// A page: `results` and the `paging.next.after` cursor.
    pub async fn page(&self, req: Request, budget: &RetryBudget) -> Result<(Vec<Value>, Option<String>), SourceError> {
        let endpoint = req.endpoint();
        let mut v = self.json(req, budget).await?;
        let results = match v.get_mut("results").map(Value::take) {
            Some(Value::Array(r)) => r,
            _ => return Err(SourceError::Decode { endpoint, message: "expected `results`".into() }),
        };
        let next = v.pointer("/paging/next/after").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok((results, next))
    }
}
