//! (d) A mutation changes exactly what its report says.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use ferry_instantly::sim::{Dataset, MutateSpec, Scope, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::common::{small, start};

fn by_key(items: &[Value], key: &str) -> BTreeMap<String, Value> {
    items.iter().map(|i| (i[key].as_str().unwrap_or_default().to_owned(), i.clone())).collect()
}

fn added(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> BTreeSet<String> {
    after.keys().filter(|k| !before.contains_key(*k)).cloned().collect()
}

fn changed(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> BTreeSet<String> {
    before.iter().filter(|(k, v)| after.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect()
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn daily_rows(ds: &Dataset) -> BTreeMap<(String, String), Value> {
    ds.daily
        .iter()
        .filter_map(|(scope, rows)| match scope {
            Scope::Campaign(id) => Some((id, rows)),
            Scope::Workspace => None,
        })
        .flat_map(|(id, rows)| {
            rows.iter().map(move |r| ((id.clone(), r["date"].as_str().unwrap_or("").to_owned()), r.clone()))
        })
        .collect()
}

#[test]
fn default_mutation_changes_exactly_what_it_reports() {
    // 20:00 UTC: the default 6 hours cross midnight.
    let cfg = SimConfig { now: Utc.with_ymd_and_hms(2026, 3, 10, 20, 0, 0).single(), ..small() };
    let sim = Simulator::new(cfg);
    let before = sim.dataset();
    let spec = MutateSpec {
        update_emails: 3,
        update_accounts: 2,
        remove_fields: 6,
        emails_at_last_timestamp: 2,
        ..MutateSpec::default()
    };
    let r = sim.mutate(spec);
    let after = sim.dataset();

    assert_eq!(r.clock_after - r.clock_before, chrono::Duration::hours(6));
    assert_eq!(after.now, r.clock_after);
    assert_eq!(sim.now(), r.clock_after);

    // Leads.
    let (lb, la) = (by_key(&before.leads, "id"), by_key(&after.leads, "id"));
    let mut new_ids = set(&r.new_lead_ids);
    new_ids.extend(r.new_list_lead_ids.iter().cloned());
    assert_eq!(r.new_lead_ids.len(), 20);
    assert_eq!(r.new_list_lead_ids.len(), 5);
    assert_eq!(added(&lb, &la), new_ids);
    assert!(r.new_list_lead_ids.iter().all(|id| la[id].get("campaign").is_none()));
    assert!(r.new_lead_ids.iter().all(|id| la[id]["campaign"].is_string()));
    let removed_leads: BTreeSet<String> =
        r.removed_fields.iter().filter(|f| f.stream == "leads").map(|f| f.id.clone()).collect();
    let mut expect = set(&r.updated_lead_ids);
    expect.extend(removed_leads);
    assert_eq!(r.updated_lead_ids.len(), 10);
    assert_eq!(changed(&lb, &la), expect);
    for id in &r.updated_lead_ids {
        let moved = la[id]["timestamp_updated"] != lb[id]["timestamp_updated"];
        assert_eq!(moved, !r.engagement_only_lead_ids.contains(id), "lead {id}");
    }
    for f in r.removed_fields.iter().filter(|f| f.stream == "leads") {
        assert!(lb[&f.id].get(&f.field).is_some() && la[&f.id].get(&f.field).is_none(), "{f:?}");
        if !r.updated_lead_ids.contains(&f.id) {
            assert_eq!(lb[&f.id]["timestamp_updated"], la[&f.id]["timestamp_updated"]);
        }
    }

    // Campaigns.
    let (cb, ca) = (by_key(&before.campaigns, "id"), by_key(&after.campaigns, "id"));
    let mut expect = set(&r.updated_campaign_ids);
    expect.extend(r.removed_fields.iter().filter(|f| f.stream == "campaigns").map(|f| f.id.clone()));
    assert_eq!(r.updated_campaign_ids.len(), 1);
    assert_eq!(changed(&cb, &ca), expect);
    for id in &r.updated_campaign_ids {
        assert_ne!(cb[id]["status"], ca[id]["status"]);
        assert!(ca[id]["timestamp_updated"].as_str() > cb[id]["timestamp_updated"].as_str());
    }

    // Accounts.
    let (ab, aa) = (by_key(&before.accounts, "email"), by_key(&after.accounts, "email"));
    let mut expect = set(&r.updated_account_emails);
    expect.extend(r.removed_fields.iter().filter(|f| f.stream == "accounts").map(|f| f.id.clone()));
    assert_eq!(changed(&ab, &aa), expect);
    assert_eq!(r.removed_fields.len(), 6);

    // Emails: new ones after the previous latest, two exactly at it.
    let (eb, ea) = (by_key(&before.emails, "id"), by_key(&after.emails, "id"));
    assert_eq!(added(&eb, &ea), set(&r.new_email_ids));
    assert_eq!(r.new_email_ids.len(), 12);
    assert_eq!(changed(&eb, &ea), set(&r.updated_email_ids));
    let latest = before.emails.last().and_then(|e| e["timestamp_created"].as_str()).unwrap_or_default();
    for id in &r.new_email_ids {
        let t = ea[id]["timestamp_created"].as_str().unwrap_or_default();
        if r.emails_at_last_timestamp_ids.contains(id) {
            assert_eq!(t, latest);
        } else {
            assert!(t > latest, "{t} <= {latest}");
        }
    }

    // Daily rows: one new day per non-draft campaign, revisions within the last 3 days.
    let (db, da) = (daily_rows(&before), daily_rows(&after));
    let new_keys: BTreeSet<(String, String)> = da.keys().filter(|k| !db.contains_key(*k)).cloned().collect();
    let reported: BTreeSet<(String, String)> =
        r.new_daily.iter().map(|k| (k.campaign_id.clone(), k.date.to_string())).collect();
    assert_eq!(new_keys, reported);
    assert!(!reported.is_empty() && reported.iter().all(|(_, d)| d == "2026-03-11"));
    let revised: BTreeSet<(String, String)> =
        db.iter().filter(|(k, v)| da.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
    let reported: BTreeSet<(String, String)> =
        r.revised_daily.iter().map(|k| (k.campaign_id.clone(), k.date.to_string())).collect();
    assert_eq!(revised, reported);
    assert_eq!(revised.len(), 3);
    assert!(revised.iter().all(|(_, d)| d.as_str() >= "2026-03-08"));

    // Analytics follow.
    let (xb, xa) =
        (by_key(&before.campaign_analytics, "campaign_id"), by_key(&after.campaign_analytics, "campaign_id"));
    let mut moved = changed(&xb, &xa);
    for id in sim.campaign_ids() {
        let scope = Scope::Campaign(id.clone());
        if before.steps.get(&scope) != after.steps.get(&scope)
            || before.overview.get(&scope) != after.overview.get(&scope)
        {
            moved.insert(id);
        }
    }
    assert_eq!(moved, set(&r.analytics_changed_campaign_ids));
    assert!(
        set(&r.analytics_changed_campaign_ids)
            .is_superset(&r.revised_daily.iter().map(|k| k.campaign_id.clone()).collect())
    );
    let total = |ds: &Dataset| ds.campaign_analytics.iter().filter_map(|a| a["leads_count"].as_u64()).sum::<u64>();
    assert_eq!(total(&after), total(&before) + 20);
}

#[test]
fn nothing_changes_with_an_empty_spec_and_clock_is_capped() {
    let sim = Simulator::new(small());
    let before = serde_json::to_value(sim.dataset()).ok();
    let r = sim.mutate(MutateSpec::none());
    assert_eq!(serde_json::to_value(sim.dataset()).ok(), before);
    assert_eq!(r.clock_before, r.clock_after);
    assert!(r.new_lead_ids.is_empty() && r.revised_daily.is_empty());

    let r = sim.mutate(MutateSpec { advance_secs: 10 * 365 * 86_400, ..MutateSpec::none() });
    assert!(r.clock_after <= Utc::now() + chrono::Duration::days(1) + chrono::Duration::seconds(5));
}

#[tokio::test]
async fn mutation_during_paging_is_visible_to_later_pages() {
    let env = start(small()).await;
    let before = env.sim.dataset().emails.len();
    // Emails arrive while the connector is on its second page.
    env.sim.on_request_mutate("/emails", 2, MutateSpec { new_emails: 7, advance_secs: 60, ..MutateSpec::none() });
    let (items, _) = env.all_get("/emails", &[("mode", "emode_all"), ("sort_order", "asc"), ("limit", "50")]).await;
    assert_eq!(items.len(), before + 7);
    assert_eq!(items, env.sim.dataset().emails);
    assert_eq!(env.sim.stats().mutations, 1);

    // Leads added to a campaign while paging it (keyset on id: new v7 ids come last).
    let c = env.sim.campaign_ids()[0].clone();
    let spec = MutateSpec { new_leads: 12, ..MutateSpec::none() };
    env.sim.on_request_mutate("/api/v2/leads/list", 3, spec);
    let (leads, _) = env.all_leads(&json!({"campaign": c, "limit": 25})).await;
    let expected: Vec<Value> = env.sim.dataset().leads_of(Some(&c)).into_iter().cloned().collect();
    assert_eq!(leads, expected);
    assert!(leads.len() > 60);
}

#[tokio::test]
async fn emails_at_last_timestamp_share_it_exactly() {
    let env = start(small()).await;
    let latest = env.sim.dataset().emails.last().and_then(|e| e["timestamp_created"].as_str().map(str::to_owned));
    let r = env.sim.mutate(MutateSpec { emails_at_last_timestamp: 3, ..MutateSpec::none() });
    assert_eq!(r.emails_at_last_timestamp_ids.len(), 3);
    let latest = latest.unwrap_or_default();
    let (items, _) = env
        .all_get(
            "/emails",
            &[("mode", "emode_all"), ("sort_order", "asc"), ("limit", "100"), ("min_timestamp_created", &latest)],
        )
        .await;
    let ids: BTreeSet<String> = items.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    assert!(r.emails_at_last_timestamp_ids.iter().all(|id| ids.contains(id)));
    assert!(items.iter().all(|e| e["timestamp_created"] == json!(latest)));
}
