//! The HTTP side: one axum fallback handler that routes by hand, so that
//! unknown routes, auth, limits and faults behave alike and every request is
//! logged. Order of checks: route (404), latency, injected status/latency
//! faults, auth (401), rate limits (429), the handler, then the malformed-body
//! fault.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use rand::Rng;
use serde_json::{Value, json};

use super::data::{Filter, Key, custom_name, is_property, prop_defs, sort_key};
use super::{FaultKind, Inner, ObjectType, RequestRecord, SimHandle, lock};

const BODY_LIMIT: usize = 1 << 20;
const SEARCH_CAP: usize = 10_000;

pub(crate) async fn serve(inner: Arc<Inner>, port: u16) -> std::io::Result<SimHandle> {
    SimHandle::serve(Router::new().fallback(handle).with_state(inner), port, "").await
}

/// A sliding-window budget; requests answered with 429 do not consume it.
#[derive(Debug)]
struct Window {
    max: Option<u32>,
    span: Duration,
    accepted: VecDeque<Instant>,
}

impl Window {
    /// `Ok(remaining)` after admitting one request, `Err(())` when full.
    fn admit(&mut self, now: Instant) -> Result<u32, ()> {
        let Some(max) = self.max else { return Ok(u32::MAX) };
        while self.accepted.front().is_some_and(|t| now.duration_since(*t) >= self.span) {
            self.accepted.pop_front();
        }
        if self.accepted.len() >= max as usize {
            return Err(());
        }
        self.accepted.push_back(now);
        Ok(max.saturating_sub(self.accepted.len() as u32))
    }
}

/// The ten-secondly budget (everything but search) and the search budget.
#[derive(Debug)]
pub(crate) struct Limits {
    ten_secondly: Window,
    search: Window,
}

impl Limits {
    pub(crate) fn new(per_10s: Option<u32>, search_per_sec: Option<u32>) -> Limits {
        Limits {
            ten_secondly: Window { max: per_10s, span: Duration::from_secs(10), accepted: VecDeque::new() },
            search: Window { max: search_per_sec, span: Duration::from_secs(1), accepted: VecDeque::new() },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    List(ObjectType),
    Search(ObjectType),
    Properties(ObjectType),
    Owners,
}

/// `Err(segment)` for an unknown object type on a known route shape.
fn route(method: &Method, path: &str) -> Option<Result<Route, String>> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let typed =
        |seg: &str, f: fn(ObjectType) -> Route| Some(ObjectType::parse(seg).map(f).ok_or_else(|| seg.to_owned()));
    match (method, segs.as_slice()) {
        (&Method::GET, ["crm", "v3", "objects", t]) => typed(t, Route::List),
        (&Method::POST, ["crm", "v3", "objects", t, "search"]) => typed(t, Route::Search),
        (&Method::GET, ["crm", "v3", "properties", t]) => typed(t, Route::Properties),
        (&Method::GET, ["crm", "v3", "owners"]) => Some(Ok(Route::Owners)),
        _ => None,
    }
}

struct Out {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    fault: bool,
}

impl Out {
    fn json(status: u16, v: &Value) -> Out {
        Out { status, body: v.to_string(), headers: Vec::new(), fault: false }
    }

    fn into_response(self, correlation_id: &str) -> Response {
        let mut b = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
            .header("X-HubSpot-Correlation-Id", correlation_id);
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Body::from(self.body)).unwrap_or_default()
    }
}

/// HubSpot's error body.
fn error(status: u16, corr: &str, category: &str, message: &str) -> Out {
    Out::json(status, &json!({"status": "error", "message": message, "correlationId": corr, "category": category}))
}

fn invalid(corr: &str, message: &str) -> Out {
    error(400, corr, "VALIDATION_ERROR", message)
}

fn rate_limited(corr: &str, request_id: &str, policy: &str) -> Out {
    let message = match policy {
        "SECONDLY" => "You have reached your secondly limit.",
        _ => "You have reached your ten_secondly_rolling limit.",
    };
    Out::json(
        429,
        &json!({"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": corr,
                "policyName": policy, "requestId": request_id}),
    )
}

