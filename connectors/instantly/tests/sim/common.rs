//! Shared helpers: a running simulator plus a reqwest client.

use chrono::{TimeZone, Utc};
use ferry_instantly::sim::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

/// A small workspace on a fixed clock (2026-03-10 14:30 UTC).
pub(crate) fn small() -> SimConfig {
    SimConfig {
        seed: 11,
        campaigns: 6,
        leads_per_campaign: 60,
        list_only_leads: 23,
        accounts: 13,
        emails: 150,
        days: 10,
        now: Utc.with_ymd_and_hms(2026, 3, 10, 14, 30, 0).single(),
        ..SimConfig::default()
    }
}

pub(crate) struct Env {
    pub sim: Simulator,
    pub server: SimHandle,
    pub http: reqwest::Client,
}

/// A response: status, headers and body text (parsed when it is JSON).
pub(crate) struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) async fn start(cfg: SimConfig) -> Env {
    let sim = Simulator::new(cfg);
    let server = sim.serve(0).await.expect("bind 127.0.0.1");
    let http = reqwest::Client::builder().user_agent("ferry-sim-tests/0.1").build().expect("client");
    Env { sim, server, http }
}

impl Env {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.base_url(), path)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        Resp { status, headers, text }
    }

    /// GET with the right key.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, &str)]) -> Resp {
        self.send(self.http.get(self.url(path)).bearer_auth(self.sim.api_key()).query(query)).await
    }

    /// GET with an arbitrary (or no) Authorization header.
    pub(crate) async fn get_auth(&self, path: &str, auth: Option<&str>) -> Resp {
        let mut req = self.http.get(self.url(path));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        self.send(req).await
    }

    /// POST /leads/list with a JSON body.
    pub(crate) async fn leads(&self, body: &Value) -> Resp {
        self.send(self.http.post(self.url("/leads/list")).bearer_auth(self.sim.api_key()).json(body)).await
    }

    /// Follows `next_starting_after` through a GET list endpoint.
    pub(crate) async fn all_get(&self, path: &str, query: &[(&str, &str)]) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("starting_after", c));
            }
            let r = self.get(path, &q).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            let page = r.json();
            pages += 1;
            let got = page["items"].as_array().expect("items").clone();
            let empty = got.is_empty();
            items.extend(got);
            match page.get("next_starting_after").and_then(Value::as_str) {
                Some(c) if !empty => cursor = Some(c.to_owned()),
                _ => return (items, pages),
            }
            assert!(pages < 10_000, "runaway pagination");
        }
    }

    /// Follows `next_starting_after` through POST /leads/list.
    pub(crate) async fn all_leads(&self, body: &Value) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut body = body.clone();
        let mut pages = 0;
        loop {
            let r = self.leads(&body).await;
            assert_eq!(r.status, 200, "{}", r.text);
            let page = r.json();
            pages += 1;
            let got = page["items"].as_array().expect("items").clone();
            let empty = got.is_empty();
            items.extend(got);
            match page.get("next_starting_after").and_then(Value::as_str) {
                Some(c) if !empty => body["starting_after"] = Value::String(c.to_owned()),
                _ => return (items, pages),
            }
            assert!(pages < 100_000, "runaway pagination");
        }
    }
}

/// The `id` of each item.
pub(crate) fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().unwrap_or_default().to_owned()).collect()
}
