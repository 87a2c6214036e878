//! Fault injection: which requests a fault hits, and what it does to them.

use serde::{Deserialize, Serialize};

use super::params::ApiError;

/// Which request paths a fault applies to. A pattern may name the full path
/// (`/api/v2/emails`) or the part after `/api/v2` (`/emails`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// Every API request.
    #[default]
    Any,
    /// Paths starting with this prefix.
    Prefix(String),
    /// Exactly this path.
    Exact(String),
}

impl PathMatch {
    /// Whether `path` (a full request path such as `/api/v2/emails`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let short = path.strip_prefix("/api/v2").unwrap_or(path);
        match self {
            PathMatch::Any => true,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()) || short.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p || short == p,
        }
    }
}

/// What a fault does to a request it hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status instead: 429 with the documented body (and a
    /// `Retry-After` header when `retry_after` is given), 500/503 with
    /// Fastify-style JSON, 502/504 with a gateway's HTML page, 401/402/403/404
    /// with their documented bodies.
    Status {
        /// The HTTP status code.
        code: u16,
        /// Seconds to announce in `Retry-After`.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Status 200 with the body cut in the middle; `Content-Length` matches
    /// the cut body, so the HTTP framing is valid and only the JSON is not.
    Truncated,
    /// Status 200 with a complete body that is not valid JSON.
    MalformedJson,
    /// A non-JSON HTML 403 page as Cloudflare sends when it blocks a client
    /// (error 1010).
    Html403,
    /// Delay the response by this many milliseconds, then answer normally.
    Latency(u64),
    /// On a list endpoint, answer the normal page but with
    /// `next_starting_after` equal to the request's `starting_after` (on a
    /// first page: the normal cursor, or `"loop"` when there is none), so a
    /// client that follows cursors blindly never advances.
    CursorLoop,
    /// On a list endpoint, answer with the previous page's items again,
    /// under a fresh cursor.
    RepeatPage,
}

impl FaultKind {
    /// Faults that replace the response before it is computed.
    pub(crate) fn is_pre(&self) -> bool {
        matches!(self, FaultKind::Status { .. } | FaultKind::Html403 | FaultKind::Latency(_))
    }

    /// Faults that only make sense on a paginated list.
    pub(crate) fn needs_list(&self) -> bool {
        matches!(self, FaultKind::CursorLoop | FaultKind::RepeatPage)
    }

    pub(crate) fn name(&self) -> String {
        match self {
            FaultKind::Status { code, .. } => format!("status_{code}"),
            FaultKind::Truncated => "truncated".into(),
            FaultKind::MalformedJson => "malformed_json".into(),
            FaultKind::Html403 => "html_403".into(),
            FaultKind::Latency(ms) => format!("latency_{ms}ms"),
            FaultKind::CursorLoop => "cursor_loop".into(),
            FaultKind::RepeatPage => "repeat_page".into(),
        }
    }
}

fn one() -> usize {
    1
}

/// A fault: applies to the next `count` matching requests, then expires.
///
/// As JSON (`POST /__sim/faults`):
/// `{"path": {"prefix": "/emails"}, "count": 3, "kind": {"status": {"code": 429, "retry_after": 2}}}`,
/// `{"kind": "truncated"}`, `{"kind": {"latency": 1500}, "count": 10}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Which paths it applies to (default: any).
    #[serde(default)]
    pub path: PathMatch,
    /// How many matching requests it affects (default 1).
    #[serde(default = "one")]
    pub count: usize,
    /// What it does.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault of `kind` for the next request to any path.
    pub fn new(kind: FaultKind) -> Self {
        Fault { path: PathMatch::Any, count: 1, kind }
    }

    /// A status fault (e.g. 500, 502, 503, or 429 without `Retry-After`).
    pub fn status(code: u16) -> Self {
        Self::new(FaultKind::Status { code, retry_after: None })
    }

    /// A 429 with the documented body and optionally a `Retry-After` header.
    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        Self::new(FaultKind::Status { code: 429, retry_after })
    }

    /// Restricts the fault to paths starting with `prefix`.
    pub fn on(mut self, prefix: impl Into<String>) -> Self {
        self.path = PathMatch::Prefix(prefix.into());
        self
    }

    /// Restricts the fault to exactly `path`.
    pub fn on_exact(mut self, path: impl Into<String>) -> Self {
        self.path = PathMatch::Exact(path.into());
        self
    }

    /// Makes the fault affect `n` requests.
    pub fn times(mut self, n: usize) -> Self {
        self.count = n;
        self
    }
}

const CF_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";
const CF_504: &str = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";

fn cf_headers(ray: u64) -> Vec<(&'static str, String)> {
    vec![("server", "cloudflare".into()), ("cf-ray", format!("{ray:016x}-FRA"))]
}

