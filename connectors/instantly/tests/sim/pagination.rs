//! (a) Paging through every endpoint returns exactly the simulator's dataset.

use std::collections::HashSet;

use ferry_instantly::sim::{Scope, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::common::{ids, small, start};

#[tokio::test]
async fn campaigns_pages_match_dataset() {
    let env = start(small()).await;
    let ds = env.sim.dataset();
    for limit in ["1", "4", "100"] {
        let (items, _) = env.all_get("/campaigns", &[("limit", limit)]).await;
        assert_eq!(items, ds.campaigns, "limit {limit}");
    }
    // Newest id first, as observed.
    let got = ids(&ds.campaigns);
    let mut sorted = got.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, sorted);
    // Without `limit` a page holds 10 items.
    let big = start(SimConfig { campaigns: 12, ..small() }).await;
    let first = big.get("/campaigns", &[]).await.json();
    assert_eq!(first["items"].as_array().map(Vec::len), Some(10));
    assert!(first["next_starting_after"].is_string());
    // Filters.
    let paused = env.get("/campaigns", &[("limit", "100"), ("status", "2")]).await.json();
    let expected: Vec<&Value> = ds.campaigns.iter().filter(|c| c["status"] == json!(2)).collect();
    assert!(!expected.is_empty());
    assert_eq!(paused["items"].as_array().map(|v| v.iter().collect::<Vec<_>>()), Some(expected));
    let name = ds.campaigns[0]["name"].as_str().unwrap_or_default().to_lowercase();
    let found = env.get("/campaigns", &[("search", &name[..5])]).await.json();
    assert!(found["items"].as_array().is_some_and(|v| v.iter().any(|c| c["id"] == ds.campaigns[0]["id"])));
}

#[tokio::test]
async fn last_page_has_no_cursor_and_full_last_page_is_followed_by_empty_page() {
    let env = start(small()).await;
    // 60 leads per campaign: pages of 7 end with a short page without cursor.
    let campaign = env.sim.campaign_ids()[0].clone();
    let (items, pages) = env.all_leads(&json!({"campaign": campaign, "limit": 7})).await;
    assert_eq!(items.len(), 60);
    assert_eq!(pages, 9);
    // Pages of 20: three full pages, each with a cursor, then an empty page without one.
    let (items, pages) = env.all_leads(&json!({"campaign": campaign, "limit": 20})).await;
    assert_eq!(items.len(), 60);
    assert_eq!(pages, 4);
    let last = env.sim.requests().last().map(|r| r.status);
    assert_eq!(last, Some(200));
    let p3 = env.leads(&json!({"campaign": campaign, "limit": 20, "starting_after": ids(&items)[39]})).await.json();
    assert_eq!(p3["next_starting_after"], json!(ids(&items)[59]));
    let p4 = env.leads(&json!({"campaign": campaign, "limit": 20, "starting_after": ids(&items)[59]})).await.json();
    assert_eq!(p4, json!({"items": []}));
}

