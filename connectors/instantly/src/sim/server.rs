//! The HTTP side: one axum fallback handler that routes by hand, so that
//! unknown routes, auth, limits and faults behave as the real API does and
//! every request is logged the same way.
//!
//! Order of checks for an API request: scheduled mutations, route (unknown
//! → Fastify 404), configured latency, injected pre-response faults (status,
//! HTML 403, latency), auth (401), rate limits (429), `fail_rate` (5xx), body
//! parsing and validation (400/415), the handler, then post-response faults
//! (cursor loop, repeated page, truncated or malformed body).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use rand::Rng;
use serde_json::{Value, json};

use super::api::{self, Endpoint, Input, Reply, render_page};
use super::faults::{self, Fault, FaultKind};
use super::params::{ApiError, JSON, Query};
use super::{Inner, MutateSpec, RequestRecord, SimHandle, lock};

/// Fastify's default body limit.
const BODY_LIMIT: usize = 1 << 20;

pub(crate) async fn serve(inner: Arc<Inner>, port: u16) -> std::io::Result<SimHandle> {
    SimHandle::serve(Router::new().fallback(handle).with_state(inner), port, "/api/v2").await
}

/// A finished reply before it becomes an HTTP response.
struct Out {
    status: u16,
    body: String,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    retry_after: Option<u64>,
    fault: Option<String>,
}

impl Out {
    fn ok(body: String) -> Self {
        Out { status: 200, body, content_type: JSON, headers: Vec::new(), retry_after: None, fault: None }
    }

    fn json(status: u16, v: &Value) -> Self {
        Out { status, ..Out::ok(v.to_string()) }
    }

    fn into_response(self) -> Response {
        let mut b = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header(header::CONTENT_TYPE, self.content_type);
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Body::from(self.body)).unwrap_or_default()
    }
}

