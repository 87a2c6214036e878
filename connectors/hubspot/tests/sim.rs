//! Tests of the HubSpot CRM v3 simulator over real HTTP on 127.0.0.1.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use ferry_hubspot::sim::{Fault, MutateSpec, ObjectType, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

const TOKEN: &str = "hs-sim-token";

fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
}

async fn start(cfg: SimConfig) -> (Simulator, SimHandle, reqwest::Client) {
    let sim = Simulator::new(SimConfig { now: Some(fixed_now()), ..cfg });
    let handle = sim.serve(0).await.unwrap();
    (sim, handle, reqwest::Client::new())
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn post(c: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = c.post(url).bearer_auth(TOKEN).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn ids(results: &Value) -> Vec<String> {
    results.as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect()
}

/// Every page of a list endpoint, following `paging.next.after`.
async fn list_all(c: &reqwest::Client, base: &str, t: &str, extra: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/crm/v3/objects/{t}?limit=100{extra}");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let (status, body) = get(c, &url).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("total").is_none());
        out.extend(body["results"].as_array().unwrap().iter().cloned());
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn list_paging_returns_all_objects() {
    let (sim, h, c) = start(SimConfig::default()).await;
    let data = sim.dataset();
    for t in ObjectType::ALL {
        let got = list_all(&c, &h.base_url(), t.as_str(), "").await;
        let got_ids: Vec<String> = got.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(got_ids, data.ids(t));
        let o = &got[0];
        assert_eq!(o["archived"], false);
        assert_eq!(o["properties"]["hs_object_id"], o["id"]);
        assert_eq!(o["properties"][t.modified_property()], o["updatedAt"]);
        assert!(o["createdAt"].as_str().unwrap().ends_with('Z'));
        assert!(o["properties"].as_object().unwrap().values().all(|v| v.is_string() || v.is_null()));
    }
    assert_eq!(data.objects.contacts.len(), 300);
    assert_eq!(data.objects.companies.len(), 80);
    assert_eq!(data.objects.deals.len(), 120);
    // Many objects share one modification time.
    let times: BTreeSet<&str> = data.objects.contacts.iter().map(|o| o["updatedAt"].as_str().unwrap()).collect();
    assert!(times.len() <= 75, "{} distinct times", times.len());

    // `properties` selects (unknown names ignored, the key ones always present).
    let (_, body) = get(&c, &format!("{}/crm/v3/objects/deals?limit=2&properties=amount,nope", h.base_url())).await;
    let props = body["results"][0]["properties"].as_object().unwrap();
    let keys: BTreeSet<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["amount", "createdate", "hs_lastmodifieddate", "hs_object_id"]));
    // Default limit 10, over-limit rejected, unknown type rejected.
    let (_, body) = get(&c, &format!("{}/crm/v3/objects/contacts", h.base_url())).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 10);
    let (status, body) = get(&c, &format!("{}/crm/v3/objects/contacts?limit=101", h.base_url())).await;
    assert_eq!((status, body["category"].as_str()), (400, Some("VALIDATION_ERROR")));
    let (status, _) = get(&c, &format!("{}/crm/v3/objects/widgets", h.base_url())).await;
    assert_eq!(status, 400);

    // Properties and owners.
    let (status, body) = get(&c, &format!("{}/crm/v3/properties/contacts", h.base_url())).await;
    assert_eq!(status, 200);
    assert!(
        body["results"].as_array().unwrap().iter().any(|p| p["name"] == "lastmodifieddate" && p["type"] == "datetime")
    );
    let (_, p1) = get(&c, &format!("{}/crm/v3/owners?limit=4", h.base_url())).await;
    let after = p1["paging"]["next"]["after"].as_str().unwrap();
    let (_, p2) = get(&c, &format!("{}/crm/v3/owners?limit=4&after={after}", h.base_url())).await;
    assert!(p2.get("paging").is_none());
    let mut all = ids(&p1["results"]);
    all.extend(ids(&p2["results"]));
    assert_eq!(all, data.owners.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>());
    assert!(p1["results"][0]["email"].is_string() && p1["results"][0]["firstName"].is_string());
    h.shutdown().await;
}