#[tokio::test]
async fn leads_pages_match_dataset_per_campaign_and_without_campaign() {
    let env = start(small()).await;
    let ds = env.sim.dataset();
    let (all, _) = env.all_leads(&json!({"limit": 100})).await;
    assert_eq!(all, ds.leads);
    assert_eq!(all.len(), 6 * 60 + 23);
    // Ordered by id ascending.
    let got = ids(&all);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted);
    // Both UUIDv4 (before 2025-10-15) and UUIDv7 ids occur.
    assert!(got.iter().any(|id| &id[14..15] == "4"));
    assert!(got.iter().any(|id| &id[14..15] == "7"));

    let mut seen = 0;
    for c in env.sim.campaign_ids() {
        let (items, _) = env.all_leads(&json!({"campaign": c, "limit": 13})).await;
        let expected: Vec<Value> = ds.leads_of(Some(&c)).into_iter().cloned().collect();
        assert_eq!(items, expected);
        assert_eq!(items.len(), 60);
        seen += items.len();
    }
    // Leads in no campaign: `in_campaign: false`; they carry no `campaign`.
    let (none, _) = env.all_leads(&json!({"in_campaign": false, "limit": 5})).await;
    let expected: Vec<Value> = ds.leads_of(None).into_iter().cloned().collect();
    assert_eq!(none, expected);
    assert_eq!(none.len(), 23);
    assert!(none.iter().all(|l| l.get("campaign").is_none() && l["list_id"].is_string()));
    assert_eq!(seen + none.len(), all.len());

    // Unknown campaign: empty. `campaign_id` is not a filter (the key is `campaign`).
    let r = env.leads(&json!({"campaign": "00000000-0000-4000-8000-000000000000"})).await.json();
    assert_eq!(r, json!({"items": []}));
    let r = env.leads(&json!({"campaign_id": env.sim.campaign_ids()[0], "limit": 100})).await.json();
    assert_eq!(r["items"].as_array().map(Vec::len), Some(100));
    // ids / search filters.
    let want = vec![got[5].clone(), got[9].clone()];
    let r = env.leads(&json!({"ids": [want[1], want[0]]})).await.json();
    assert_eq!(ids(r["items"].as_array().map(Vec::as_slice).unwrap_or_default()), want);
    let email = all.iter().find_map(|l| l["email"].as_str()).unwrap_or_default().to_owned();
    let r = env.leads(&json!({"search": email, "limit": 100})).await.json();
    assert!(r["items"].as_array().is_some_and(|v| !v.is_empty() && v.iter().all(|l| l["email"] == json!(email))));
}

#[tokio::test]
async fn accounts_cursor_is_timestamp_and_email_percent_encoded() {
    let env = start(small()).await;
    let ds = env.sim.dataset();
    for limit in ["2", "5", "100"] {
        let (items, _) = env.all_get("/accounts", &[("limit", limit)]).await;
        assert_eq!(items, ds.accounts, "limit {limit}");
    }
    let page = env.get("/accounts", &[("limit", "2")]).await.json();
    let cursor = page["next_starting_after"].as_str().unwrap_or_default().to_owned();
    let last = &page["items"][1];
    assert_eq!(
        cursor,
        format!("{}&{}", last["timestamp_created"].as_str().unwrap_or(""), last["email"].as_str().unwrap_or(""))
    );
    // Some accounts share timestamp_created exactly; the composite cursor keeps them apart.
    let stamps: HashSet<&str> = ds.accounts.iter().filter_map(|a| a["timestamp_created"].as_str()).collect();
    assert!(stamps.len() < ds.accounts.len());
    // The connector must percent-encode the cursor; the log keeps the raw query.
    env.sim.clear_requests();
    env.get("/accounts", &[("limit", "2"), ("starting_after", &cursor)]).await;
    let raw = env.sim.requests()[0].query.clone().unwrap_or_default();
    assert!(raw.contains("%26") && raw.contains("%40"), "{raw}");
    // Legacy bare-timestamp cursor still works.
    let ts = last["timestamp_created"].as_str().unwrap_or_default();
    let r = env.get("/accounts", &[("limit", "100"), ("starting_after", ts)]).await;
    assert_eq!(r.status, 200);
    // Offset mode: sort_by + skip, no cursor.
    let r = env
        .get("/accounts", &[("sort_by", "email"), ("sort_order", "asc"), ("skip", "3"), ("limit", "4")])
        .await
        .json();
    let mut emails: Vec<&str> = ds.accounts.iter().filter_map(|a| a["email"].as_str()).collect();
    emails.sort();
    let got: Vec<&str> = r["items"].as_array().into_iter().flatten().filter_map(|a| a["email"].as_str()).collect();
    assert_eq!(got, emails[3..7].to_vec());
    assert!(r.get("next_starting_after").is_none());
}

