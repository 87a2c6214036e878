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
///
/// A budget also adapts to the server (additive increase, multiplicative decrease): a
/// 429 halves the pace of every stream that shares the budget, and each success then
/// raises it a little, quickly up to just under the pace that drew the 429 and slowly
/// beyond, back to the configured rate. A server whose real limit is below the
/// configured budget then sees a few 429s per run instead of one per request.
#[derive(Debug, Default)]
pub struct Limiter {
    budgets: BTreeMap<String, Named>,
}

#[derive(Debug)]
struct Named {
    quotas: Vec<(Duration, DefaultDirectRateLimiter)>,
    /// `None` for a budget without rates.
    adaptive: Option<Adaptive>,
}

/// The adaptive pace of one budget. `governor`'s quotas are fixed once built (a new
/// limiter would forget its schedule and let a request through at once), so the slower
/// pace is a schedule of its own: each request takes the next slot, one interval after
/// the previous one.
#[derive(Debug)]
struct Adaptive {
    /// The configured rate (requests per second of the tightest quota).
    full: f64,
    /// Whether the pace is below `full` (the common case, `false`, takes no lock).
    slowed: std::sync::atomic::AtomicBool,
    pace: std::sync::Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    rate: f64,
    /// The rate that last drew a 429.
    ceiling: f64,
    next: tokio::time::Instant,
    last_cut: Option<Instant>,
}

/// What a 429 does to the pace.
const DECREASE: f64 = 0.5;
/// Increase per success, as a share of the configured rate: below 90% of the pace that
/// drew the last 429, and above it.
const INCREASE_FAST: f64 = 0.02;
const INCREASE_SLOW: f64 = 0.001;

