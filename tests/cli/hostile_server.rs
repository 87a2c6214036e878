//! A hostile HTTP server: it stands in front of the Instantly simulator on 127.0.0.1 and
//! misbehaves the way real APIs, proxies and networks do, on the requests whose path
//! contains a chosen part (`/accounts`), passing every other request through unchanged.
//! One mode per test ([`Mode`]); no tests here (they are in `hostile.rs`).
//!
//! Pages it mangles are the simulator's real pages, so everything the server sent
//! correctly can be checked in the tables afterwards.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use ferry_instantly::sim::SimConfig;
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::simulator::Sim;

/// What the server does to the requests it targets.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// Nothing: every request goes to the simulator.
    Pass,
    /// The first answer to each distinct request is a 429 with this `Retry-After` value;
    /// the retry goes through.
    RetryAfter(&'static str),
    /// A 200 whose JSON body never ends: `mb` MiB of whitespace, chunked.
    HugeBody { mb: usize },
    /// A gzip body of about 2 MB that inflates to 2 GiB of whitespace.
    GzipBomb,
    /// A 200 whose body arrives one byte a second.
    SlowBody,
    /// No answer at all for an hour (the connection stays open).
    SlowHeaders,
    /// The real page cut in half (framing valid: `Content-Length` matches).
    Truncated,
    /// The real page with bytes that are not UTF-8 inside a string of its first item.
    InvalidUtf8,
    /// JSON nested 100,000 arrays deep.
    Deep,
    /// A `Content-Length` of twice the body; the connection ends after the body.
    LyingLength,
    /// The first item of each page gains a string holding `\u0000`.
    Nul,
    /// The first item of each page gains a string holding a lone surrogate escape
    /// (`\ud800`), as JavaScript's `JSON.stringify` writes one.
    LoneSurrogate,
    /// The first item of each page gains a 10 MB string.
    HugeField,
    /// The first item of each page is dated in 2099.
    FutureTimestamp,
    /// The first item of each page gets this `id` (a number where the API sends strings).
    Id(Value),
    /// Each page gains two items that are not objects (`42`, `"x"`).
    NotAnObject,
    /// A 302 to the same path on the simulator (another origin: another port).
    RedirectOtherOrigin,
    /// A 307 to the same path under `/same` on this server, which answers only requests
    /// that carry the API key.
    RedirectSameOrigin,
    /// A 400 whose body echoes the bearer token upper-cased, lower-cased, form-encoded
    /// and percent-encoded with lower-case hex.
    EchoKey,
}

struct Inner {
    upstream: String,
    target: String,
    mode: Mutex<Mode>,
    seen: Mutex<HashSet<String>>,
    client: reqwest::Client,
}