/// The reply of a `Status` fault.
pub(crate) fn status_reply(code: u16, retry_after: Option<u64>, ray: u64) -> ApiError {
    let mut e = match code {
        429 => return ApiError::too_many(retry_after),
        401 => ApiError::unauthorized("Missing Authorization header"),
        402 => ApiError::fastify(402, "Workspace does not have an active paid plan"),
        403 => ApiError::fastify(403, "Forbidden"),
        404 => ApiError::fastify(404, "Resource not found"),
        500 => ApiError::fastify(500, "Internal Server Error"),
        502 => ApiError::html(502, CF_502.to_owned(), cf_headers(ray)),
        503 => ApiError::fastify(503, "Service temporarily unavailable, please retry shortly"),
        504 => ApiError::html(504, CF_504.to_owned(), cf_headers(ray)),
        other => ApiError::fastify(other, "Simulated failure"),
    };
    if let Some(secs) = retry_after {
        e.headers.push(("retry-after", secs.to_string()));
        e.retry_after = Some(secs);
    }
    e
}

/// Cloudflare's "error 1010" block page.
pub(crate) fn html_403(ray: u64) -> ApiError {
    let body = format!(
        "<!DOCTYPE html>\n<html class=\"no-js\" lang=\"en-US\">\n<head>\n<title>Access denied | api.instantly.ai used Cloudflare to restrict access</title>\n\
         <meta charset=\"UTF-8\" />\n</head>\n<body>\n<div id=\"cf-wrapper\">\n<div id=\"cf-error-details\" class=\"p-0\">\n\
         <header class=\"mx-auto pt-10 lg:pt-6 lg:px-8 w-240 lg:w-full mb-15 antialiased\">\n\
         <h1 class=\"inline-block md:block mr-2 md:mb-2 font-light text-60 md:text-3xl text-black-dark leading-tight\">\n\
         <span data-translate=\"error\">Error</span>\n<span>1010</span>\n</h1>\n\
         <span class=\"inline-block md:block heading-ray-id font-mono text-15 lg:text-sm lg:leading-relaxed\">Ray ID: {ray:016x} &bull;</span>\n\
         <h2 class=\"text-gray-600 leading-1.3 text-3xl lg:text-2xl font-light\">Access denied</h2>\n</header>\n\
         <section class=\"w-240 lg:w-full mx-auto mb-8 lg:px-8\">\n<div class=\"w-1/2 md:w-full float-left pr-6 md:pb-6 md:pr-0 leading-relaxed\">\n\
         <h2 class=\"text-3xl leading-tight font-normal mb-4 text-black-dark antialiased\">What happened?</h2>\n\
         <p>The owner of this website (api.instantly.ai) has banned your access based on your browser's signature ({ray:016x}-FRA).</p>\n\
         </div>\n</section>\n</div>\n</div>\n</body>\n</html>\n"
    );
    let mut headers = cf_headers(ray);
    headers.push(("x-frame-options", "SAMEORIGIN".into()));
    ApiError::html(403, body, headers)
}

/// The first half of `body` (cut on a character boundary).
pub(crate) fn truncate(body: &str) -> String {
    let mut cut = body.len() / 2;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body[..cut].to_owned()
}

/// `body` made invalid JSON without shortening it: stray commas after the
/// opening bracket, a JavaScript-ism a buggy proxy might emit.
pub(crate) fn malform(body: &str) -> String {
    match body.char_indices().next() {
        Some((_, c)) if c == '{' || c == '[' => format!("{c},,{}", &body[1..]),
        _ => format!("{{,,{body}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_matching() {
        assert!(PathMatch::Prefix("/emails".into()).matches("/api/v2/emails"));
        assert!(PathMatch::Prefix("/api/v2/campaigns".into()).matches("/api/v2/campaigns/analytics"));
        assert!(!PathMatch::Exact("/campaigns".into()).matches("/api/v2/campaigns/analytics"));
        assert!(PathMatch::Any.matches("/api/v2/leads/list"));
    }

    #[test]
    fn fault_json_forms() {
        let f: Fault = serde_json::from_value(json!({"kind": "truncated"})).unwrap_or_else(|_| Fault::status(0));
        assert_eq!(f, Fault::new(FaultKind::Truncated));
        let f: Fault = serde_json::from_value(json!({
            "path": {"prefix": "/emails"}, "count": 3,
            "kind": {"status": {"code": 429, "retry_after": 2}}
        }))
        .unwrap_or_else(|_| Fault::status(0));
        assert_eq!(f, Fault::too_many_requests(Some(2)).on("/emails").times(3));
        let f: Fault = serde_json::from_value(json!({"kind": {"latency": 50}})).unwrap_or_else(|_| Fault::status(0));
        assert_eq!(f.kind, FaultKind::Latency(50));
    }

    #[test]
    fn broken_bodies() {
        let body = r#"{"items":[{"id":"a"}]}"#;
        assert!(serde_json::from_str::<serde_json::Value>(&truncate(body)).is_err());
        let bad = malform(body);
        assert_eq!(bad.len(), body.len() + 2);
        assert!(serde_json::from_str::<serde_json::Value>(&bad).is_err());
    }
}