impl Adaptive {
    fn new(full: f64) -> Self {
        Adaptive {
            full,
            slowed: std::sync::atomic::AtomicBool::new(false),
            pace: std::sync::Mutex::new(Pace {
                rate: full,
                ceiling: full,
                next: tokio::time::Instant::now(),
                last_cut: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot of the next request, when the pace is slowed.
    fn slot(&self) -> Option<tokio::time::Instant> {
        if !self.slowed.load(Ordering::Relaxed) {
            return None;
        }
        let mut p = self.lock();
        let slot = p.next.max(tokio::time::Instant::now());
        p.next = slot + Duration::from_secs_f64(1.0 / p.rate);
        Some(slot)
    }

    /// A 429: the pace halves, once per burst (the requests already in flight when the
    /// first 429 came answer 429 too, and count once). Returns (old, new) rates.
    fn cut(&self) -> Option<(f64, f64)> {
        let mut p = self.lock();
        let now = Instant::now();
        let quiet = Duration::from_secs_f64((2.0 / p.rate).max(1.0));
        if p.last_cut.is_some_and(|t| now.duration_since(t) < quiet) {
            return None;
        }
        let old = p.rate;
        p.ceiling = old;
        p.rate = (old * DECREASE).max(self.full / 64.0);
        p.last_cut = Some(now);
        self.slowed.store(true, Ordering::Relaxed);
        Some((old, p.rate))
    }

    /// A success: the pace rises a step; back at the configured rate, it is not slowed.
    fn raise(&self) {
        if !self.slowed.load(Ordering::Relaxed) {
            return;
        }
        let mut p = self.lock();
        let step = if p.rate < p.ceiling * 0.9 { INCREASE_FAST } else { INCREASE_SLOW };
        p.rate = (p.rate + self.full * step).min(self.full);
        if p.rate >= self.full {
            self.slowed.store(false, Ordering::Relaxed);
        }
    }
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
            let full = quotas.iter().map(|(i, _)| 1.0 / i.as_secs_f64()).min_by(f64::total_cmp);
            out.insert(name.clone(), Named { quotas, adaptive: full.map(Adaptive::new) });
        }
        Limiter { budgets: out }
    }

    /// Waits until every named budget admits one request; returns the time waited.
    pub async fn acquire(&self, names: &[&str]) -> Duration {
        let start = Instant::now();
        for name in names {
            if let Some(named) = self.budgets.get(*name) {
                for (_, q) in &named.quotas {
                    q.until_ready().await;
                }
                if let Some(slot) = named.adaptive.as_ref().and_then(Adaptive::slot) {
                    tokio::time::sleep_until(slot).await;
                }
            }
        }
        start.elapsed()
    }

    /// The configured rate (requests per second) of a budget's tightest quota.
    pub fn rate(&self, name: &str) -> Option<f64> {
        self.budgets.get(name)?.adaptive.as_ref().map(|a| a.full)
    }

    /// The pace of a budget now (below [`Limiter::rate`] after 429s).
    pub fn current_rate(&self, name: &str) -> Option<f64> {
        self.budgets.get(name)?.adaptive.as_ref().map(|a| a.lock().rate)
    }

    /// A request counted against `names` was answered 429: the tightest of those budgets
    /// (the one the server most likely counts, such as a per-endpoint budget inside the
    /// workspace's) slows down.
    pub fn rate_limited(&self, names: &[&str]) {
        let tightest = names
            .iter()
            .filter_map(|name| Some((*name, self.budgets.get(*name)?.adaptive.as_ref()?)))
            .min_by(|a, b| a.1.full.total_cmp(&b.1.full));
        if let Some((name, a)) = tightest
            && let Some((from, to)) = a.cut()
        {
            tracing::warn!(
                step = "rate_limit",
                budget = name,
                from_per_second = (from * 100.0).round() / 100.0,
                to_per_second = (to * 100.0).round() / 100.0,
                configured_per_second = (a.full * 100.0).round() / 100.0,
                "the server answers 429 at this pace: every stream of the budget slows down, then speeds up again step by step"
            );
        }
    }

    /// A request counted against `names` succeeded: slowed budgets speed up a step.
    pub fn succeeded(&self, names: &[&str]) {
        for name in names {
            if let Some(a) = self.budgets.get(*name).and_then(|n| n.adaptive.as_ref()) {
                a.raise();
            }
        }
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
    /// Fields of the API's JSON error bodies that identify an error for its support
    /// (HubSpot's `category`, `correlationId`), shown after its message.
    pub error_fields: &'static [&'static str],
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

/// A response body parsed as JSON, and what had to be repaired for it to parse.
#[derive(Debug)]
pub struct Decoded {
    /// The value, or why the body is not JSON.
    pub json: Result<Value, serde_json::Error>,
    /// Byte sequences that were not UTF-8, each replaced by U+FFFD.
    pub not_utf8: usize,
    /// `\uD800`-`\uDFFF` escapes not part of a pair, each replaced by `\uFFFD`.
    pub lone_surrogates: usize,
}

/// Parses a response body. Text that is not valid Unicode is repaired rather than failing
/// the whole page (which would fail it on every run, for good): bytes that are not UTF-8
/// (a record saved in Latin-1) and lone surrogate escapes (JavaScript's `JSON.stringify`
/// writes them for a string cut inside an emoji) become U+FFFD, the replacement
/// character, and the caller logs how many.
pub fn decode_json(body: Vec<u8>) -> Decoded {
    let (mut text, not_utf8) = match String::from_utf8(body) {
        Ok(text) => (text, 0),
        Err(e) => {
            let bytes = e.into_bytes();
            let bad = bytes.utf8_chunks().filter(|c| !c.invalid().is_empty()).count();
            (String::from_utf8_lossy(&bytes).into_owned(), bad)
        }
    };
    // One UTF-8 check over the whole body (above), then a parse that does not check each
    // string again (a few percent of a sync's CPU).
    let mut json = serde_json::from_str::<Value>(&text);
    let mut lone_surrogates = 0;
    if json.as_ref().is_err_and(|e| {
        let m = e.to_string();
        m.contains("surrogate") || m.contains("hex escape")
    }) {
        lone_surrogates = replace_lone_surrogates(&mut text);
        if lone_surrogates > 0 {
            json = serde_json::from_str(&text);
        }
    }
    Decoded { json, not_utf8, lone_surrogates }
}

/// Rewrites each `\uXXXX` escape of a lone surrogate (inside a JSON string) as `\uFFFD`,
/// in place (same length); returns how many.
fn replace_lone_surrogates(text: &mut String) -> usize {
    fn hex4(b: &[u8], at: usize) -> Option<u32> {
        let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
        u32::from_str_radix(digits, 16).ok()
    }
    // Only ASCII is rewritten as ASCII, so the text stays UTF-8: work on the bytes.
    let mut bytes = std::mem::take(text).into_bytes();
    let (mut i, mut in_string, mut fixed) = (0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                in_string = !in_string;
                i += 1;
            }
            b'\\' if in_string && bytes.get(i + 1) == Some(&b'u') => {
                let Some(unit) = hex4(&bytes, i + 2) else {
                    i += 2;
                    continue;
                };
                let paired_low = bytes.get(i + 6) == Some(&b'\\')
                    && bytes.get(i + 7) == Some(&b'u')
                    && hex4(&bytes, i + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
                match unit {
                    0xD800..0xDC00 if paired_low => i += 12,
                    0xD800..0xE000 => {
                        bytes[i + 2..i + 6].copy_from_slice(b"FFFD");
                        fixed += 1;
                        i += 6;
                    }
                    _ => i += 6,
                }
            }
            b'\\' if in_string => i += 2,
            _ => i += 1,
        }
    }
    *text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    fixed
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
                Attempt::Done(v) => {
                    self.limiter.succeeded(&req.budgets);
                    return Ok(v);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Fatal(e) => {
                    let _ = self.fatal.set(e.clone());
                    return Err(e);
                }
                Attempt::Retry { wait, reason, status } => {
                    if status == Some(429) {
                        self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                        self.limiter.rate_limited(&req.budgets);
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
        let body_len = body.len();
        let json = match decode_json(body) {
            Decoded { json, not_utf8: 0, lone_surrogates: 0 } => json,
            Decoded { json, not_utf8, lone_surrogates } => {
                if json.is_ok() {
                    tracing::warn!(
                        step = "fetch",
                        endpoint = %req.endpoint(),
                        not_utf8,
                        lone_surrogates,
                        "the response holds text that is not valid Unicode (bytes that are not UTF-8, or halves of a surrogate pair): each was replaced by U+FFFD and the records kept"
                    );
                }
                json
            }
        };
        let hints = &self.config.hints;
        let endpoint = req.endpoint();
        // The API's own words: its message, and the fields the connector names as the
        // ones its API identifies an error by.
        let detail = || match &json {
            Ok(v) => {
                let mut parts: Vec<String> = v
                    .get("message")
                    .or_else(|| v.get("error"))
                    .and_then(Value::as_str)
                    .map(redact)
                    .into_iter()
                    .collect();
                for field in hints.error_fields {
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
                // Nesting past the parser's limit (128 levels) is the server's shape, not a
                // transfer that went wrong: asking again would get the same.
                Err(e) if e.to_string().contains("recursion limit exceeded") => fail(format!(
                    "{endpoint}: the {status} response nests JSON deeper than ferry parses ({e}); this is not retried"
                )),
                Err(e) => Attempt::Retry {
                    wait: None,
                    reason: format!("malformed JSON in a {status} response ({body_len} bytes): {e}"),
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

    #[test]
    fn text_that_is_not_unicode_is_repaired_not_refused() {
        let d = decode_json(br#"{"a": "half \ud800 pair \ud83d\ude00 low \udc00 esc \\ud800"}"#.to_vec());
        assert_eq!(d.lone_surrogates, 2);
        assert_eq!(d.json.unwrap()["a"], "half \u{fffd} pair \u{1f600} low \u{fffd} esc \\ud800");
        let d = decode_json(b"{\"a\": \"caf\xe9 \xff\xfe\"}".to_vec());
        assert_eq!(d.not_utf8, 3);
        assert_eq!(d.json.unwrap()["a"], "caf\u{fffd} \u{fffd}\u{fffd}");
        // An escape outside a string (a key here is inside one) is not a string's: left alone.
        let d = decode_json(br#"{"\ud800": 1}"#.to_vec());
        assert_eq!((d.lone_surrogates, d.json.unwrap()["\u{fffd}"].as_i64()), (1, Some(1)));
        let d = decode_json(b"[1, 2".to_vec());
        assert!(d.json.is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_json(body);
        }

        #[test]
        fn surrogate_repair_leaves_valid_json_alone(s in "[\\\\\"\u{0}-\u{1f}a\u{1f600}\u{fffd}]{0,30}") {
            // Backslashes, quotes and control characters are escaped by the serializer
            // (`\u0001`, `\\`), emoji are not: none of it is a lone surrogate.
            let mut text = serde_json::to_string(&serde_json::json!({"k": s, "\\ud800": [s]})).unwrap();
            let before = text.clone();
            proptest::prop_assert_eq!(replace_lone_surrogates(&mut text), 0);
            proptest::prop_assert_eq!(text, before);
        }
    }

    #[tokio::test]
    async fn a_429_halves_the_pace_once_per_burst_and_successes_restore_it() {
        let mut budgets = BTreeMap::new();
        budgets.insert("b".to_owned(), Budget { per_second: Some(10), per_minute: None });
        let l = Limiter::new(&budgets);
        let full = l.rate("b").unwrap();
        l.rate_limited(&["b"]);
        l.rate_limited(&["b"]);
        let slowed = l.current_rate("b").unwrap();
        assert!((slowed - full / 2.0).abs() < 1e-9, "{slowed} after a burst of two 429s at {full}");
        // Fast back to 90% of the pace that drew the 429, then slowly to the full rate.
        for _ in 0..20 {
            l.succeeded(&["b"]);
        }
        let after = l.current_rate("b").unwrap();
        assert!(after > full * 0.85 && after < full * 0.95, "{after}");
        for _ in 0..200 {
            l.succeeded(&["b"]);
        }
        assert_eq!(l.current_rate("b"), Some(full));
        // A request of two budgets slows the tighter one only.
        let mut two = BTreeMap::new();
        two.insert("workspace".to_owned(), Budget { per_second: Some(10), per_minute: None });
        two.insert("emails".to_owned(), Budget { per_second: None, per_minute: Some(20) });
        let l2 = Limiter::new(&two);
        l2.rate_limited(&["workspace", "emails"]);
        assert_eq!(l2.current_rate("workspace"), l2.rate("workspace"));
        assert!(l2.current_rate("emails") < l2.rate("emails"));
        // Slowed, requests are spaced at the slower pace.
        l.budgets["b"].adaptive.as_ref().unwrap().lock().last_cut = None;
        l.rate_limited(&["b"]);
        let start = Instant::now();
        for _ in 0..6 {
            l.acquire(&["b"]).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "5 intervals at half of 10/s took {took:?}");
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