/// The hostile server and the simulator behind it.
pub(crate) struct Hostile {
    /// The simulator it passes requests to.
    pub sim: Sim,
    /// Base URL for `base_url` (`http://127.0.0.1:PORT/api/v2`).
    pub base: String,
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Hostile {
    /// Starts a simulator with `cfg` and the hostile server in front of it, applying
    /// `mode` to requests whose path contains `target`.
    pub(crate) fn start(cfg: SimConfig, target: &str, mode: Mode) -> Self {
        let sim = Sim::start(cfg);
        let upstream = sim.base.trim_end_matches("/api/v2").to_owned();
        let inner = Arc::new(Inner {
            upstream,
            target: target.to_owned(),
            mode: Mutex::new(mode),
            seen: Mutex::default(),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        });
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().fallback(handle).with_state(inner.clone());
        rt.spawn(async move { axum::serve(listener, app).await });
        Hostile { sim, base: format!("http://127.0.0.1:{port}/api/v2"), inner, rt: Some(rt) }
    }

    /// Changes the mode (for a second run).
    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        // Slow bodies and held connections end with the runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn handle(State(h): State<Arc<Inner>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let same = path.strip_prefix("/same");
    let mode = if path.contains(&h.target) { h.mode.lock().unwrap().clone() } else { Mode::Pass };
    if let Some(rest) = same {
        // The end of a same-origin redirect: only with the credentials.
        if req.headers().get(header::AUTHORIZATION).is_none() {
            return status(StatusCode::UNAUTHORIZED, json!({"message": "the redirect lost the credentials"}));
        }
        return forward(&h, req, &format!("{rest}{query}")).await;
    }
    match mode {
        Mode::Pass => forward(&h, req, &format!("{path}{query}")).await,
        Mode::RetryAfter(value) => {
            let (parts, body) = req.into_parts();
            let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let id = format!("{} {path}{query} {}", parts.method, String::from_utf8_lossy(&body));
            if h.seen.lock().unwrap().insert(id) {
                let mut r = status(StatusCode::TOO_MANY_REQUESTS, json!({"message": "Too Many Requests"}));
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(value));
                return r;
            }
            forward(&h, Request::from_parts(parts, Body::from(body)), &format!("{path}{query}")).await
        }
        Mode::HugeBody { mb } => {
            let head = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"items\": [")) });
            let chunk = Bytes::from(vec![b' '; 1 << 20]);
            let rest = futures::stream::iter((0..mb).map(move |_| Ok(chunk.clone())));
            json_response(Body::from_stream(head.chain(rest)))
        }
        Mode::GzipBomb => {
            let mut r = json_response(Body::from_stream(gzip_bomb(2048)));
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        Mode::SlowBody => {
            let bytes = futures::stream::unfold(0u64, |n| async move {
                if n > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                (n < 3600).then(|| (Ok::<_, std::io::Error>(Bytes::from_static(b" ")), n + 1))
            });
            json_response(Body::from_stream(bytes))
        }
        Mode::SlowHeaders => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            status(StatusCode::GATEWAY_TIMEOUT, json!({}))
        }
        Mode::Truncated => {
            let (code, body) = fetch(&h, req, &format!("{path}{query}")).await;
            let cut = Bytes::copy_from_slice(&body[..body.len() / 2]);
            raw(code, cut)
        }
        Mode::InvalidUtf8 => {
            mangle(
                &h,
                req,
                &path,
                &query,
                |item| item["hostile"] = json!("@@BAD@@"),
                |text| replace_bytes(text, b"@@BAD@@", b"caf\xe9 \xff\xfe"),
            )
            .await
        }
        Mode::Deep => {
            let depth = 100_000;
            let mut body = Vec::with_capacity(depth * 2);
            body.extend(std::iter::repeat_n(b'[', depth));
            body.extend(std::iter::repeat_n(b']', depth));
            raw(StatusCode::OK, Bytes::from(body))
        }
        Mode::LyingLength => {
            let (code, body) = fetch(&h, req, &format!("{path}{query}")).await;
            let declared = body.len() * 2;
            let once = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
            let mut r = Response::new(Body::from_stream(once));
            *r.status_mut() = code;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
            r
        }
        Mode::Nul => mangle(&h, req, &path, &query, |item| item["hostile"] = json!("a\u{0}b"), |t| t).await,
        Mode::LoneSurrogate => {
            mangle(
                &h,
                req,
                &path,
                &query,
                |item| item["hostile"] = json!("@@SURROGATE@@"),
                |text| replace_bytes(text, b"@@SURROGATE@@", b"half \\ud800 a pair \\ud83d\\ude00 end"),
            )
            .await
        }
        Mode::HugeField => {
            let big = "x".repeat(10 * 1024 * 1024);
            mangle(&h, req, &path, &query, move |item| item["hostile"] = json!(big.clone()), |t| t).await
        }
        Mode::FutureTimestamp => {
            mangle(
                &h,
                req,
                &path,
                &query,
                |item| {
                    for field in ["timestamp_created", "timestamp_updated", "timestamp_email", "timestamp_last_contact"]
                    {
                        if item.get(field).is_some() {
                            item[field] = json!("2099-01-01T00:00:00.000Z");
                        }
                    }
                },
                |t| t,
            )
            .await
        }
        Mode::Id(id) => mangle(&h, req, &path, &query, move |item| item["id"] = id.clone(), |t| t).await,
        Mode::NotAnObject => {
            let (code, body) = fetch(&h, req, &format!("{path}{query}")).await;
            let mut page: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(items) = page.get_mut("items").and_then(Value::as_array_mut) {
                items.insert(0, json!(42));
                items.push(json!("x"));
            }
            raw(code, Bytes::from(serde_json::to_vec(&page).unwrap()))
        }
        Mode::RedirectOtherOrigin => redirect(StatusCode::FOUND, &format!("{}{path}{query}", h.upstream)),
        Mode::RedirectSameOrigin => redirect(StatusCode::TEMPORARY_REDIRECT, &format!("/same{path}{query}")),
        Mode::EchoKey => {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
            let escaped: String = token
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02x}")
                    }
                })
                .collect();
            let message = format!(
                "invalid key {} (as sent: {encoded}; normalised: {}; escaped: {escaped})",
                token.to_uppercase(),
                token.to_lowercase()
            );
            status(StatusCode::BAD_REQUEST, json!({"message": message, "error": "Bad Request"}))
        }
    }
}

