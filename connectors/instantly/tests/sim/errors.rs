//! (b) Auth, validation and rate-limit answers with the documented bodies.

use std::time::Duration;

use ferry_instantly::sim::SimConfig;
use serde_json::json;

use crate::common::{small, start};

const GET_PATHS: &[&str] = &[
    "/campaigns",
    "/campaigns/analytics",
    "/campaigns/analytics/overview",
    "/campaigns/analytics/daily",
    "/campaigns/analytics/steps",
    "/accounts",
    "/emails",
];

#[tokio::test]
async fn missing_or_wrong_key_gets_401() {
    let env = start(small()).await;
    for path in GET_PATHS {
        let r = env.get_auth(path, None).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.json(),
            json!({"statusCode": 401, "error": "Unauthorized", "message": "Missing Authorization header"})
        );
        let r = env.get_auth(path, Some("Bearer not-the-key")).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], json!("Unauthorized"));
        let r = env.get_auth(path, Some("sim-key")).await;
        assert_eq!(r.status, 401, "a key without the Bearer scheme is invalid");
        let r = env.get_auth(path, Some("bearer sim-key")).await;
        assert_eq!(r.status, 200, "the scheme is case-insensitive");
    }
    let r = env.http.post(env.url("/leads/list")).json(&json!({})).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 401);
    let log = env.sim.requests();
    assert!(log.iter().any(|r| !r.auth_valid) && log.iter().any(|r| r.auth_valid));
    assert!(log.iter().all(|r| r.user_agent.as_deref() == Some("ferry-sim-tests/0.1")));
}

#[tokio::test]
async fn limit_outside_1_to_100_gets_400() {
    let env = start(small()).await;
    for path in ["/campaigns", "/accounts", "/emails"] {
        for (limit, message) in [
            ("101", "querystring/limit must be <= 100"),
            ("0", "querystring/limit must be >= 1"),
            ("ten", "querystring/limit must be integer"),
            ("2.5", "querystring/limit must be integer"),
        ] {
            let r = env.get(path, &[("limit", limit)]).await;
            assert_eq!(r.status, 400, "{path} limit={limit}");
            assert_eq!(r.json(), json!({"statusCode": 400, "error": "Bad Request", "message": message}));
        }
        assert_eq!(env.get(path, &[("limit", "100")]).await.status, 200);
        assert_eq!(env.get(path, &[("limit", "1")]).await.status, 200);
    }
    let r = env.leads(&json!({"limit": 101})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"statusCode": 400, "error": "Bad Request", "message": "body/limit must be <= 100"}));
    let r = env.leads(&json!({"limit": 0})).await;
    assert_eq!(r.json()["message"], json!("body/limit must be >= 1"));
    let r = env.leads(&json!({"in_campaign": "maybe"})).await;
    assert_eq!(r.json()["message"], json!("body/in_campaign must be boolean"));
    let r = env.leads(&json!({"filter": "FILTER_NOPE"})).await;
    assert_eq!(r.json()["message"], json!("body/filter must be equal to one of the allowed values"));
    let r = env.get("/emails", &[("sort_order", "up")]).await;
    assert_eq!(r.json()["message"], json!("querystring/sort_order must be equal to one of the allowed values"));
    let r = env.get("/emails", &[("mode", "emode_everything")]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn bad_bodies_and_routes() {
    let env = start(small()).await;
    let post = |body: &'static str, ct: &'static str| {
        env.http.post(env.url("/leads/list")).bearer_auth("sim-key").header("content-type", ct).body(body).send()
    };
    let r = post("{not json", "application/json").await.expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["code"], json!("FST_ERR_CTP_INVALID_JSON_BODY"));
    assert_eq!(body["error"], json!("Bad Request"));
    let r = post("[1,2]", "application/json").await.expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let r = post("", "application/json").await.expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let r = post("limit=5", "text/plain").await.expect("send");
    assert_eq!(r.status().as_u16(), 415);
    // No body at all is fine (every field is optional).
    let r = env.http.post(env.url("/leads/list")).bearer_auth("sim-key").send().await.expect("send");
    assert_eq!(r.status().as_u16(), 200);
    // Unknown routes and wrong methods: Fastify's 404.
    let r = env.get("/campaigns/nope", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"statusCode": 404, "error": "Not Found", "message": "Route GET:/api/v2/campaigns/nope not found"})
    );
    assert_eq!(env.get("/leads/list", &[]).await.status, 404);
}