fn status_fault(code: u16, corr: &str, request_id: &str) -> Out {
    match code {
        429 => rate_limited(corr, request_id, "TEN_SECONDLY_ROLLING"),
        401 => error(401, corr, "INVALID_AUTHENTICATION", "The access token provided is invalid."),
        403 => {
            error(403, corr, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.")
        }
        400..=499 => invalid(corr, "There was a problem with the request."),
        _ => error(code, corr, "INTERNAL_ERROR", "internal error"),
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let corr = inner.uuid();
    let bytes = to_bytes(body, BODY_LIMIT).await;
    let auth_ok = header_str(&parts.headers, header::AUTHORIZATION)
        .and_then(|h| h.trim().split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && token.trim() == inner.cfg.api_token);
    let out = match &bytes {
        Ok(b) => inner.process(&parts.method, &parts.uri, b, auth_ok, &corr).await,
        Err(_) => invalid(&corr, "Request body too large"),
    };
    let body = bytes.ok().filter(|b| !b.is_empty()).and_then(|b| serde_json::from_slice(&b).ok());
    inner.record(
        RequestRecord {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            body,
            auth_ok,
            status: out.status,
        },
        out.fault,
    );
    out.into_response(&corr)
}

impl Inner {
    fn uuid(&self) -> String {
        let n: u128 = lock(&self.rng).random();
        let h = format!("{n:032x}");
        format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    fn record(&self, rec: RequestRecord, fault: bool) {
        let mut log = lock(&self.log);
        let s = &mut log.stats;
        s.total_requests += 1;
        *s.by_path.entry(rec.path.clone()).or_default() += 1;
        *s.by_status.entry(rec.status).or_default() += 1;
        *s.by_path_status.entry(rec.path.clone()).or_default().entry(rec.status).or_default() += 1;
        s.rate_limited += u64::from(rec.status == 429);
        s.faults_applied += u64::from(fault);
        if self.cfg.max_logged_requests > 0 {
            if log.records.len() >= self.cfg.max_logged_requests {
                log.records.pop_front();
            }
            log.records.push_back(rec);
        }
    }

    /// Takes one use of the first pending fault of the given phase for `path`.
    fn take_fault(&self, path: &str, post: bool) -> Option<FaultKind> {
        let mut faults = lock(&self.faults);
        let pos = faults.iter().position(|f| {
            (f.kind == FaultKind::Malformed) == post && f.path.as_deref().is_none_or(|p| path.contains(p))
        })?;
        let kind = faults[pos].kind.clone();
        faults[pos].times -= 1;
        if faults[pos].times == 0 {
            faults.remove(pos);
        }
        Some(kind)
    }

    async fn process(&self, method: &Method, uri: &Uri, body: &[u8], auth_ok: bool, corr: &str) -> Out {
        let path = uri.path();
        let uri_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if self.cfg.max_uri_len.is_some_and(|max| uri_len > max) {
            return error(414, corr, "URI_TOO_LONG", &format!("URI Too Long ({uri_len} characters)"));
        }
        let route = match route(method, path) {
            None => return error(404, corr, "OBJECT_NOT_FOUND", &format!("No route for {method} {path}")),
            Some(Err(seg)) => return invalid(corr, &format!("Unable to infer object type from: {seg}")),
            Some(Ok(r)) => r,
        };
        if self.cfg.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.cfg.latency_ms)).await;
        }
        let mut faulted = false;
        match self.take_fault(path, false) {
            Some(FaultKind::Status { code }) => {
                return Out { fault: true, ..status_fault(code, corr, &self.uuid()) };
            }
            Some(FaultKind::Latency { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                faulted = true;
            }
            _ => {}
        }
        if !auth_ok {
            let msg = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can \
                       find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";
            return Out { fault: faulted, ..error(401, corr, "INVALID_AUTHENTICATION", msg) };
        }
        let search = matches!(route, Route::Search(_));
        let admitted = {
            let mut limits = lock(&self.limits);
            if search { limits.search.admit(Instant::now()) } else { limits.ten_secondly.admit(Instant::now()) }
        };
        let remaining = match admitted {
            Ok(r) => r,
            Err(()) => {
                let policy = if search { "SECONDLY" } else { "TEN_SECONDLY_ROLLING" };
                return Out { fault: faulted, ..rate_limited(corr, &self.uuid(), policy) };
            }
        };
        let result = match route {
            Route::List(t) => Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map_err(|_| invalid(corr, "Invalid query string"))
                .and_then(|Query(q)| self.list(t, &q, corr)),
            Route::Search(t) => match serde_json::from_slice::<Value>(body) {
                Ok(v) if v.is_object() => self.search(t, &v, corr),
                _ => Err(invalid(corr, "Invalid input JSON: the body must be a JSON object")),
            },
            Route::Properties(t) => {
                let custom: Vec<(String, String)> = (1..=self.cfg.custom_properties)
                    .map(|k| (custom_name(k), format!("Custom property {k}")))
                    .collect();
                let results: Vec<Value> = prop_defs(t)
                    .iter()
                    .map(|(name, label, kind, field)| (*name, *label, *kind, *field))
                    .chain(custom.iter().map(|(name, label)| (name.as_str(), label.as_str(), "string", "text")))
                    .map(|(name, label, kind, field)| {
                        json!({"name": name, "label": label, "type": kind, "fieldType": field,
                               "groupName": format!("{}information", t.as_str().trim_end_matches('s')),
                               "hidden": false, "modificationMetadata": {"readOnlyValue": false}})
                    })
                    .collect();
                Ok(json!({ "results": results }))
            }
            Route::Owners => Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map_err(|_| invalid(corr, "Invalid query string"))
                .and_then(|Query(q)| self.owners(&q, corr)),
        };
        let mut out = match result {
            Ok(v) => Out::json(200, &v),
            Err(e) => e,
        };
        out.fault = faulted;
        if let (false, Some(max)) = (search, self.cfg.rate_limit_per_10s) {
            out.headers.push(("X-HubSpot-RateLimit-Interval-Milliseconds", "10000".into()));
            out.headers.push(("X-HubSpot-RateLimit-Max", max.to_string()));
            out.headers.push(("X-HubSpot-RateLimit-Remaining", remaining.to_string()));
        }
        if out.status == 200 && self.take_fault(path, true).is_some() {
            out.body.truncate(out.body.len() / 2);
            out.fault = true;
        }
        out
    }

    fn list(&self, t: ObjectType, q: &[(String, String)], corr: &str) -> Result<Value, Out> {
        let get = |k: &str| q.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let limit = parse_limit(get("limit"), 100, corr)?;
        let after = match get("after") {
            None | Some("") => 0,
            Some(a) => a.parse::<u64>().map_err(|_| invalid(corr, &format!("Invalid after cursor: {a}")))?,
        };
        let archived = match get("archived") {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(invalid(corr, &format!("Invalid archived value: {v}"))),
        };
        let props = properties_param(q);
        let store = lock(&self.store);
        let objs = store.objects.get(t);
        let start = objs.partition_point(|o| o.id < after);
        let mut page = objs[start..].iter().filter(|o| o.archived_ms.is_some() == archived);
        let results: Vec<Value> = page.by_ref().take(limit).map(|o| o.render(t, props.as_deref())).collect();
        let mut v = json!({ "results": results });
        if let Some(next) = page.next() {
            v["paging"] = json!({"next": {"after": next.id.to_string(), "link": format!("?after={}", next.id)}});
        }
        Ok(v)
    }

    fn search(&self, t: ObjectType, body: &Value, corr: &str) -> Result<Value, Out> {
        let groups = body.get("filterGroups").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if groups.len() > 5 {
            return Err(invalid(corr, "Too many filter groups (at most 5)"));
        }
        let mut parsed: Vec<Vec<Filter>> = Vec::new();
        for g in groups {
            let filters = g.get("filters").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            if filters.len() > 6 {
                return Err(invalid(corr, "Too many filters in a group (at most 6)"));
            }
            parsed.push(
                filters.iter().map(|f| Filter::parse(t, f)).collect::<Result<_, _>>().map_err(|m| invalid(corr, &m))?,
            );
        }
        let (sort_prop, descending) = match body.get("sorts").and_then(Value::as_array).and_then(|a| a.first()) {
            None => (None, false),
            Some(Value::String(s)) => match s.strip_prefix('-') {
                Some(p) => (Some(p.to_owned()), true),
                None => (Some(s.clone()), false),
            },
            Some(s) => {
                let p = s
                    .get("propertyName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(corr, "sort without propertyName"))?;
                let dir = s.get("direction").and_then(Value::as_str).unwrap_or("ASCENDING");
                (Some(p.to_owned()), dir.eq_ignore_ascii_case("DESCENDING"))
            }
        };
        if let Some(p) = &sort_prop
            && !is_property(t, p)
        {
            return Err(invalid(corr, &format!("Property {p} does not exist on {t}")));
        }
        let limit = match body.get("limit") {
            None | Some(Value::Null) => 10,
            Some(v) => parse_limit(Some(&scalar_str(v)), 200, corr)?,
        };
        let after = match body.get("after") {
            None | Some(Value::Null) => 0,
            Some(v) => {
                let s = scalar_str(v);
                if s.is_empty() {
                    0
                } else {
                    s.parse::<usize>().map_err(|_| invalid(corr, &format!("Invalid after: {s}")))?
                }
            }
        };
        if after.saturating_add(limit) > SEARCH_CAP {
            return Err(invalid(
                corr,
                "Paging past 10000 results is not supported; the search endpoints are limited to 10,000 total \
                 results for any given query.",
            ));
        }
        let props: Option<Vec<String>> = body
            .get("properties")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
        let store = lock(&self.store);
        let mut hits: Vec<_> = store
            .objects
            .get(t)
            .iter()
            .filter(|o| o.archived_ms.is_none())
            .filter(|o| parsed.is_empty() || parsed.iter().any(|g| g.iter().all(|f| f.matches(t, o))))
            .map(|o| (sort_prop.as_deref().map_or(Key::Missing, |p| sort_key(t, o, p)), o))
            .collect();
        hits.sort_by(|(ka, a), (kb, b)| {
            let by_key = ka.partial_cmp(kb).unwrap_or(std::cmp::Ordering::Equal);
            let by_key = if descending { by_key.reverse() } else { by_key };
            by_key.then(a.id.cmp(&b.id))
        });
        let total = hits.len();
        let results: Vec<Value> =
            hits.iter().skip(after).take(limit).map(|(_, o)| o.render(t, props.as_deref())).collect();
        let mut v = json!({ "total": total, "results": results });
        let next = after + results.len();
        if next < total {
            v["paging"] = json!({"next": {"after": next.to_string(), "link": format!("?after={next}")}});
        }
        Ok(v)
    }

    fn owners(&self, q: &[(String, String)], corr: &str) -> Result<Value, Out> {
        let get = |k: &str| q.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let limit = parse_limit(get("limit").or(Some("100")), 500, corr)?;
        let after = get("after").filter(|a| !a.is_empty());
        let archived = get("archived") == Some("true");
        let email = get("email");
        let store = lock(&self.store);
        let mut it = store
            .owners
            .iter()
            .filter(|_| !archived)
            .filter(|o| email.is_none_or(|e| o["email"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(e))))
            .skip_while(|o| after.is_some_and(|a| o["id"].as_str() != Some(a)));
        let results: Vec<Value> = it.by_ref().take(limit).cloned().collect();
        let mut v = json!({ "results": results });
        if let Some(next) = it.next().and_then(|o| o["id"].as_str()) {
            v["paging"] = json!({"next": {"after": next, "link": format!("?after={next}")}});
        }
        Ok(v)
    }
}

/// The repeated or comma-separated `properties` parameter, if given.
fn properties_param(q: &[(String, String)]) -> Option<Vec<String>> {
    let mut found = false;
    let mut out = Vec::new();
    for (k, v) in q {
        if k == "properties" {
            found = true;
            out.extend(v.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned));
        }
    }
    found.then_some(out)
}

/// `limit` in `1..=max` (default 10).
fn parse_limit(v: Option<&str>, max: usize, corr: &str) -> Result<usize, Out> {
    let Some(v) = v else { return Ok(10) };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(invalid(corr, &format!("limit must be between 1 and {max}, got {v}"))),
    }
}

/// A JSON string or number as text (anything else as an empty string).
fn scalar_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}