#[tokio::test]
async fn emails_pages_sorted_filtered_and_complete() {
    let env = start(small()).await;
    let ds = env.sim.dataset();
    let all_asc = [("mode", "emode_all"), ("sort_order", "asc"), ("limit", "17")];
    let (asc, _) = env.all_get("/emails", &all_asc).await;
    assert_eq!(asc, ds.emails);
    assert_eq!(asc.len(), 150);
    let stamps: Vec<&str> = asc.iter().filter_map(|e| e["timestamp_created"].as_str()).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    // Several emails share a timestamp_created.
    assert!(stamps.windows(2).any(|w| w[0] == w[1]));
    // Default order is descending.
    let (desc, _) = env.all_get("/emails", &[("mode", "emode_all"), ("limit", "100")]).await;
    let mut rev = ds.emails.clone();
    rev.reverse();
    assert_eq!(desc, rev);
    // Without `mode`, only the focused tab.
    let (focused, _) = env.all_get("/emails", &[("sort_order", "asc"), ("limit", "100")]).await;
    let expected: Vec<Value> = ds.emails.iter().filter(|e| e["is_focused"] == json!(1)).cloned().collect();
    assert_eq!(focused, expected);
    assert!(focused.len() < asc.len());
    // min/max_timestamp_created (inclusive) with the cursor.
    let (lo, hi) = (stamps[40], stamps[90]);
    let (window, _) = env
        .all_get(
            "/emails",
            &[
                ("mode", "emode_all"),
                ("sort_order", "asc"),
                ("limit", "9"),
                ("min_timestamp_created", lo),
                ("max_timestamp_created", hi),
            ],
        )
        .await;
    let expected: Vec<Value> = ds
        .emails
        .iter()
        .filter(|e| e["timestamp_created"].as_str().is_some_and(|t| lo <= t && t <= hi))
        .cloned()
        .collect();
    assert_eq!(window, expected);
    // campaign_id filter.
    let c = ds.emails.iter().find_map(|e| e["campaign_id"].as_str()).unwrap_or_default().to_owned();
    let (by_c, _) = env
        .all_get("/emails", &[("mode", "emode_all"), ("sort_order", "asc"), ("limit", "100"), ("campaign_id", &c)])
        .await;
    let expected: Vec<Value> = ds.emails.iter().filter(|e| e["campaign_id"] == json!(c)).cloned().collect();
    assert_eq!(by_c, expected);
    // An unknown cursor is rejected.
    let r = env.get("/emails", &[("starting_after", "00000000-0000-7000-8000-000000000000")]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn analytics_match_dataset() {
    let env = start(small()).await;
    let ds = env.sim.dataset();
    let all = env.get("/campaigns/analytics", &[]).await.json();
    assert_eq!(all.as_array(), Some(&ds.campaign_analytics));
    for (i, c) in env.sim.campaign_ids().iter().enumerate() {
        let one = env.get("/campaigns/analytics", &[("id", c)]).await.json();
        assert_eq!(one, json!([ds.campaign_analytics[i]]));
        assert_eq!(one[0]["leads_count"], json!(60));
        let scope = Scope::Campaign(c.clone());
        let daily = env.get("/campaigns/analytics/daily", &[("campaign_id", c)]).await.json();
        assert_eq!(daily.as_array(), ds.daily.get(&scope));
        let steps = env.get("/campaigns/analytics/steps", &[("campaign_id", c)]).await.json();
        assert_eq!(steps.as_array(), ds.steps.get(&scope));
        let ov = env.get("/campaigns/analytics/overview", &[("id", c)]).await.json();
        assert_eq!(Some(&ov), ds.overview.get(&scope));
    }
    // `ids` repeated selects several; `campaign_id` is ignored by /campaigns/analytics.
    let cids = env.sim.campaign_ids();
    let two = env.get("/campaigns/analytics", &[("ids", &cids[0]), ("ids", &cids[2])]).await.json();
    assert_eq!(two, json!([ds.campaign_analytics[0], ds.campaign_analytics[2]]));
    let ignored = env.get("/campaigns/analytics", &[("campaign_id", &cids[0])]).await.json();
    assert_eq!(ignored.as_array().map(Vec::len), Some(cids.len()));
    // Workspace scope.
    let daily = env.get("/campaigns/analytics/daily", &[]).await.json();
    assert_eq!(daily.as_array(), ds.daily.get(&Scope::Workspace));
    let ov = env.get("/campaigns/analytics/overview", &[]).await.json();
    assert_eq!(Some(&ov), ds.overview.get(&Scope::Workspace));
    // Workspace daily rows are the per-campaign sums.
    let ws = &ds.daily[&Scope::Workspace];
    assert_eq!(ws.len(), 10);
    let last = ws.last().cloned().unwrap_or_default();
    assert_eq!(last["date"], json!("2026-03-10"));
    let sum: u64 = env
        .sim
        .campaign_ids()
        .iter()
        .filter_map(|c| ds.daily[&Scope::Campaign(c.clone())].iter().find(|d| d["date"] == last["date"]))
        .map(|d| d["sent"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(last["sent"].as_u64(), Some(sum));
    // Date range: start/end inclusive of whole days.
    let r =
        env.get("/campaigns/analytics/daily", &[("start_date", "2026-03-05"), ("end_date", "2026-03-07")]).await.json();
    let dates: Vec<&str> = r.as_array().into_iter().flatten().filter_map(|d| d["date"].as_str()).collect();
    assert_eq!(dates, vec!["2026-03-05", "2026-03-06", "2026-03-07"]);
    // Steps: numbered from 0, A/B variants, a null-step row.
    let steps: Vec<&Value> = ds.steps.values().flatten().collect();
    assert!(steps.iter().any(|s| s["step"] == json!("0") && s["variant"] == json!("1")));
    assert!(steps.iter().any(|s| s["step"].is_null() && s["variant"].is_null() && s["sent"] == json!(0)));
    assert!(!steps.iter().any(|s| s.get("opportunities").is_some()));
    let with_opps = env
        .get("/campaigns/analytics/steps", &[("campaign_id", &cids[0]), ("include_opportunities_count", "true")])
        .await
        .json();
    assert!(with_opps.as_array().is_some_and(|v| v.iter().all(|s| s["won"].is_u64() && s["meetings_booked"].is_u64())));
}

#[test]
fn generation_is_deterministic_per_seed() {
    let a = Simulator::new(small()).dataset();
    let b = Simulator::new(small()).dataset();
    assert_eq!(serde_json::to_value(&a).ok(), serde_json::to_value(&b).ok());
    let c = Simulator::new(SimConfig { seed: 12, ..small() }).dataset();
    assert_ne!(a.leads, c.leads);
}

#[test]
fn dataset_shows_real_world_deviations() {
    let ds = Simulator::new(SimConfig { campaigns: 12, ..small() }).dataset();
    // `{}` schedules, empty-string and ISO start dates, absent optional fields.
    assert!(ds.campaigns.iter().any(|c| c["campaign_schedule"] == json!({})));
    assert!(ds.campaigns.iter().any(|c| c["campaign_schedule"]["start_date"] == json!("")));
    assert!(ds.campaigns.iter().any(|c| c["campaign_schedule"]["start_date"].as_str().is_some_and(|s| s.len() > 10)));
    assert!(ds.campaigns.iter().any(|c| c.get("pl_value").is_none()));
    // Floats in `number` fields.
    assert!(ds.campaigns.iter().any(|c| c["pl_value"].is_f64()));
    assert!(ds.accounts.iter().any(|a| a["stat_warmup_score"].is_f64()));
    // Enum values outside the documented sets.
    assert!(ds.leads.iter().any(|l| l["lt_interest_status"].as_i64().is_some_and(|v| !(-4..=4).contains(&v))));
    // Leads without an email (the old collector could not store them).
    assert!(ds.leads.iter().any(|l| l.get("email").is_none()));
    // Every documented campaign status that the cycle reaches.
    let statuses: HashSet<i64> = ds.campaigns.iter().filter_map(|c| c["status"].as_i64()).collect();
    for s in [0, 1, 2, 3, 4, -1, -2, -99] {
        assert!(statuses.contains(&s), "status {s}");
    }
}