#[tokio::test]
async fn search_gte_sorted_ascending_pages_through() {
    let (sim, h, c) = start(SimConfig::default()).await;
    let data = sim.dataset();
    let mut times: Vec<&str> = data.objects.contacts.iter().map(|o| o["updatedAt"].as_str().unwrap()).collect();
    times.sort_unstable();
    let mid = DateTime::parse_from_rfc3339(times[times.len() / 2]).unwrap().timestamp_millis();
    let mut expected: Vec<(i64, u64)> = data
        .objects
        .contacts
        .iter()
        .map(|o| {
            let t = DateTime::parse_from_rfc3339(o["updatedAt"].as_str().unwrap()).unwrap().timestamp_millis();
            (t, o["id"].as_str().unwrap().parse().unwrap())
        })
        .filter(|(t, _)| *t >= mid)
        .collect();
    expected.sort_unstable();
    let expected: Vec<String> = expected.iter().map(|(_, id)| id.to_string()).collect();

    let url = format!("{}/crm/v3/objects/contacts/search", h.base_url());
    let mut got = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": mid.to_string()}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["email", "lastmodifieddate"],
            "limit": 40,
            "after": after,
        });
        let (status, page) = post(&c, &url, &body).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"].as_u64().unwrap() as usize, expected.len());
        got.extend(ids(&page["results"]));
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = a.to_owned(),
            None => break,
        }
    }
    assert_eq!(got, expected);

    // Keyset tie-breaking on hs_object_id: GT the 5th id within one timestamp.
    let first = &expected[4];
    let body = json!({
        "filterGroups": [{"filters": [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": mid.to_string()},
            {"propertyName": "hs_object_id", "operator": "GT", "value": first},
        ]}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": 200,
    });
    let (status, page) = post(&c, &url, &body).await;
    assert_eq!(status, 200);
    let n: u64 = first.parse().unwrap();
    let want = expected.iter().filter(|id| id.parse::<u64>().unwrap() > n).count();
    assert_eq!(page["total"].as_u64().unwrap() as usize, want);
    // ISO values are accepted too; unknown properties are a 400.
    let iso = json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
        "value": DateTime::<Utc>::from_timestamp_millis(mid).unwrap().to_rfc3339()}]}]});
    let (_, page) = post(&c, &url, &iso).await;
    assert_eq!(page["total"].as_u64().unwrap() as usize, expected.len());
    let bad = json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate_x", "operator": "GTE", "value": "0"}]}]});
    let (status, body) = post(&c, &url, &bad).await;
    assert_eq!((status, body["category"].as_str()), (400, Some("VALIDATION_ERROR")));
    h.shutdown().await;
}

#[tokio::test]
async fn search_past_ten_thousand_is_a_400() {
    let t0 = std::time::Instant::now();
    let cfg =
        SimConfig { contacts: 10_500, companies: 5, deals: 5, distinct_modified_times: 7, ..SimConfig::default() };
    let (_sim, h, c) = start(cfg).await;
    assert!(t0.elapsed().as_secs() < 10);
    let url = format!("{}/crm/v3/objects/contacts/search", h.base_url());
    let query = |after: usize, limit: usize| {
        json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "limit": limit,
            "after": after.to_string(),
        })
    };
    let (status, page) = post(&c, &url, &query(9_800, 200)).await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 10_500);
    assert_eq!(page["paging"]["next"]["after"], "10000");
    let (status, body) = post(&c, &url, &query(10_000, 200)).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(body["correlationId"].as_str().unwrap().len() == 36);
    assert!(body["message"].is_string());
    let (status, _) = post(&c, &url, &query(9_900, 200)).await;
    assert_eq!(status, 400);
    h.shutdown().await;
}

#[tokio::test]
async fn mutate_reports_match_dataset_and_archived_listing() {
    let (sim, h, c) = start(SimConfig::default()).await;
    let before = sim.dataset();
    let report = sim.mutate(MutateSpec {
        advance_secs: 3600,
        new_contacts: 4,
        update_contacts: 5,
        archive_contacts: 3,
        same_timestamp_contacts: 20,
        new_deals: 2,
        archive_companies: 2,
        ..MutateSpec::default()
    });
    assert_eq!(report.new_ids.contacts.len(), 4);
    assert_eq!(report.updated_ids.contacts.len(), 25);
    assert_eq!(report.archived_ids.contacts.len(), 3);
    assert_eq!(report.new_ids.deals.len(), 2);
    assert_eq!(report.archived_ids.companies.len(), 2);
    let after = sim.dataset();
    assert_eq!(after.now, report.now);
    assert_eq!(after.archived_ids.contacts, report.archived_ids.contacts);
    assert_eq!(after.objects.contacts.len(), before.objects.contacts.len() + 4 - 3);
    let live: BTreeSet<String> = after.ids(ObjectType::Contacts).into_iter().collect();
    assert!(report.new_ids.contacts.iter().all(|id| live.contains(id)));
    assert!(report.archived_ids.contacts.iter().all(|id| !live.contains(id)));
    let same = report.same_timestamp.unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let at_same = after.objects.contacts.iter().filter(|o| o["updatedAt"] == same.as_str()).count();
    assert_eq!(at_same, 20);
    for id in &report.updated_ids.contacts {
        let o = after.objects.contacts.iter().find(|o| o["id"] == id.as_str()).unwrap();
        assert!(o["updatedAt"].as_str().unwrap() >= same.as_str());
    }

    // Archived listing returns only the archived ones, flagged.
    let archived = list_all(&c, &h.base_url(), "contacts", "&archived=true").await;
    assert_eq!(ids(&Value::Array(archived.clone())), report.archived_ids.contacts);
    assert!(archived.iter().all(|o| o["archived"] == true && o["archivedAt"].is_string()));
    let live_list = list_all(&c, &h.base_url(), "contacts", "").await;
    assert_eq!(ids(&Value::Array(live_list)), after.ids(ObjectType::Contacts));
    // Archived objects never match a search.
    let url = format!("{}/crm/v3/objects/contacts/search", h.base_url());
    let body = json!({"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "EQ",
        "value": report.archived_ids.contacts[0]}]}]});
    let (_, page) = post(&c, &url, &body).await;
    assert_eq!(page["total"], 0);
    h.shutdown().await;
}