impl From<ApiError> for Out {
    fn from(e: ApiError) -> Self {
        Out {
            status: e.status,
            body: e.body,
            content_type: e.content_type,
            headers: e.headers,
            retry_after: e.retry_after,
            fault: None,
        }
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let received_at = Instant::now();
    let received_at_system = SystemTime::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let bytes = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::fastify_code(413, Some("FST_ERR_CTP_BODY_TOO_LARGE"), "Request body is too large");
            return Out::from(e).into_response();
        }
    };
    if path.starts_with("/__sim") {
        return control(&inner, &parts.method, &path, &bytes).into_response();
    }
    let auth = header_str(&parts.headers, header::AUTHORIZATION);
    let auth_valid = auth.as_deref().and_then(bearer) == Some(inner.cfg.api_key.as_str());
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE);
    let out =
        inner.process(&parts.method, &path, query.as_deref(), &bytes, auth.as_deref(), content_type.as_deref()).await;
    let record = RequestRecord {
        method: parts.method.to_string(),
        path,
        query,
        body: if bytes.is_empty() { None } else { serde_json::from_slice(&bytes).ok() },
        user_agent: header_str(&parts.headers, header::USER_AGENT),
        auth_valid,
        status: out.status,
        received_at,
        received_at_system,
        retry_after: out.retry_after,
        fault: out.fault.clone(),
    };
    inner.record(record);
    out.into_response()
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(h: &str) -> Option<&str> {
    let (scheme, token) = h.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Inner {
    fn record(&self, rec: RequestRecord) {
        let mut log = lock(&self.log);
        let s = &mut log.stats;
        s.total_requests += 1;
        *s.by_path.entry(rec.path.clone()).or_default() += 1;
        *s.by_status.entry(rec.status).or_default() += 1;
        *s.by_path_status.entry(rec.path.clone()).or_default().entry(rec.status).or_default() += 1;
        if rec.status == 429 {
            s.rate_limited += 1;
        }
        if rec.fault.is_some() {
            s.faults_applied += 1;
        }
        if self.cfg.max_logged_requests > 0 {
            if log.records.len() >= self.cfg.max_logged_requests {
                log.records.pop_front();
            }
            log.records.push_back(rec);
        }
    }

    /// Takes one use of the first pending fault that applies.
    fn take_fault(&self, path: &str, ep: Endpoint, pre: bool) -> Option<FaultKind> {
        let mut faults = lock(&self.faults);
        let pos = faults.iter().position(|f: &Fault| {
            f.count > 0 && f.kind.is_pre() == pre && f.path.matches(path) && (!f.kind.needs_list() || ep.is_list())
        })?;
        let kind = faults[pos].kind.clone();
        faults[pos].count -= 1;
        if faults[pos].count == 0 {
            faults.remove(pos);
        }
        Some(kind)
    }

    fn ray(&self) -> u64 {
        lock(&self.rng).random()
    }

    fn run_schedules(&self, path: &str) {
        let due: Vec<MutateSpec> = {
            let mut schedules = lock(&self.schedules);
            let normalized = super::normalize_path(path);
            let mut due = Vec::new();
            schedules.retain_mut(|s| {
                if s.path != normalized {
                    return true;
                }
                s.remaining -= 1;
                if s.remaining == 0 {
                    due.push(s.spec.clone());
                    false
                } else {
                    true
                }
            });
            due
        };
        for spec in due {
            self.mutate(&spec);
        }
    }

    async fn process(
        &self,
        method: &Method,
        path: &str,
        raw_query: Option<&str>,
        bytes: &Bytes,
        auth: Option<&str>,
        content_type: Option<&str>,
    ) -> Out {
        self.run_schedules(path);
        let Some(ep) = Endpoint::route(method, path) else {
            return ApiError::no_route(method.as_str(), path).into();
        };
        if self.cfg.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.cfg.latency_ms)).await;
        }
        if let Some(kind) = self.take_fault(path, ep, true) {
            let name = Some(kind.name());
            let early: Option<Out> = match kind {
                FaultKind::Latency(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    None
                }
                FaultKind::Status { code, retry_after } => {
                    Some(faults::status_reply(code, retry_after, self.ray()).into())
                }
                FaultKind::Html403 => Some(faults::html_403(self.ray()).into()),
                _ => None,
            };
            if let Some(mut out) = early {
                out.fault = name;
                return out;
            }
            let mut out = self.answer(ep, path, raw_query, bytes, auth, content_type);
            out.fault = out.fault.or(name);
            return out;
        }
        self.answer(ep, path, raw_query, bytes, auth, content_type)
    }

    fn answer(
        &self,
        ep: Endpoint,
        path: &str,
        raw_query: Option<&str>,
        bytes: &Bytes,
        auth: Option<&str>,
        content_type: Option<&str>,
    ) -> Out {
        match auth.map(bearer) {
            None => return ApiError::unauthorized("Missing Authorization header").into(),
            Some(Some(token)) if token == self.cfg.api_key => {}
            Some(_) => return ApiError::unauthorized("Invalid authorization header").into(),
        }
        if let Err(secs) = lock(&self.limits).admit(Instant::now(), ep == Endpoint::Emails) {
            return ApiError::too_many(self.cfg.limit_retry_after.then_some(secs)).into();
        }
        if self.cfg.fail_rate > 0.0 {
            let mut rng = lock(&self.rng);
            if rng.random_bool(self.cfg.fail_rate.clamp(0.0, 1.0)) {
                let code = [500, 502, 503][rng.random_range(0..3)];
                let ray = rng.random();
                drop(rng);
                let mut out: Out = faults::status_reply(code, None, ray).into();
                out.fault = Some(format!("fail_rate_{code}"));
                return out;
            }
        }
        let body = match parse_body(ep, bytes, content_type) {
            Ok(b) => b,
            Err(e) => return e.into(),
        };
        let query = Query::parse(raw_query);
        let input = Input { query: &query, body: body.as_ref(), default_limit: self.cfg.default_limit.max(1) };
        let reply = {
            let store = self.read();
            api::handle(&store, ep, &input)
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        self.finish(ep, path, reply)
    }

    /// Applies post-response faults and renders the body.
    fn finish(&self, ep: Endpoint, path: &str, reply: Reply) -> Out {
        let kind = self.take_fault(path, ep, false);
        let mut fault = kind.as_ref().map(FaultKind::name);
        let body = match reply {
            Reply::Json(v) => v.to_string(),
            Reply::Page { mut items, mut next, cursor_in } => {
                let key = super::normalize_path(path);
                match &kind {
                    Some(FaultKind::CursorLoop) => {
                        next = cursor_in.or(next).or_else(|| Some("loop".to_owned()));
                    }
                    Some(FaultKind::RepeatPage) => {
                        let previous = lock(&self.last_pages).get(&key).cloned();
                        match previous {
                            Some(prev) => items = prev,
                            None => fault = None,
                        }
                    }
                    _ => {}
                }
                let body = render_page(&items, next.as_deref());
                lock(&self.last_pages).insert(key, items);
                body
            }
        };
        let body = match kind {
            Some(FaultKind::Truncated) => faults::truncate(&body),
            Some(FaultKind::MalformedJson) => faults::malform(&body),
            _ => body,
        };
        Out { fault, ..Out::ok(body) }
    }
}

