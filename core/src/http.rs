//! Core's HTTP client: every outbound request of a connector goes through it.
//!
//! It applies the pipeline's named rate-limit budgets (governor, shared by every stream
//! and partition of a run), sends an explicit User-Agent, retries what is transient (429
//! honouring `Retry-After`, 5xx, timeouts, connection resets, truncated or malformed
//! bodies) with capped exponential backoff and jitter inside a per-stream retry budget,
//! and turns what is not (400, 401, 402, 403, 404) into a plain message at once.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HttpError;
use crate::secret::{Secret, redact};

/// Counters shared by all requests of a source.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Requests sent (including retries).
    pub requests: AtomicU64,
    /// Retries after a transient failure.
    pub retries: AtomicU64,
    /// 429 responses received.
    pub rate_limited: AtomicU64,
    /// Milliseconds spent waiting on the local rate limiter.
    pub limiter_wait_ms: AtomicU64,
    /// Milliseconds spent in backoff before retries.
    pub backoff_ms: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HttpMetricsSnapshot {
    /// Requests sent (including retries).
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// 429 responses.
    pub rate_limited: u64,
    /// Time waiting on the rate limiter (ms).
    pub limiter_wait_ms: u64,
    /// Time in backoff (ms).
    pub backoff_ms: u64,
}

impl HttpMetrics {
    /// Reads the counters.
    pub fn snapshot(&self) -> HttpMetricsSnapshot {
        HttpMetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            limiter_wait_ms: self.limiter_wait_ms.load(Ordering::Relaxed),
            backoff_ms: self.backoff_ms.load(Ordering::Relaxed),
        }
    }
}

/// One named budget: requests per second and/or per minute.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Requests per second.
    #[serde(default)]
    pub per_second: Option<u32>,
    /// Requests per minute.
    #[serde(default)]
    pub per_minute: Option<u32>,
}

/// Requests are spaced this much wider than a budget's exact interval.
pub const PACING_MARGIN: f64 = 1.03;

/// The rate limiter of one run: named budgets, each with one or two quotas. Requests
/// are spaced evenly (no bursts), so a server counting in sliding windows never sees
/// more than the budget.
#[derive(Debug, Default)]
pub struct Limiter {
    budgets: BTreeMap<String, Vec<(Duration, DefaultDirectRateLimiter)>>,
}

/// Checks named budgets from a pipeline file: a rate of 0 would mean "no limit" to the
/// limiter and is refused (leave the key out to keep the default).
pub fn check_budgets(connector: &str, budgets: &BTreeMap<String, Budget>) -> Result<(), String> {
    for (name, b) in budgets {
        for (key, v) in [("per_second", b.per_second), ("per_minute", b.per_minute)] {
            if v == Some(0) {
                return Err(format!(
                    "{connector}: [source.rate_limits.{name}] {key} = 0 would stop every request: use a positive rate, or remove the line for the default"
                ));
            }
        }
    }
    Ok(())
}

impl Limiter {
    /// Builds the limiter from named budgets (zero or missing rates are ignored).
    pub fn new(budgets: &BTreeMap<String, Budget>) -> Self {
        let mut out = BTreeMap::new();
        for (name, b) in budgets {
            let mut quotas = Vec::new();
            for (n, period) in [(b.per_second, Duration::from_secs(1)), (b.per_minute, Duration::from_secs(60))] {
                if let Some(n) = n.and_then(NonZeroU32::new) {
                    // Paced slightly under the budget, so that scheduling and network
                    // jitter never squeeze n + 1 requests into a server's sliding window.
                    let interval = period.mul_f64(PACING_MARGIN) / n.get();
                    if let Some(q) = Quota::with_period(interval) {
                        quotas.push((interval, RateLimiter::direct(q.allow_burst(NonZeroU32::MIN))));
                    }
                }
            }
            out.insert(name.clone(), quotas);
        }
        Limiter { budgets: out }
    }

    /// Waits until every named budget admits one request; returns the time waited.
    pub async fn acquire(&self, names: &[&str]) -> Duration {
        let start = Instant::now();
        for name in names {
            if let Some(quotas) = self.budgets.get(*name) {
                for (_, q) in quotas {
                    q.until_ready().await;
                }
            }
        }
        start.elapsed()
    }