#[tokio::test]
async fn archived_listing_answers_default_properties_unless_asked_for_more() {
    let (sim, h, c) = start(SimConfig { custom_properties: 120, deals: 20, ..SimConfig::default() }).await;
    let report = sim.mutate(MutateSpec { archive_deals: 3, ..MutateSpec::default() });
    let (status, defs) = get(&c, &format!("{}/crm/v3/properties/deals", h.base_url())).await;
    assert_eq!(status, 200);
    let names: Vec<String> =
        defs["results"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), 9 + 120);
    assert!(names.contains(&"custom_120".to_owned()));

    // Without `properties`: HubSpot's 8 default deal properties, archived or not.
    let bare = list_all(&c, &h.base_url(), "deals", "&archived=true").await;
    assert_eq!(ids(&Value::Array(bare.clone())), report.archived_ids.deals);
    for o in &bare {
        let keys: BTreeSet<&str> = o["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        let defaults = [
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ];
        assert_eq!(keys, defaults.into_iter().collect(), "{o}");
    }
    // With every name: every property, as the dataset holds them.
    let all = list_all(&c, &h.base_url(), "deals", &format!("&archived=true&properties={}", names.join(","))).await;
    let d = sim.dataset();
    assert_eq!(all, d.archived.deals);
    assert_eq!(d.archived.deals[0]["properties"].as_object().unwrap().len(), 129);
    assert_eq!(
        d.archived.deals[0]["properties"]["custom_007"],
        format!("deals {} value 7", report.archived_ids.deals[0])
    );
    h.shutdown().await;
}

#[tokio::test]
async fn auth_limits_faults_and_log() {
    let cfg = SimConfig { rate_limit_per_10s: Some(3), search_per_sec: Some(1), ..SimConfig::default() };
    let (sim, h, c) = start(cfg).await;
    let url = format!("{}/crm/v3/objects/contacts?limit=1", h.base_url());
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("x-hubspot-correlation-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["correlationId"].is_string());
    let r = c.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    for _ in 0..3 {
        assert_eq!(get(&c, &url).await.0, 200);
    }
    let (status, body) = get(&c, &url).await;
    assert_eq!((status, body["policyName"].as_str()), (429, Some("TEN_SECONDLY_ROLLING")));
    let search = format!("{}/crm/v3/objects/deals/search", h.base_url());
    assert_eq!(post(&c, &search, &json!({})).await.0, 200);
    let (status, body) = post(&c, &search, &json!({})).await;
    assert_eq!((status, body["policyName"].as_str()), (429, Some("SECONDLY")));

    sim.inject(Fault::status(503).on("/owners").times(2));
    sim.inject(Fault::malformed().on("/properties"));
    let owners = format!("{}/crm/v3/owners", h.base_url());
    let s1 = c.get(&owners).bearer_auth(TOKEN).send().await.unwrap().status().as_u16();
    let s2 = c.get(&owners).bearer_auth(TOKEN).send().await.unwrap().status().as_u16();
    assert_eq!((s1, s2), (503, 503));
    let stats = sim.stats();
    assert_eq!(stats.by_status[&401], 2);
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.faults_applied, 2);
    let log = sim.requests();
    assert_eq!(log.len() as u64, stats.total_requests);
    assert!(!log[0].auth_ok && log[2].auth_ok);
    assert_eq!(log[2].query.as_deref(), Some("limit=1"));
    assert!(log.iter().any(|r| r.method == "POST" && r.body == Some(json!({}))));
    h.shutdown().await;

    // The malformed fault cuts the body (fresh simulator without limits).
    let (sim, h, c) = start(SimConfig::default()).await;
    sim.inject(Fault::malformed().on("/properties"));
    let r = c.get(format!("{}/crm/v3/properties/deals", h.base_url())).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    h.shutdown().await;
}
