//! Data that changes between (and during) syncs: the clock moves, leads and
//! emails arrive, statuses change, analytics of recent days get revised,
//! optional fields disappear. Every change is listed in the report.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::analytics::DateRange;
use super::data::{Counters, NO_INTEREST, NONE, Store, status_slot};
use super::render::LEAD_OPTIONAL;
use super::util::{DAY_MS, date_of, ts, uuid_str};

/// What one mutation does. Every field is optional in JSON
/// (`POST /__sim/mutate`); missing fields take the [`Default`] values.
/// [`MutateSpec::none`] changes nothing, for building targeted specs:
/// `MutateSpec { new_emails: 5, ..MutateSpec::none() }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MutateSpec {
    /// Seconds to move the simulator clock forward (default 6 h). The clock
    /// never passes the real time plus one day.
    pub advance_secs: u64,
    /// New leads spread over the non-draft campaigns (default 20).
    pub new_leads: usize,
    /// New leads in no campaign (default 5).
    pub new_list_leads: usize,
    /// Existing leads changed (default 10): a status or interest change
    /// (advances `timestamp_updated`), or a new open (which, as in the real
    /// API, does not).
    pub update_leads: usize,
    /// Existing campaigns whose status changes (default 1; advances `timestamp_updated`).
    pub update_campaigns: usize,
    /// New emails with `timestamp_created` after the previous latest one (default 10).
    pub new_emails: usize,
    /// New emails whose `timestamp_created` equals the current latest email's
    /// exactly (default 0).
    pub emails_at_last_timestamp: usize,
    /// Existing emails whose read/interest flags change (default 0).
    pub update_emails: usize,
    /// Existing accounts whose status changes (default 0).
    pub update_accounts: usize,
    /// Existing daily analytics rows revised upward (default 3) ...
    pub revise_daily_rows: usize,
    /// ... chosen among the last this many days before today, and today (default 3).
    pub revise_days_back: u32,
    /// Optional fields removed from leads, campaigns and accounts (default 0),
    /// without touching `timestamp_updated`.
    pub remove_fields: usize,
}

impl Default for MutateSpec {
    fn default() -> Self {
        MutateSpec {
            advance_secs: 6 * 3600,
            new_leads: 20,
            new_list_leads: 5,
            update_leads: 10,
            update_campaigns: 1,
            new_emails: 10,
            emails_at_last_timestamp: 0,
            update_emails: 0,
            update_accounts: 0,
            revise_daily_rows: 3,
            revise_days_back: 3,
            remove_fields: 0,
        }
    }
}

impl MutateSpec {
    /// A spec that changes nothing and leaves the clock where it is.
    pub fn none() -> Self {
        MutateSpec {
            advance_secs: 0,
            new_leads: 0,
            new_list_leads: 0,
            update_leads: 0,
            update_campaigns: 0,
            new_emails: 0,
            emails_at_last_timestamp: 0,
            update_emails: 0,
            update_accounts: 0,
            revise_daily_rows: 0,
            revise_days_back: 3,
            remove_fields: 0,
        }
    }
}

/// A daily analytics row of one campaign. The workspace-wide row of the same
/// date changes with it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DailyKey {
    /// The campaign's id.
    pub campaign_id: String,
    /// The row's date.
    pub date: NaiveDate,
}

/// An optional field removed from an item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedField {
    /// `leads`, `campaigns` or `accounts`.
    pub stream: String,
    /// The item's key: lead or campaign id, account email.
    pub id: String,
    /// The removed key.
    pub field: String,
}

/// What a mutation changed. Ids are sorted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MutateReport {
    /// The simulator clock before the mutation.
    pub clock_before: DateTime<Utc>,
    /// The simulator clock after the mutation.
    pub clock_after: DateTime<Utc>,
    /// New leads in campaigns.
    pub new_lead_ids: Vec<String>,
    /// New leads in no campaign.
    pub new_list_lead_ids: Vec<String>,
    /// Every existing lead that changed (status, interest or engagement).
    pub updated_lead_ids: Vec<String>,
    /// The subset of `updated_lead_ids` whose `timestamp_updated` did not move
    /// (engagement only: `email_open_count`, `timestamp_last_open`, ...).
    pub engagement_only_lead_ids: Vec<String>,
    /// Campaigns whose status and `timestamp_updated` changed.
    pub updated_campaign_ids: Vec<String>,
    /// All new emails, including `emails_at_last_timestamp_ids`.
    pub new_email_ids: Vec<String>,
    /// New emails stamped with the previous latest `timestamp_created`.
    pub emails_at_last_timestamp_ids: Vec<String>,
    /// Existing emails whose flags changed.
    pub updated_email_ids: Vec<String>,
    /// Accounts whose status and `timestamp_updated` changed.
    pub updated_account_emails: Vec<String>,
    /// Daily rows added because the clock crossed midnight.
    pub new_daily: Vec<DailyKey>,
    /// Existing daily rows whose counters changed.
    pub revised_daily: Vec<DailyKey>,
    /// Campaigns whose all-time `/campaigns/analytics` item, `/steps` rows or
    /// overview changed (new leads, status and interest changes, daily rows).
    pub analytics_changed_campaign_ids: Vec<String>,
    /// Optional fields removed.
    pub removed_fields: Vec<RemovedField>,
}