    /// The rate (requests per second) of a budget's tightest quota.
    pub fn rate(&self, name: &str) -> Option<f64> {
        self.budgets.get(name)?.iter().map(|(i, _)| 1.0 / i.as_secs_f64()).min_by(f64::total_cmp)
    }
}

/// Retry behaviour.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff (doubles each retry), milliseconds.
    #[serde(default = "default_base_ms")]
    pub base_backoff_ms: u64,
    /// Longest backoff between retries, milliseconds.
    #[serde(default = "default_cap_ms")]
    pub max_backoff_ms: u64,
    /// Longest `Retry-After` honoured, seconds; a longer one fails the stream.
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_secs: u64,
    /// Retries allowed per stream over the whole run before it fails.
    #[serde(default = "default_stream_budget")]
    pub stream_retry_budget: u32,
    /// Connect timeout, seconds.
    #[serde(default = "default_connect")]
    pub connect_timeout_secs: u64,
    /// Whole-request timeout, seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Largest response body accepted, in bytes, after decompression (default 64 MiB): a
    /// larger one fails the stream instead of growing memory without bound.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
}

fn default_max_response_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_attempts() -> u32 {
    6
}
fn default_base_ms() -> u64 {
    500
}
fn default_cap_ms() -> u64 {
    30_000
}
fn default_max_retry_after() -> u64 {
    300
}
fn default_stream_budget() -> u32 {
    50
}
fn default_connect() -> u64 {
    10
}
fn default_timeout() -> u64 {
    60
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_attempts(),
            base_backoff_ms: default_base_ms(),
            max_backoff_ms: default_cap_ms(),
            max_retry_after_secs: default_max_retry_after(),
            stream_retry_budget: default_stream_budget(),
            connect_timeout_secs: default_connect(),
            request_timeout_secs: default_timeout(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

/// Retries left for one stream in this run.
#[derive(Debug)]
pub struct RetryBudget {
    left: AtomicU32,
}

impl RetryBudget {
    /// A budget of `n` retries.
    pub fn new(n: u32) -> Arc<Self> {
        Arc::new(RetryBudget { left: AtomicU32::new(n) })
    }

    fn take(&self) -> bool {
        self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// What a connector tells users for the statuses that are their problem to fix.
#[derive(Debug, Clone, Copy)]
pub struct ErrorHints {
    /// Service name in messages (`instantly`).
    pub service: &'static str,
    /// 401.
    pub unauthorized: &'static str,
    /// 402.
    pub payment_required: &'static str,
    /// 403 with a JSON body.
    pub forbidden: &'static str,
    /// 403 whose body is not JSON (a proxy or WAF in the way).
    pub proxy_block: &'static str,
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, without trailing slash.
    pub base_url: String,
    /// Explicit User-Agent.
    pub user_agent: String,
    /// Bearer token.
    pub bearer: Option<Secret>,
    /// Named budgets.
    pub budgets: BTreeMap<String, Budget>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Messages for non-retryable statuses.
    pub hints: ErrorHints,
}

/// An HTTP request relative to the base URL.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// Path below the base URL (`/campaigns`).
    pub path: String,
    /// Query parameters (encoded by the client).
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
    /// Budgets this request counts against.
    pub budgets: Vec<&'static str>,
}

impl Request {
    /// A GET.
    pub fn get(path: impl Into<String>) -> Self {
        Request { method: reqwest::Method::GET, path: path.into(), query: Vec::new(), body: None, budgets: Vec::new() }
    }

    /// A POST with a JSON body.
    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Request {
            method: reqwest::Method::POST,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
            budgets: Vec::new(),
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }

    /// Counts the request against these budgets.
    pub fn budgets(mut self, names: &[&'static str]) -> Self {
        self.budgets.extend_from_slice(names);
        self
    }

    /// `GET /path` for messages (no query: values may be sensitive).
    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The client a connector builds once per run and shares between its streams.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: Arc<ClientConfig>,
    limiter: Arc<Limiter>,
    metrics: Arc<HttpMetrics>,
    /// Set by the first answer that holds for every later request of the run (credentials
    /// rejected, host unreachable): the other streams fail at once with it instead of
    /// each asking again.
    fatal: Arc<std::sync::OnceLock<HttpError>>,
}

enum Attempt {
    Done(Value),
    Retry {
        wait: Option<Duration>,
        reason: String,
        status: Option<u16>,
    },
    Fail(HttpError),
    /// A failure no other request of the run can avoid (see `HttpClient::fatal`).
    Fatal(HttpError),
}

/// Parses `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        // Negative, infinite or absurd values fall back to the normal backoff.
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

impl HttpClient {
    /// Builds the client.
    pub fn new(config: ClientConfig) -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(Duration::from_secs(config.retry.connect_timeout_secs))
            .timeout(Duration::from_secs(config.retry.request_timeout_secs))
            .pool_max_idle_per_host(64)
            // Redirects: within the origin at most 5 (the credentials go along); to another
            // origin never (the answer would come from a host that never saw the key, and
            // is refused below, naming both URLs). No Referer leaks the original URL.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first().cloned();
                let same_origin = first.as_ref().is_some_and(|f| {
                    f.scheme() == attempt.url().scheme()
                        && f.host_str() == attempt.url().host_str()
                        && f.port_or_known_default() == attempt.url().port_or_known_default()
                });
                if !same_origin {
                    attempt.stop()
                } else if attempt.previous().len() > 5 {
                    attempt.error("more than 5 redirects")
                } else {
                    attempt.follow()
                }
            }))
            .referer(false)
            .build()
            .map_err(|e| HttpError {
                status: None,
                endpoint: String::new(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let limiter = Arc::new(Limiter::new(&config.budgets));
        Ok(HttpClient { inner, config: Arc::new(config), limiter, metrics: Arc::default(), fatal: Arc::default() })
    }

    /// The shared counters.
    pub fn metrics(&self) -> Arc<HttpMetrics> {
        self.metrics.clone()
    }

    /// A fresh retry budget for one stream.
    pub fn retry_budget(&self) -> Arc<RetryBudget> {
        RetryBudget::new(self.config.retry.stream_retry_budget)
    }

    /// Sends a request and decodes its JSON body, retrying what is transient.
    pub async fn send_json(&self, req: &Request, budget: &RetryBudget) -> Result<Value, HttpError> {
        let policy = self.config.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(e) = self.fatal.get() {
                return Err(HttpError {
                    status: e.status,
                    endpoint: req.endpoint(),
                    message: format!("not requested: {}", e.message),
                });
            }
            let waited = self.limiter.acquire(&req.budgets).await;
            self.metrics.limiter_wait_ms.fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
            self.metrics.requests.fetch_add(1, Ordering::Relaxed);
            match self.attempt(req).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Fatal(e) => {
                    let _ = self.fatal.set(e.clone());
                    return Err(e);
                }
                Attempt::Retry { wait, reason, status } => {
                    if status == Some(429) {
                        self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                    }
                    let exhausted = attempt >= policy.max_attempts;
                    if exhausted || !budget.take() {
                        let why = if exhausted {
                            format!("gave up after {attempt} attempts")
                        } else {
                            "the stream's retry budget is spent".to_owned()
                        };
                        return Err(HttpError {
                            status,
                            endpoint: req.endpoint(),
                            message: format!("{}: {reason}; {why}; try again later", req.endpoint()),
                        });
                    }
                    // A server's Retry-After is honoured in full, unless it asks for longer
                    // than the policy allows (Instantly may impose a 1-hour cooldown): then
                    // the stream fails now rather than hanging the run.
                    if let Some(w) = wait
                        && w > Duration::from_secs(policy.max_retry_after_secs)
                    {
                        return Err(HttpError {
                            status,
                            endpoint: req.endpoint(),
                            message: format!(
                                "{}: {reason}; the server asks to wait {}s (more than max_retry_after_secs = {}); try again later",
                                req.endpoint(),
                                w.as_secs(),
                                policy.max_retry_after_secs
                            ),
                        });
                    }
                    let backoff = wait.unwrap_or_else(|| {
                        let exp = policy.base_backoff_ms.saturating_mul(1 << (attempt - 1).min(16));
                        let capped = exp.min(policy.max_backoff_ms);
                        // Jitter: anywhere in [capped/2, capped].
                        Duration::from_millis(rand::rng().random_range(capped / 2..=capped.max(1)))
                    });
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    self.metrics.backoff_ms.fetch_add(backoff.as_millis() as u64, Ordering::Relaxed);
                    tracing::warn!(
                        step = "fetch",
                        endpoint = %req.endpoint(),
                        status,
                        attempt,
                        wait_ms = backoff.as_millis() as u64,
                        reason = %reason,
                        "retrying"
                    );
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    async fn attempt(&self, req: &Request) -> Attempt {
        let url = format!("{}{}", self.config.base_url, req.path);
        let mut builder = self.inner.request(req.method.clone(), &url).query(&req.query);
        if let Some(token) = &self.config.bearer {
            builder = builder.bearer_auth(token.expose());
        }
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                // Nothing listens there, or the name does not resolve: retrying will not
                // help, and every stream would find the same.
                if let Some(why) = unreachable(&e) {
                    return Attempt::Fatal(HttpError {
                        status: None,
                        endpoint: req.endpoint(),
                        message: format!(
                            "cannot reach {} ({why}): check base_url and that the server (or simulator) is running",
                            self.config.base_url
                        ),
                    });
                }
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "connection failed"
                };
                return Attempt::Retry {
                    wait: None,
                    reason: format!("{kind}: {}", redact(&root_cause(&e))),
                    status: None,
                };
            }
        };
        let status = response.status().as_u16();
        let final_url = response.url().as_str().split('?').next().unwrap_or_default().to_owned();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split('?').next().unwrap_or_default().to_owned());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        // Read in chunks up to the limit (decompressed size: a small gzip body can inflate
        // to gigabytes), so memory stays bounded whatever the server sends.
        let limit = self.config.retry.max_response_bytes;
        let too_big = |seen: u64| {
            Attempt::Fail(HttpError {
                status: Some(status),
                endpoint: req.endpoint(),
                message: format!(
                    "{}: the response is larger than max_response_bytes = {limit} ({seen} bytes or more): raise max_response_bytes under [source.retry] if the API really sends that much",
                    req.endpoint()
                ),
            })
        };
        if let Some(len) = response.content_length()
            && len > limit
        {
            return too_big(len);
        }
        let mut response = response;
        // The chunks are kept as they come (no buffer that doubles and moves), and joined
        // once into a buffer of the exact size.
        let mut chunks = Vec::new();
        let mut total: u64 = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    total += chunk.len() as u64;
                    if total > limit {
                        return too_big(total);
                    }
                    chunks.push(chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Attempt::Retry {
                        wait: None,
                        reason: format!("response body cut off: {}", redact(&root_cause(&e))),
                        status: Some(status),
                    };
                }
            }
        }
        let body: Vec<u8> = match chunks.len() {
            1 => chunks.pop().map(Vec::from).unwrap_or_default(),
            _ => {
                let mut joined = Vec::with_capacity(total as usize);
                for c in chunks.drain(..) {
                    joined.extend_from_slice(&c);
                }
                joined
            }
        };
        // One UTF-8 check over the whole body, then a parse that does not check each string
        // again (a few percent of a sync's CPU). Invalid UTF-8 goes to the byte parser,
        // which says where it is.
        let json: Result<Value, _> = match std::str::from_utf8(&body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&body),
        };
        let hints = &self.config.hints;
        let endpoint = req.endpoint();
        // The API's own words: its message, and the fields APIs use to identify an error
        // for their support (HubSpot's category, correlationId and policyName).
        let detail = || match &json {
            Ok(v) => {
                let mut parts: Vec<String> = v
                    .get("message")
                    .or_else(|| v.get("error"))
                    .and_then(Value::as_str)
                    .map(redact)
                    .into_iter()
                    .collect();
                for field in ["category", "policyName", "correlationId"] {
                    if let Some(x) = v.get(field).and_then(Value::as_str) {
                        parts.push(format!("{field}: {}", redact(x)));
                    }
                }
                if parts.is_empty() { String::new() } else { format!(" ({})", parts.join("; ")) }
            }
            Err(_) => String::new(),
        };
        let fail =
            |message: String| Attempt::Fail(HttpError { status: Some(status), endpoint: endpoint.clone(), message });
        match status {
            200..=299 => match json {
                Ok(v) => Attempt::Done(v),
                Err(e) => Attempt::Retry {
                    wait: None,
                    reason: format!("malformed JSON in a {status} response ({} bytes): {e}", body.len()),
                    status: Some(status),
                },
            },
            429 => Attempt::Retry {
                wait: retry_after,
                reason: format!("rate limited (429){}", detail()),
                status: Some(429),
            },
            500..=599 => Attempt::Retry {
                wait: retry_after,
                reason: format!("server error ({status}){}", detail()),
                status: Some(status),
            },
            // Rejected credentials, an unpaid workspace and a proxy in the way hold for every
            // request of the run: the other streams stop at once instead of asking again. A
            // JSON 403 may concern one endpoint's scope only, so it stays with its stream.
            401 => Attempt::Fatal(HttpError {
                status: Some(status),
                endpoint: endpoint.clone(),
                message: format!(
                    "{} rejected the credentials (401){}: {}",
                    hints.service,
                    detail(),
                    hints.unauthorized
                ),
            }),
            402 => Attempt::Fatal(HttpError {
                status: Some(status),
                endpoint: endpoint.clone(),
                message: format!(
                    "{} refused with 402 Payment Required{}: {}",
                    hints.service,
                    detail(),
                    hints.payment_required
                ),
            }),
            403 if json.is_err() => Attempt::Fatal(HttpError {
                status: Some(status),
                endpoint: endpoint.clone(),
                message: format!("{endpoint}: 403 with a non-JSON body: {}", hints.proxy_block),
            }),
            403 => fail(format!("{endpoint}: forbidden (403){}: {}", detail(), hints.forbidden)),
            404 => fail(format!("{endpoint}: not found (404){}; check base_url", detail())),
            300..=399 => fail(format!(
                "{endpoint}: the server redirects ({status}) from {} to another origin, {}; ferry does not follow it (the credentials are for the first): check base_url",
                redact(&final_url),
                location.as_deref().map(redact).unwrap_or_else(|| "an unnamed location".into())
            )),
            408 => Attempt::Retry { wait: retry_after, reason: "request timeout (408)".into(), status: Some(408) },
            _ => fail(format!("{endpoint}: rejected with {status}{}", detail())),
        }
    }
}

