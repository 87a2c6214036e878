//! (c) Every fault kind does what it says, to exactly the requests it targets.

use std::time::Instant;

use ferry_instantly::sim::{Fault, FaultKind, SimConfig};
use serde_json::{Value, json};

use crate::common::{small, start};

#[tokio::test]
async fn status_faults() {
    let env = start(small()).await;
    env.sim.inject(Fault::too_many_requests(Some(2)).on("/emails").times(2));
    // Other paths are unaffected.
    assert_eq!(env.get("/campaigns", &[]).await.status, 200);
    for _ in 0..2 {
        let r = env.get("/emails", &[]).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(
            r.json(),
            json!({"statusCode": 429, "error": "Too Many Requests", "message": "Rate limit exceeded"})
        );
    }
    assert_eq!(env.get("/emails", &[]).await.status, 200, "the fault is used up");
    let log = env.sim.requests();
    assert_eq!(log.iter().filter(|r| r.retry_after == Some(2)).count(), 2);
    assert_eq!(log[1].fault.as_deref(), Some("status_429"));
    assert_eq!(env.sim.stats().rate_limited, 2);

    env.sim.inject(Fault::status(500));
    let r = env.get("/accounts", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"statusCode": 500, "error": "Internal Server Error", "message": "Internal Server Error"})
    );
    env.sim.inject(Fault::status(502));
    let r = env.get("/accounts", &[]).await;
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert!(r.text.contains("502 Bad Gateway") && r.header("server") == Some("cloudflare"));
    env.sim.inject(Fault::status(503).on_exact("/api/v2/leads/list"));
    assert_eq!(env.get("/accounts", &[]).await.status, 200);
    let r = env.leads(&json!({})).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["statusCode"], json!(503));
    env.sim.inject(Fault::status(402));
    assert_eq!(
        env.get("/campaigns", &[]).await.json(),
        json!({"statusCode": 402, "error": "Payment Required", "message": "Workspace does not have an active paid plan"})
    );
}

#[tokio::test]
async fn html_403_like_cloudflare() {
    let env = start(small()).await;
    env.sim.inject(Fault::new(FaultKind::Html403));
    let r = env.get("/campaigns", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert!(r.header("cf-ray").is_some());
    assert!(r.text.contains("Error") && r.text.contains("1010"));
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
}

#[tokio::test]
async fn truncated_and_malformed_bodies() {
    let env = start(small()).await;
    let full = env.get("/campaigns", &[("limit", "100")]).await.text;
    env.sim.inject(Fault::new(FaultKind::Truncated).on("/campaigns"));
    let r = env
        .http
        .get(env.url("/campaigns"))
        .bearer_auth("sim-key")
        .query(&[("limit", "100")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let declared = r.content_length();
    let bytes = r.bytes().await.expect("framing is valid, so the body reads completely");
    assert_eq!(declared, Some(bytes.len() as u64));
    let text = String::from_utf8_lossy(&bytes);
    assert!(full.starts_with(text.as_ref()) && text.len() < full.len());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());

    env.sim.inject(Fault::new(FaultKind::MalformedJson).on("/campaigns/analytics"));
    let r = env.get("/campaigns/analytics", &[]).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    assert_eq!(env.get("/campaigns/analytics", &[]).await.status, 200);
    assert!(serde_json::from_str::<Value>(&env.get("/campaigns/analytics", &[]).await.text).is_ok());
}

#[tokio::test]
async fn latency_fault_and_configured_latency() {
    let env = start(small()).await;
    env.sim.inject(Fault::new(FaultKind::Latency(300)).on("/accounts"));
    let t = Instant::now();
    assert_eq!(env.get("/accounts", &[]).await.status, 200);
    assert!(t.elapsed().as_millis() >= 300);
    let t = Instant::now();
    env.get("/accounts", &[]).await;
    assert!(t.elapsed().as_millis() < 300);

    let slow = start(SimConfig { latency_ms: 120, ..small() }).await;
    let t = Instant::now();
    slow.get("/campaigns", &[]).await;
    assert!(t.elapsed().as_millis() >= 120);
}

#[tokio::test]
async fn cursor_loop_returns_the_same_cursor() {
    let env = start(small()).await;
    env.sim.inject(Fault::new(FaultKind::CursorLoop).on("/campaigns").times(3));
    let p1 = env.get("/campaigns", &[("limit", "2")]).await.json();
    let c1 = p1["next_starting_after"].as_str().unwrap_or_default().to_owned();
    assert!(!c1.is_empty());
    for _ in 0..2 {
        let p = env.get("/campaigns", &[("limit", "2"), ("starting_after", &c1)]).await.json();
        assert_eq!(p["next_starting_after"], json!(c1), "the cursor does not advance");
    }
    let p = env.get("/campaigns", &[("limit", "2"), ("starting_after", &c1)]).await.json();
    assert_ne!(p["next_starting_after"], json!(c1), "fault used up");

    // On leads (cursor in the body) too, and never on analytics.
    env.sim.inject(Fault::new(FaultKind::CursorLoop).times(2));
    let a = env.get("/campaigns/analytics", &[]).await.json();
    assert!(a.is_array());
    let p = env.leads(&json!({"limit": 10, "starting_after": "0"})).await.json();
    assert_eq!(p["next_starting_after"], json!("0"));
}

#[tokio::test]
async fn repeat_page_returns_previous_items_under_fresh_cursor() {
    let env = start(small()).await;
    let p1 = env.leads(&json!({"limit": 10})).await.json();
    env.sim.inject(Fault::new(FaultKind::RepeatPage).on("/leads/list"));
    let c1 = p1["next_starting_after"].clone();
    let p2 = env.leads(&json!({"limit": 10, "starting_after": c1})).await.json();
    assert_eq!(p2["items"], p1["items"]);
    assert!(p2["next_starting_after"].is_string());
    assert_ne!(p2["next_starting_after"], c1);
    let p3 = env.leads(&json!({"limit": 10, "starting_after": p2["next_starting_after"]})).await.json();
    assert_ne!(p3["items"], p1["items"]);
}

#[tokio::test]
async fn fail_rate_and_clear_faults() {
    let env = start(SimConfig { fail_rate: 1.0, ..small() }).await;
    for _ in 0..6 {
        let r = env.get("/campaigns", &[]).await;
        assert!(matches!(r.status, 500 | 502 | 503), "{}", r.status);
    }
    assert_eq!(env.sim.stats().faults_applied, 6);

    let env = start(small()).await;
    env.sim.inject(Fault::status(500).times(100));
    assert_eq!(env.sim.pending_faults().len(), 1);
    env.sim.clear_faults();
    assert!(env.sim.pending_faults().is_empty());
    assert_eq!(env.get("/campaigns", &[]).await.status, 200);
}