const CAMPAIGN_REMOVABLE: &[&str] = &[
    "pl_value",
    "email_gap",
    "random_wait_max",
    "text_only",
    "daily_max_leads",
    "owned_by",
    "is_evergreen",
    "stop_on_auto_reply",
    "not_sending_status",
    "custom_variables",
    "email_tag_list",
];

const ACCOUNT_REMOVABLE: &[&str] = &[
    "signature",
    "tracking_domain_name",
    "tracking_domain_status",
    "inbox_placement_test_limit",
    "modified_by",
    "warmup_pool_id",
];

fn next_status(s: i64) -> i64 {
    match s {
        1 => 2,
        4 => 2,
        _ => 1,
    }
}

fn next_lead_status(s: i8, rng: &mut StdRng) -> i8 {
    let options: &[i8] = &[1, 2, 3, -1, -2];
    loop {
        let n = options[rng.random_range(0..options.len())];
        if n != s {
            return n;
        }
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

impl Store {
    /// Applies `spec`; `real_now_ms` caps the clock at real time plus one day.
    pub(crate) fn mutate(&mut self, spec: &MutateSpec, real_now_ms: i64, daily_enabled: bool) -> MutateReport {
        self.mutations += 1;
        let mut rng = StdRng::seed_from_u64(self.seed ^ self.mutations.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let before = self.now_ms;
        let wanted =
            before.saturating_add(i64::try_from(spec.advance_secs).unwrap_or(i64::MAX / 2).saturating_mul(1000));
        let after = wanted.min(real_now_ms + DAY_MS).max(before);
        self.now_ms = after;
        let mut r = MutateReport { clock_before: millis(before), clock_after: millis(after), ..Default::default() };
        let analytics_before = self.analytics_snapshot();
        let existing_leads = self.leads.len();
        let existing_emails = self.emails.len();

        // Rows for the days the clock moved into.
        let mut new_days: HashSet<(usize, NaiveDate)> = HashSet::new();
        if daily_enabled {
            let (from, to) = (date_of(before), date_of(after));
            for date in from.iter_days().skip(1).take_while(|d| *d <= to) {
                for c in 0..self.campaigns.len() {
                    if self.campaigns[c].status == 0 || self.campaigns[c].daily.contains_key(&date) {
                        continue;
                    }
                    let day = self.day_for(&mut rng, c, date);
                    self.campaigns[c].daily.insert(date, day);
                    new_days.insert((c, date));
                    r.new_daily.push(DailyKey { campaign_id: self.campaigns[c].id_str.clone(), date });
                }
            }
        }

        // New leads.
        let targets: Vec<usize> = {
            let live: Vec<usize> = (0..self.campaigns.len()).filter(|&c| self.campaigns[c].status != 0).collect();
            if live.is_empty() { (0..self.campaigns.len()).collect() } else { live }
        };
        if !targets.is_empty() {
            for k in 0..spec.new_leads {
                let c = targets[k % targets.len()];
                let draft = self.campaigns[c].status == 0;
                let lead = self.new_campaign_lead(&mut rng, c as u32, before, after, draft);
                let idx = self.insert_lead(lead);
                r.new_lead_ids.push(uuid_str(self.leads[idx as usize].id));
            }
        }
        for _ in 0..spec.new_list_leads {
            let lead = self.new_list_lead(&mut rng, before, after);
            let idx = self.insert_lead(lead);
            r.new_list_lead_ids.push(uuid_str(self.leads[idx as usize].id));
        }

        // Lead changes.
        let mut picked = HashSet::new();
        for _ in 0..spec.update_leads.min(existing_leads) {
            let idx = loop {
                let i = rng.random_range(0..existing_leads);
                if picked.insert(i) {
                    break i;
                }
            };
            let lead = self.leads[idx];
            let mut l = lead;
            let kind = if l.campaign == NONE { rng.random_range(0..2) } else { rng.random_range(0..3) };
            match kind {
                0 => l.status = next_lead_status(l.status, &mut rng),
                1 => {
                    let values = [1i16, 2, 3, 4, 0, -1, -2, -3];
                    let mut v = values[rng.random_range(0..values.len())];
                    if v == l.interest {
                        v = if v == 1 { 2 } else { 1 };
                    }
                    l.interest = v;
                    l.interest_s = l.secs_since_created(after);
                }
                _ => {
                    l.opens = l.opens.saturating_add(1);
                    if l.contact_s == 0 {
                        l.contact_s = l.secs_since_created(after - 3_600_000);
                    }
                    l.engage_s = l.secs_since_created(after);
                }
            }
            let id = uuid_str(l.id);
            if kind < 2 {
                l.updated_ms = after.max(l.updated_ms + 1);
            } else {
                r.engagement_only_lead_ids.push(id.clone());
            }
            if l.campaign != NONE {
                let camp = &mut self.campaigns[l.campaign as usize];
                if let Some(s) = status_slot(lead.status) {
                    camp.status_counts[s] -= 1;
                }
                if let Some(s) = status_slot(l.status) {
                    camp.status_counts[s] += 1;
                }
                if lead.interest == NO_INTEREST && l.interest != NO_INTEREST {
                    camp.interest_leads.push(idx as u32);
                }
            }
            self.leads[idx] = l;
            r.updated_lead_ids.push(id);
        }

        // Campaign status changes.
        let mut picked = HashSet::new();
        for _ in 0..spec.update_campaigns.min(self.campaigns.len()) {
            let c = loop {
                let c = rng.random_range(0..self.campaigns.len());
                if picked.insert(c) {
                    break c;
                }
            };
            let camp = &mut self.campaigns[c];
            camp.status = next_status(camp.status);
            let prev = camp.json.get("timestamp_updated").and_then(Value::as_str).and_then(super::util::parse_instant);
            camp.json.insert("status".into(), json!(camp.status));
            camp.json.insert("timestamp_updated".into(), json!(ts(after.max(prev.unwrap_or(0) + 1))));
            r.updated_campaign_ids.push(camp.id_str.clone());
        }

        // Emails at the latest timestamp, then strictly after it.
        let mut fresh = Vec::new();
        if let Some(last) = self.emails.last().map(|e| e.created_ms) {
            for _ in 0..spec.emails_at_last_timestamp {
                let e = self.new_email(&mut rng, last);
                r.emails_at_last_timestamp_ids.push(uuid_str(e.id));
                fresh.push(e);
            }
        }
        let floor = self.emails.last().map_or(before, |e| e.created_ms + 1).max(before.min(after));
        let ceiling = after.max(floor);
        let mut times: Vec<i64> = (0..spec.new_emails).map(|_| rng.random_range(floor..=ceiling)).collect();
        times.sort_unstable();
        for i in 1..times.len() {
            if rng.random_bool(0.2) {
                times[i] = times[i - 1];
            }
        }
        for t in times {
            fresh.push(self.new_email(&mut rng, t));
        }
        r.new_email_ids = fresh.iter().map(|e| uuid_str(e.id)).collect();
        if !fresh.is_empty() {
            self.emails.extend(fresh);
            self.emails.sort_by_key(|e| (e.created_ms, e.id));
            self.reindex_emails();
        }

        // Email flag changes (among emails that existed before).
        let ids: Vec<u128> = self.emails.iter().map(|e| e.id).collect();
        let old: HashSet<&str> = r.new_email_ids.iter().map(String::as_str).collect();
        let mut picked = HashSet::new();
        for _ in 0..spec.update_emails.min(existing_emails) {
            let id = loop {
                let id = ids[rng.random_range(0..ids.len())];
                if !old.contains(uuid_str(id).as_str()) && picked.insert(id) {
                    break id;
                }
            };
            if let Some(&pos) = self.email_pos.get(&id) {
                let e = &mut self.emails[pos as usize];
                e.is_unread = 1 - e.is_unread.min(1);
                if e.ue_type == 2 {
                    e.i_status = Some(if e.i_status == Some(1) { 2 } else { 1 });
                }
                r.updated_email_ids.push(uuid_str(id));
            }
        }

        // Account status changes.
        let mut picked = HashSet::new();
        for _ in 0..spec.update_accounts.min(self.accounts.len()) {
            let a = loop {
                let a = rng.random_range(0..self.accounts.len());
                if picked.insert(a) {
                    break a;
                }
            };
            let acc = &mut self.accounts[a];
            let status = acc.json.get("status").and_then(Value::as_i64).unwrap_or(1);
            let prev = acc.json.get("timestamp_updated").and_then(Value::as_str).and_then(super::util::parse_instant);
            acc.json.insert("status".into(), json!(if status == 1 { 2 } else { 1 }));
            acc.json.insert("timestamp_updated".into(), json!(ts(after.max(prev.unwrap_or(0) + 1))));
            r.updated_account_emails.push(acc.email.clone());
        }

        // Revisions of recent daily rows (late opens, replies, opportunities).
        let today = date_of(after);
        let oldest = today - chrono::Days::new(u64::from(spec.revise_days_back));
        let mut candidates: Vec<(usize, NaiveDate)> = Vec::new();
        for (c, camp) in self.campaigns.iter().enumerate() {
            for date in camp.daily.range(oldest..=today).map(|(d, _)| *d) {
                if !new_days.contains(&(c, date)) {
                    candidates.push((c, date));
                }
            }
        }
        for _ in 0..spec.revise_daily_rows.min(candidates.len()) {
            let (c, date) = candidates.swap_remove(rng.random_range(0..candidates.len()));
            let camp = &mut self.campaigns[c];
            let extra_opens = if camp.open_tracking { rng.random_range(1..6) } else { 0 };
            let opp = u64::from(rng.random_bool(0.3));
            if let Some(day) = camp.daily.get_mut(&date) {
                *day += Counters {
                    opened: extra_opens,
                    unique_opened: extra_opens / 2,
                    replies: 1,
                    unique_replies: 1,
                    opportunities: opp,
                    unique_opportunities: opp,
                    ..Counters::default()
                };
            }
            r.revised_daily.push(DailyKey { campaign_id: camp.id_str.clone(), date });
        }

        // Optional fields that disappear from responses.
        for k in 0..spec.remove_fields {
            let removed = match k % 3 {
                0 => self.remove_lead_field(&mut rng, existing_leads),
                1 => self.remove_campaign_field(&mut rng),
                _ => self.remove_account_field(&mut rng),
            };
            let removed = removed
                .or_else(|| self.remove_lead_field(&mut rng, existing_leads))
                .or_else(|| self.remove_campaign_field(&mut rng));
            r.removed_fields.extend(removed);
        }

        let analytics_after = self.analytics_snapshot();
        r.analytics_changed_campaign_ids = (0..self.campaigns.len())
            .filter(|&c| analytics_before.get(c) != analytics_after.get(c))
            .map(|c| self.campaigns[c].id_str.clone())
            .collect();
        for v in [
            &mut r.new_lead_ids,
            &mut r.new_list_lead_ids,
            &mut r.updated_lead_ids,
            &mut r.engagement_only_lead_ids,
            &mut r.updated_campaign_ids,
            &mut r.new_email_ids,
            &mut r.emails_at_last_timestamp_ids,
            &mut r.updated_email_ids,
            &mut r.updated_account_emails,
            &mut r.analytics_changed_campaign_ids,
        ] {
            v.sort();
        }
        r.new_daily.sort();
        r.revised_daily.sort();
        r
    }

    /// Every campaign's all-time analytics, steps (with opportunities) and
    /// overview, to tell which ones a mutation changed.
    fn analytics_snapshot(&self) -> Vec<String> {
        let all = DateRange::default();
        (0..self.campaigns.len())
            .map(|c| {
                format!(
                    "{}{}{}",
                    self.campaign_analytics(c, &all),
                    Value::Array(self.steps(&[c], &all, true)),
                    self.overview(&[c], &all, false)
                )
            })
            .collect()
    }

    fn remove_lead_field(&mut self, rng: &mut StdRng, existing: usize) -> Option<RemovedField> {
        for _ in 0..50 {
            if existing == 0 {
                return None;
            }
            let idx = rng.random_range(0..existing) as u32;
            let bit = rng.random_range(0..LEAD_OPTIONAL.len());
            let field = LEAD_OPTIONAL[bit];
            if self.lead_renders(idx, field) {
                self.leads[idx as usize].removed |= 1 << bit;
                return Some(RemovedField {
                    stream: "leads".into(),
                    id: uuid_str(self.leads[idx as usize].id),
                    field: field.into(),
                });
            }
        }
        None
    }

    fn remove_campaign_field(&mut self, rng: &mut StdRng) -> Option<RemovedField> {
        for _ in 0..50 {
            if self.campaigns.is_empty() {
                return None;
            }
            let c = rng.random_range(0..self.campaigns.len());
            let field = CAMPAIGN_REMOVABLE[rng.random_range(0..CAMPAIGN_REMOVABLE.len())];
            let camp = &mut self.campaigns[c];
            if camp.json.remove(field).is_some() {
                return Some(RemovedField { stream: "campaigns".into(), id: camp.id_str.clone(), field: field.into() });
            }
        }
        None
    }

    fn remove_account_field(&mut self, rng: &mut StdRng) -> Option<RemovedField> {
        for _ in 0..50 {
            if self.accounts.is_empty() {
                return None;
            }
            let a = rng.random_range(0..self.accounts.len());
            let field = ACCOUNT_REMOVABLE[rng.random_range(0..ACCOUNT_REMOVABLE.len())];
            let acc = &mut self.accounts[a];
            if acc.json.remove(field).is_some() {
                return Some(RemovedField { stream: "accounts".into(), id: acc.email.clone(), field: field.into() });
            }
        }
        None
    }
}