/// Why a request could not even connect, when that will not change by retrying:
/// connection refused or a host name that does not resolve.
fn unreachable(e: &reqwest::Error) -> Option<&'static str> {
    if !e.is_connect() {
        return None;
    }
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some("connection refused");
        }
        let text = s.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return Some("the host name does not resolve");
        }
        src = s.source();
    }
    None
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:50Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("soon", now), None);
        // Absurd, negative and fractional values never panic: absurd and negative ones
        // fall back to the normal backoff.
        assert_eq!(parse_retry_after("99999999999999999999", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
    }

    proptest::proptest! {
        #[test]
        fn retry_after_never_panics(value in "\\PC{0,40}", secs in proptest::num::f64::ANY) {
            let now = chrono::Utc::now();
            let _ = parse_retry_after(&value, now);
            let _ = parse_retry_after(&secs.to_string(), now);
        }
    }

    #[tokio::test]
    async fn limiter_spaces_requests_at_the_budget_rate() {
        let mut budgets = BTreeMap::new();
        budgets.insert("b".to_owned(), Budget { per_second: Some(50), per_minute: None });
        let l = Limiter::new(&budgets);
        let start = Instant::now();
        for _ in 0..26 {
            l.acquire(&["b"]).await;
        }
        let took = start.elapsed();
        // 25 intervals of 20 ms (plus the margin) after the first request.
        assert!(took >= Duration::from_millis(500), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");
        let rate = l.rate("b").unwrap();
        assert!((rate - 50.0 / PACING_MARGIN).abs() < 0.01, "{rate}");
    }
}