fn status(code: StatusCode, body: Value) -> Response {
    raw(code, Bytes::from(serde_json::to_vec(&body).unwrap()))
}

fn raw(code: StatusCode, body: Bytes) -> Response {
    let mut r = json_response(Body::from(body));
    *r.status_mut() = code;
    r
}

fn json_response(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn redirect(code: StatusCode, location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
    r
}

/// Asks the simulator; returns its status and body.
async fn fetch(h: &Inner, req: Request, path_and_query: &str) -> (StatusCode, Bytes) {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut out = h.client.request(parts.method, format!("{}{path_and_query}", h.upstream)).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    match out.send().await {
        Ok(r) => {
            let code = StatusCode::from_u16(r.status().as_u16()).unwrap();
            (code, r.bytes().await.unwrap_or_default())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, Bytes::from(format!("{{\"message\": \"upstream: {e}\"}}"))),
    }
}

async fn forward(h: &Inner, req: Request, path_and_query: &str) -> Response {
    let (code, body) = fetch(h, req, path_and_query).await;
    raw(code, body)
}

/// The simulator's page with its first item changed by `item`, serialized, then the
/// text changed by `text` (for what `serde_json` would never write).
async fn mangle(
    h: &Inner,
    req: Request,
    path: &str,
    query: &str,
    item: impl Fn(&mut Value),
    text: impl Fn(Vec<u8>) -> Vec<u8>,
) -> Response {
    let (code, body) = fetch(h, req, &format!("{path}{query}")).await;
    let Ok(mut page) = serde_json::from_slice::<Value>(&body) else {
        return raw(code, body);
    };
    let first = match &mut page {
        Value::Array(items) => items.first_mut(),
        Value::Object(m) => match m.get_mut("items") {
            Some(Value::Array(items)) => items.first_mut(),
            _ => Some(&mut page),
        },
        _ => None,
    };
    if let Some(first) = first {
        item(first);
    }
    raw(code, Bytes::from(text(serde_json::to_vec(&page).unwrap())))
}

fn replace_bytes(text: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let Some(at) = text.windows(from.len()).position(|w| w == from) else {
        return text;
    };
    let mut out = text[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&text[at + from.len()..]);
    out
}

/// A gzip stream of `{"items": [` and `mib` MiB of spaces, compressed as it is read (so
/// only what the client reads is ever produced): about 1 KB per MiB inflated.
fn gzip_bomb(mib: usize) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let spaces = Arc::new(vec![b' '; 1 << 20]);
    futures::stream::unfold((Some(encoder), 0usize), move |(enc, n)| {
        let spaces = spaces.clone();
        async move {
            let mut enc = enc?;
            if n > mib {
                return Some((enc.finish().map(Bytes::from), (None, n)));
            }
            let input: &[u8] = if n == 0 { b"{\"items\": [" } else { &spaces };
            let out =
                enc.write_all(input).and_then(|()| enc.flush()).map(|()| Bytes::from(std::mem::take(enc.get_mut())));
            Some((out, (Some(enc), n + 1)))
        }
    })
}