/// The JSON body of `POST /leads/list`, parsed as Fastify would.
fn parse_body(ep: Endpoint, bytes: &Bytes, content_type: Option<&str>) -> Result<Option<Value>, ApiError> {
    if ep != Endpoint::Leads {
        return Ok(None);
    }
    let is_json = content_type.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/json"));
    let fst = |status: u16, code: &str, message: String| ApiError::fastify_code(status, Some(code), &message);
    if bytes.is_empty() {
        if is_json {
            return Err(fst(
                400,
                "FST_ERR_CTP_EMPTY_JSON_BODY",
                "Body cannot be empty when content-type is set to 'application/json'".into(),
            ));
        }
        return Ok(None);
    }
    if !is_json {
        let ct = content_type.unwrap_or("text/plain");
        return Err(fst(415, "FST_ERR_CTP_INVALID_MEDIA_TYPE", format!("Unsupported Media Type: {ct}")));
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|err| fst(400, "FST_ERR_CTP_INVALID_JSON_BODY", format!("Body is not valid JSON: {err}")))
}

fn control(inner: &Arc<Inner>, method: &Method, path: &str, bytes: &Bytes) -> Out {
    let bad = |msg: String| Out::json(400, &json!({"error": msg}));
    match (method.as_str(), path.trim_end_matches('/')) {
        ("POST", "/__sim/mutate") => {
            let spec: MutateSpec = if bytes.iter().all(u8::is_ascii_whitespace) {
                MutateSpec::default()
            } else {
                match serde_json::from_slice(bytes) {
                    Ok(s) => s,
                    Err(e) => return bad(format!("invalid mutate spec: {e}")),
                }
            };
            let report = inner.mutate(&spec);
            Out::json(200, &serde_json::to_value(report).unwrap_or_default())
        }
        ("GET", "/__sim/stats") => {
            let mut stats = lock(&inner.log).stats.clone();
            stats.mutations = inner.read().mutations;
            Out::json(200, &serde_json::to_value(stats).unwrap_or_default())
        }
        ("GET", "/__sim/dataset") => Out::json(200, &serde_json::to_value(inner.dataset()).unwrap_or_default()),
        ("POST", "/__sim/faults") => match serde_json::from_slice::<Fault>(bytes) {
            Ok(f) => {
                let echo = serde_json::to_value(&f).unwrap_or_default();
                if f.count > 0 {
                    lock(&inner.faults).push(f);
                }
                Out::json(201, &echo)
            }
            Err(e) => bad(format!("invalid fault: {e}")),
        },
        ("DELETE", "/__sim/faults") => {
            let mut faults = lock(&inner.faults);
            let cleared = faults.len();
            faults.clear();
            Out::json(200, &json!({"cleared": cleared}))
        }
        ("DELETE", "/__sim/requests") => {
            *lock(&inner.log) = super::Log::default();
            Out::json(200, &json!({"cleared": true}))
        }
        _ => Out::json(404, &json!({"error": format!("no control route {method} {path}")})),
    }
}
