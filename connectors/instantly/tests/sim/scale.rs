//! Larger workspaces: cursors deep into big indexes, and (ignored by default,
//! run with `--release -- --ignored --nocapture`) the benchmark-size check.

use std::time::Instant;

use ferry_instantly::sim::{SimConfig, Simulator};
use serde_json::json;

use crate::common::{ids, small, start};

#[tokio::test]
async fn deep_cursors_in_a_big_campaign() {
    let env =
        start(SimConfig { campaigns: 3, leads_per_campaign: 20_000, list_only_leads: 500, emails: 50, ..small() })
            .await;
    let c = env.sim.campaign_ids()[1].clone();
    let (items, pages) = env.all_leads(&json!({"campaign": c, "limit": 100})).await;
    assert_eq!(items.len(), 20_000);
    assert_eq!(pages, 201);
    let all = ids(&items);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    // A cursor from the middle resumes exactly after it.
    let page = env.leads(&json!({"campaign": c, "limit": 100, "starting_after": all[12_345]})).await.json();
    assert_eq!(ids(page["items"].as_array().map(Vec::as_slice).unwrap_or_default()), all[12_346..12_446].to_vec());
    // A cursor that is not a lead id still works (keyset on id).
    let mut probe = all[777].clone();
    probe.push('0');
    let page = env.leads(&json!({"campaign": c, "limit": 3, "starting_after": probe})).await.json();
    assert_eq!(ids(page["items"].as_array().map(Vec::as_slice).unwrap_or_default()), all[778..781].to_vec());
}

#[tokio::test]
#[ignore = "benchmark-size; run in release"]
async fn million_leads_generate_fast_and_pages_stay_cheap() {
    let t = Instant::now();
    let sim = Simulator::new(SimConfig {
        campaigns: 10,
        leads_per_campaign: 100_000,
        list_only_leads: 10_000,
        emails: 20_000,
        ..small()
    });
    let generated = t.elapsed();
    println!("generated 1,010,000 leads in {generated:?}");
    assert!(generated.as_secs() < 10);
    let server = sim.serve(0).await.expect("bind");
    let http = reqwest::Client::new();
    let url = format!("{}/leads/list", server.base_url());
    let mut cursor = serde_json::Value::Null;
    let t = Instant::now();
    let pages = 300;
    for _ in 0..pages {
        let mut body = json!({"limit": 100});
        if !cursor.is_null() {
            body["starting_after"] = cursor.clone();
        }
        let page: serde_json::Value =
            http.post(&url).bearer_auth("sim-key").json(&body).send().await.expect("send").json().await.expect("json");
        cursor = page["next_starting_after"].clone();
    }
    let per_page = t.elapsed() / pages;
    println!("100-lead pages over HTTP: {per_page:?} each (client parsing included)");
    let c = sim.campaign_ids()[0].clone();
    let t = Instant::now();
    for _ in 0..100 {
        let body = json!({"campaign": c, "limit": 100, "starting_after": "019"});
        http.post(&url).bearer_auth("sim-key").json(&body).send().await.expect("send").bytes().await.expect("body");
    }
    println!("campaign-filtered pages: {:?} each", t.elapsed() / 100);
    server.shutdown().await;
}