#[tokio::test]
async fn analytics_date_errors_use_message_only_shape() {
    let env = start(small()).await;
    for path in [
        "/campaigns/analytics",
        "/campaigns/analytics/overview",
        "/campaigns/analytics/daily",
        "/campaigns/analytics/steps",
    ] {
        let r = env.get(path, &[("start_date", "2026-03-09"), ("end_date", "2026-03-01")]).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json(), json!({"message": "Start Date must be earlier than End Date"}));
        let r = env.get(path, &[("start_date", "2026-03-01T00:00:00.000Z"), ("end_date", "2026-03-09")]).await;
        assert_eq!(r.status, 200);
        let r = env.get(path, &[("start_date", "yesterday")]).await;
        assert_eq!(r.status, 400);
    }
}

#[tokio::test]
async fn workspace_budget_answers_429_with_documented_body() {
    let env = start(SimConfig { rate_limit_per_sec: Some(3), ..small() }).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(env.get("/campaigns", &[]).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
    assert_eq!(codes, vec![200, 200, 200, 429, 429]);
    assert_eq!(
        statuses[3].json(),
        json!({"statusCode": 429, "error": "Too Many Requests", "message": "Rate limit exceeded"})
    );
    assert_eq!(statuses[3].header("retry-after"), None, "the real API is not known to send Retry-After");
    assert_eq!(env.sim.stats().rate_limited, 2);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(env.get("/accounts", &[]).await.status, 200, "budget is shared and refills");

    let env = start(SimConfig { rate_limit_per_min: Some(2), limit_retry_after: true, ..small() }).await;
    env.get("/campaigns", &[]).await;
    env.get("/accounts", &[]).await;
    let r = env.get("/emails", &[]).await;
    assert_eq!(r.status, 429);
    let secs: u64 = r.header("retry-after").and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((59..=60).contains(&secs), "{secs}");
    assert_eq!(env.sim.requests().last().and_then(|r| r.retry_after), Some(secs));
}

#[tokio::test]
async fn emails_have_their_own_20_per_minute_budget() {
    let env = start(SimConfig { emails_limit_per_min: Some(20), ..small() }).await;
    for i in 0..20 {
        assert_eq!(env.get("/emails", &[]).await.status, 200, "request {i}");
    }
    assert_eq!(env.get("/emails", &[]).await.status, 429);
    assert_eq!(env.get("/campaigns", &[]).await.status, 200);
    let stats = env.sim.stats();
    assert_eq!(stats.by_path_status["/api/v2/emails"][&429], 1);
    assert_eq!(stats.by_path_status["/api/v2/emails"][&200], 20);
    assert_eq!(stats.total_requests, 22);
}

#[tokio::test]
async fn control_endpoints_bypass_auth_and_are_not_counted() {
    let env = start(small()).await;
    let root = env.server.root_url();
    env.get("/campaigns", &[]).await;
    let stats: serde_json::Value =
        env.http.get(format!("{root}/__sim/stats")).send().await.expect("send").json().await.expect("json");
    assert_eq!(stats["total_requests"], json!(1));
    assert_eq!(stats["by_path"]["/api/v2/campaigns"], json!(1));
    let r = env
        .http
        .post(format!("{root}/__sim/faults"))
        .json(&json!({"path": {"prefix": "/campaigns"}, "kind": {"status": {"code": 503}}}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(env.get("/campaigns", &[]).await.status, 503);
    env.http
        .post(format!("{root}/__sim/faults"))
        .json(&json!({"kind": "html403", "count": 5}))
        .send()
        .await
        .expect("send");
    let r = env.http.delete(format!("{root}/__sim/faults")).send().await.expect("send");
    assert_eq!(r.json::<serde_json::Value>().await.expect("json"), json!({"cleared": 1}));
    assert_eq!(env.get("/campaigns", &[]).await.status, 200);
    let r = env.http.post(format!("{root}/__sim/mutate")).json(&json!({"new_leads": 2})).send().await.expect("send");
    let report: serde_json::Value = r.json().await.expect("json");
    assert_eq!(report["new_lead_ids"].as_array().map(Vec::len), Some(2));
    let r = env.http.post(format!("{root}/__sim/mutate")).body("{oops").send().await.expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let ds: serde_json::Value =
        env.http.get(format!("{root}/__sim/dataset")).send().await.expect("send").json().await.expect("json");
    assert!(ds["daily"]["workspace"].is_array());
    assert_eq!(env.sim.stats().total_requests, 3);
    assert_eq!(env.sim.stats().mutations, 1);
}
