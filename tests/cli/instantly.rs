//! The Instantly connector end to end: the `ferry` binary against the simulator.

use std::collections::BTreeSet;

use ferry_instantly::sim::{MutateSpec, Scope, SimConfig};
use serde_json::Value;

use crate::common::*;
use crate::simulator::*;

fn ids(items: &[Value], field: &str) -> BTreeSet<String> {
    items.iter().map(|i| i[field].as_str().unwrap().to_owned()).collect()
}

#[test]
fn tables_hold_the_dataset_reruns_are_unchanged_and_mutations_update_exactly_what_changed() {
    let (sim, s) = start(small(), "");
    let first = sync(&s, &[]);
    assert_eq!(first["status"], "ok", "{first}");
    let db = s.db("data/i.db");
    let d = sim.sim.dataset();

    // Every table holds exactly the simulator's dataset.
    assert_eq!(keys(&db, "SELECT instantly_campaign_id FROM instantly_campaigns_raw"), ids(&d.campaigns, "id"));
    assert_eq!(keys(&db, "SELECT instantly_lead_id FROM instantly_leads_raw"), ids(&d.leads, "id"));
    assert_eq!(keys(&db, "SELECT email FROM instantly_accounts_raw"), ids(&d.accounts, "email"));
    assert_eq!(keys(&db, "SELECT instantly_email_id FROM instantly_emails_raw"), ids(&d.emails, "id"));
    let daily: BTreeSet<String> = d
        .daily
        .iter()
        .flat_map(|(scope, rows)| rows.iter().map(move |r| format!("{scope}|{}", r["date"].as_str().unwrap())))
        .collect();
    assert_eq!(keys(&db, "SELECT scope || '|' || date FROM instantly_daily_analytics_raw"), daily);
    let step_key = |v: &Value| match v {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let steps: BTreeSet<String> = d
        .steps
        .iter()
        .filter(|(scope, _)| matches!(scope, Scope::Campaign(_)))
        .flat_map(|(scope, rows)| {
            rows.iter().map(move |r| format!("{scope}|{}|{}", step_key(&r["step"]), step_key(&r["variant"])))
        })
        .collect();
    assert_eq!(
        keys(&db, "SELECT instantly_campaign_id || '|' || step || '|' || variant FROM instantly_steps_raw"),
        steps
    );
    assert!(steps.iter().any(|k| k.contains("|none|")), "a null-step row is kept");
    let scopes: BTreeSet<String> = d.overview.keys().map(|s| s.to_string()).collect();
    assert_eq!(keys(&db, "SELECT scope FROM instantly_overview_raw"), scopes);

    // Typed columns are populated.
    for (table, col) in [
        ("instantly_campaigns_raw", "campaign_name"),
        ("instantly_campaigns_raw", "leads_count"),
        ("instantly_leads_raw", "timestamp_created"),
        ("instantly_leads_raw", "lead_status"),
        ("instantly_accounts_raw", "warmup_status"),
        ("instantly_emails_raw", "timestamp_created"),
        ("instantly_daily_analytics_raw", "sent"),
        ("instantly_steps_raw", "emails_sent"),
        ("instantly_overview_raw", "emails_sent_count"),
    ] {
        assert_eq!(count(&db, &format!("SELECT count(*) FROM {table} WHERE {col} IS NULL")), 0, "{table}.{col}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM instantly_leads_raw WHERE instantly_campaign_id IS NULL"), 30);

    // A second run with no changes: every row unchanged, none rewritten.
    let before = table_rows(&db, "instantly_leads_raw");
    let second = sync(&s, &[]);
    for (name, st) in second["streams"].as_object().unwrap() {
        assert_eq!(st["inserted"], 0, "{name}: {st}");
        assert_eq!(st["updated"], 0, "{name}: {st}");
        assert_eq!(st["failed"], 0, "{name}: {st}");
    }
    assert_eq!(table_rows(&db, "instantly_leads_raw"), before);
    let b2 = second["batch_id"].as_str().unwrap();
    assert_eq!(count(&db, &format!("SELECT count(*) FROM instantly_leads_raw WHERE sync_batch_id = '{b2}'")), 0);

    // Mutate: new and changed leads, campaigns, emails, revised analytics, and fields
    // dropped from later responses.
    let report = sim.sim.mutate(MutateSpec { remove_fields: 4, ..MutateSpec::default() });
    let third = sync(&s, &[]);
    let b3 = third["batch_id"].as_str().unwrap().to_owned();
    let changed = |table: &str, key: &str| {
        keys(&db, &format!("SELECT {key} FROM {table} WHERE sync_batch_id = '{b3}' AND first_sync_batch_id != '{b3}'"))
    };
    let inserted =
        |table: &str, key: &str| keys(&db, &format!("SELECT {key} FROM {table} WHERE first_sync_batch_id = '{b3}'"));
    let new_leads: BTreeSet<String> = report.new_lead_ids.iter().chain(&report.new_list_lead_ids).cloned().collect();
    assert_eq!(inserted("instantly_leads_raw", "instantly_lead_id"), new_leads);
    assert_eq!(changed("instantly_leads_raw", "instantly_lead_id"), report.updated_lead_ids.iter().cloned().collect());
    assert_eq!(inserted("instantly_emails_raw", "instantly_email_id"), report.new_email_ids.iter().cloned().collect());
    assert!(changed("instantly_emails_raw", "instantly_email_id").is_empty());
    let campaigns: BTreeSet<String> =
        report.updated_campaign_ids.iter().chain(&report.analytics_changed_campaign_ids).cloned().collect();
    assert_eq!(changed("instantly_campaigns_raw", "instantly_campaign_id"), campaigns);
    let revised: BTreeSet<String> =
        report.revised_daily.iter().map(|k| format!("{}|{}", k.campaign_id, k.date)).collect();
    let daily_changed: BTreeSet<String> = keys(
        &db,
        &format!(
            "SELECT scope || '|' || date FROM instantly_daily_analytics_raw WHERE sync_batch_id = '{b3}' AND first_sync_batch_id != '{b3}' AND scope != 'workspace'"
        ),
    );
    assert_eq!(daily_changed, revised);
    assert_eq!(third["streams"]["leads"]["updated"].as_u64().unwrap() as usize, report.updated_lead_ids.len());

    // Fields the later responses no longer carry survive in raw_json.
    assert!(!report.removed_fields.is_empty());
    for f in &report.removed_fields {
        let (table, key) = match f.stream.as_str() {
            "leads" => ("instantly_leads_raw", "instantly_lead_id"),
            "campaigns" => ("instantly_campaigns_raw", "instantly_campaign_id"),
            _ => ("instantly_accounts_raw", "email"),
        };
        let present = count(
            &db,
            &format!(
                "SELECT count(*) FROM {table} WHERE {key} = '{}' AND json_type(raw_json, '$.{}') IS NOT NULL",
                f.id, f.field
            ),
        );
        assert_eq!(present, 1, "{f:?} lost");
    }
}

#[test]
fn requests_use_the_documented_parameters_and_never_leak_the_key() {
    let (sim, s) = start(SimConfig { accounts: 250, ..small() }, "");
    let o = s.cmd(&["sync", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    let log = sim.sim.requests();
    assert!(!log.is_empty());
    for r in &log {
        let q = r.query.clone().unwrap_or_default();
        assert!(
            r.user_agent.as_deref().is_some_and(|ua| ua.starts_with("ferry/")),
            "{} {}: no User-Agent",
            r.method,
            r.path
        );
        assert!(r.auth_valid, "{} {}", r.method, r.path);
        assert!(!q.contains(KEY) && !r.path.contains(KEY), "key in URL: {} {q}", r.path);
        let list = ["/api/v2/campaigns", "/api/v2/accounts", "/api/v2/emails"].contains(&r.path.as_str());
        if list {
            assert!(q.split('&').any(|p| p == "limit=100") || q == "limit=1", "{} without limit=100: {q}", r.path);
        }
        match r.path.as_str() {
            "/api/v2/leads/list" => {
                let body = r.body.as_ref().unwrap();
                assert_eq!(body["limit"], 100);
                assert!(body.get("campaign").is_some() || body["in_campaign"] == false, "{body}");
                assert!(body.get("campaign_id").is_none());
            }
            "/api/v2/campaigns/analytics/daily" | "/api/v2/campaigns/analytics/steps" => {
                assert!(!q.split('&').any(|p| p.starts_with("id=") || p.starts_with("ids=")), "{q}");
            }
            "/api/v2/campaigns/analytics/overview" | "/api/v2/campaigns/analytics" => {
                assert!(!q.contains("campaign_id="), "{} must use id/ids: {q}", r.path);
            }
            "/api/v2/emails" => {
                assert!(q.contains("mode=emode_all") && q.contains("sort_order=asc"), "{q}");
            }
            _ => {}
        }
    }
    assert!(
        log.iter().any(|r| r.path == "/api/v2/campaigns/analytics/steps"
            && r.query.as_deref().unwrap_or("").contains("campaign_id="))
    );
    assert!(
        log.iter()
            .any(|r| r.path == "/api/v2/campaigns/analytics/overview"
                && r.query.as_deref().unwrap_or("").contains("id="))
    );
    // 250 accounts: the second and third pages send the composite cursor, percent-encoded.
    let cursors: Vec<String> = log
        .iter()
        .filter(|r| r.path == "/api/v2/accounts")
        .filter_map(|r| r.query.clone())
        .filter(|q| q.contains("starting_after="))
        .collect();
    assert_eq!(cursors.len(), 2, "{cursors:?}");
    for q in &cursors {
        let v = q.split('&').find_map(|p| p.strip_prefix("starting_after=")).unwrap();
        assert!(v.contains("%26") && v.contains("%40") && !v.contains('@'), "cursor not encoded: {v}");
    }

    // The key is in no tier, table or output.
    let (out, err) = text(&o);
    let mut haystacks = vec![out, err];
    for dir in ["logs", "logs/errors"] {
        // The errors file exists only when there were errors.
        let Ok(entries) = std::fs::read_dir(s.path(dir)) else { continue };
        for e in entries.flatten() {
            if e.path().is_file() {
                haystacks.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    let db = s.db("data/i.db");
    for t in keys(&db, "SELECT name FROM sqlite_master WHERE type = 'table'") {
        let sql = format!("SELECT group_concat(CAST(t.rowid AS TEXT) || json_quote(raw_json)) FROM \"{t}\" t");
        let dump: Option<String> = if t.starts_with("instantly_") {
            db.query_row(&sql, [], |r| r.get(0)).unwrap()
        } else {
            let cols = table_rows(&db, &t);
            Some(cols.join("\n"))
        };
        haystacks.push(dump.unwrap_or_default());
    }
    for h in &haystacks {
        assert!(!h.contains(KEY), "API key leaked");
    }
}

#[test]
fn check_reports_a_wrong_key_and_accepts_the_right_one() {
    let (sim, s) = start(small(), "");
    let o = s.cmd(&["check", "p.toml"]).env("SIM_INSTANTLY_KEY", "wrong-key-123456").output().unwrap();
    expect_code(&o, 1);
    let (_, err) = text(&o);
    assert!(err.contains("401") && err.contains("invalid or revoked"), "{err}");
    assert!(!err.contains("wrong-key-123456"));
    let o = s.cmd(&["check", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    assert!(text(&o).0.starts_with("ok:"));
    // 401 is not retried.
    assert_eq!(sim.sim.stats().by_status.get(&401).copied().unwrap_or(0), 1);
}

#[test]
fn a_missing_key_is_a_config_error() {
    let s = Scratch::new();
    let o = s.cmd(&["sync", "instantly"]).env_remove("INSTANTLY_API_KEY").output().unwrap();
    expect_code(&o, 2);
    assert!(text(&o).1.contains("INSTANTLY_API_KEY"), "{}", text(&o).1);
}
