//! The simulator's dataset: a compact, seeded model of one Instantly workspace.
//!
//! Campaigns and accounts are few and stored as ready JSON objects. Leads and
//! emails can number in the millions, so they are stored as small fixed-size
//! records; every field that never changes is derived from the record's id
//! (see `render.rs`) when a page is served. Leads are indexed by id per
//! campaign so a page is found by binary search, never by a scan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::AddAssign;

use chrono::{Datelike, NaiveDate, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::SimConfig;
use super::util::{
    CAMPAIGN_NAMES, COMPANY_A, DAY_MS, FIRST_NAMES, LAST_NAMES, Mix, SUBJECTS, TIMEZONES, date_of, record_id, ts,
    uuid_str,
};

/// "No index" marker for `u32` references (lead without campaign, ...).
pub(crate) const NONE: u32 = u32::MAX;
/// "No list" marker for [`Lead::list`].
pub(crate) const NO_LIST: u16 = u16::MAX;
/// "No interest status" marker for [`Lead::interest`].
pub(crate) const NO_INTEREST: i16 = i16::MIN;

/// Daily analytics counters of one campaign (field names as in
/// `GET /campaigns/analytics/daily`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub sent: u64,
    pub contacted: u64,
    pub new_leads_contacted: u64,
    pub opened: u64,
    pub unique_opened: u64,
    pub replies: u64,
    pub unique_replies: u64,
    pub replies_automatic: u64,
    pub unique_replies_automatic: u64,
    pub clicks: u64,
    pub unique_clicks: u64,
    pub opportunities: u64,
    pub unique_opportunities: u64,
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Self) {
        self.sent += o.sent;
        self.contacted += o.contacted;
        self.new_leads_contacted += o.new_leads_contacted;
        self.opened += o.opened;
        self.unique_opened += o.unique_opened;
        self.replies += o.replies;
        self.unique_replies += o.unique_replies;
        self.replies_automatic += o.replies_automatic;
        self.unique_replies_automatic += o.unique_replies_automatic;
        self.clicks += o.clicks;
        self.unique_clicks += o.unique_clicks;
        self.opportunities += o.opportunities;
        self.unique_opportunities += o.unique_opportunities;
    }
}

impl Counters {
    /// The daily row as the API returns it.
    pub(crate) fn day_json(&self, date: NaiveDate) -> Value {
        json!({
            "date": date.format("%Y-%m-%d").to_string(),
            "sent": self.sent,
            "contacted": self.contacted,
            "new_leads_contacted": self.new_leads_contacted,
            "opened": self.opened,
            "unique_opened": self.unique_opened,
            "replies": self.replies,
            "unique_replies": self.unique_replies,
            "replies_automatic": self.replies_automatic,
            "unique_replies_automatic": self.unique_replies_automatic,
            "clicks": self.clicks,
            "unique_clicks": self.unique_clicks,
            "opportunities": self.opportunities,
            "unique_opportunities": self.unique_opportunities,
        })
    }
}

/// One campaign.
#[derive(Clone, Debug)]
pub(crate) struct Campaign {
    pub id: u128,
    pub id_str: String,
    /// The item exactly as `GET /campaigns` returns it.
    pub json: Map<String, Value>,
    pub status: i64,
    pub pl_value: f64,
    pub open_tracking: bool,
    pub link_tracking: bool,
    /// Number of A/B variants of each sequence step.
    pub variants: Vec<u8>,
    /// Share of the campaign's activity per (step, variant).
    pub shares: Vec<(u8, u8, f64)>,
    /// `(opened, replies)` of the row with a null step, when the campaign has one.
    pub null_step: Option<(u64, u64)>,
    /// Activity before the first day of the daily window (all-time analytics).
    pub history: Counters,
    pub daily: BTreeMap<NaiveDate, Counters>,
    /// Lead counts by status: 1, 2, 3, -1, -2, -3.
    pub status_counts: [u64; 6],
    /// Leads of this campaign that carry an interest status.
    pub interest_leads: Vec<u32>,
}

impl Campaign {
    /// Whether the campaign is sending (active or running subsequences).
    pub(crate) fn sending(&self) -> bool {
        matches!(self.status, 1 | 4)
    }
}

/// Index of a lead status in [`Campaign::status_counts`].
pub(crate) fn status_slot(status: i8) -> Option<usize> {
    match status {
        1 => Some(0),
        2 => Some(1),
        3 => Some(2),
        -1 => Some(3),
        -2 => Some(4),
        -3 => Some(5),
        _ => None,
    }
}

/// One lead, compactly. Immutable fields (names, company, ...) derive from `id`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lead {
    pub id: u128,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Seconds after creation of the last contact (0 = never contacted).
    pub contact_s: u32,
    /// Seconds after creation of the last open/reply/click (0 = none).
    pub engage_s: u32,
    /// Seconds after creation of the last interest change (0 = none).
    pub interest_s: u32,
    pub campaign: u32,
    pub list: u16,
    pub interest: i16,
    pub opens: u16,
    pub replies: u16,
    pub clicks: u16,
    /// Bit set of optional fields removed by a mutation (see `render::LEAD_OPTIONAL`).
    pub removed: u16,
    pub status: i8,
}

impl Lead {
    fn at(&self, secs: u32, salt: u64) -> Option<i64> {
        (secs > 0).then(|| self.created_ms + i64::from(secs) * 1000 + (Mix::from_id(self.id, salt).below(1000) as i64))
    }
    pub(crate) fn contact_ms(&self) -> Option<i64> {
        self.at(self.contact_s, 11)
    }
    pub(crate) fn engage_ms(&self) -> Option<i64> {
        self.at(self.engage_s, 12)
    }
    pub(crate) fn interest_ms(&self) -> Option<i64> {
        self.at(self.interest_s, 13)
    }
    /// Seconds since creation for an instant (at least 1, so it reads as "set").
    pub(crate) fn secs_since_created(&self, ms: i64) -> u32 {
        ((ms - self.created_ms) / 1000).clamp(1, i64::from(u32::MAX)) as u32
    }
}

/// One sending account, stored as its API item.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub created_ms: i64,
    pub email: String,
    pub json: Map<String, Value>,
}

/// One Unibox email, compactly; text fields derive from `id`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Email {
    pub id: u128,
    pub created_ms: i64,
    /// `timestamp_email` is this many ms before `timestamp_created`.
    pub header_lag_ms: u32,
    pub campaign: u32,
    pub lead: u32,
    pub account: u32,
    /// 1 sent from campaign, 2 received, 3 sent, 4 scheduled.
    pub ue_type: u8,
    /// `(step, variant)` for campaign sends.
    pub step: Option<(u8, u8)>,
    pub is_unread: u8,
    pub is_focused: u8,
    pub is_auto_reply: u8,
    pub i_status: Option<i16>,
    pub thread: u128,
}

/// The whole workspace.
#[derive(Debug)]
pub(crate) struct Store {
    pub seed: u64,
    /// The simulator's clock.
    pub now_ms: i64,
    /// Added to a creation time to give the time part of its record's id, so that ids
    /// depend on the seed alone: the clock the data was generated at maps to
    /// [`ID_EPOCH_MS`], and a restarted simulator with the same seed serves the same ids.
    pub id_shift_ms: i64,
    pub org: u128,
    pub org_str: String,
    pub users: Vec<u128>,
    pub lists: Vec<u128>,
    pub campaigns: Vec<Campaign>,
    /// Campaign indexes in API order (id descending).
    pub campaign_order: Vec<u32>,
    pub leads: Vec<Lead>,
    /// Lead indexes by id ascending.
    pub leads_all: Vec<u32>,
    pub leads_by_campaign: Vec<Vec<u32>>,
    pub leads_no_campaign: Vec<u32>,
    /// Accounts by `(timestamp_created, email)` ascending.
    pub accounts: Vec<Account>,
    /// Emails by `(timestamp_created, id)` ascending.
    pub emails: Vec<Email>,
    pub email_pos: HashMap<u128, u32>,
    /// First date of the generated daily window.
    pub window_start: NaiveDate,
    pub mutations: u64,
}

const CAMPAIGN_STATUSES: &[i64] = &[1, 2, 3, 0, 1, 4, -1, 1, -2, 2, 3, -99];
const LEAD_STATUS_CONTACTED: &[i8] = &[1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 2, -1, -1, -2, -3];
/// Interest statuses of leads that replied; 7 and -5 stand for custom label
/// values, which the field can hold (Instantly's enums are open integer sets).
const INTEREST_VALUES: &[i16] = &[1, 1, 1, 1, 2, 2, 3, 4, 0, 0, -1, -1, -2, -3, -4, 7, -5];

/// The time part of the ids of records created at the clock's start (2026-06-01T00:00Z).
pub(crate) const ID_EPOCH_MS: i64 = 1_780_272_000_000;

impl Store {
    /// The id of a record created at `created_ms` (see [`Store::id_shift_ms`]).
    pub(crate) fn record_id(&self, created_ms: i64, bits: u128) -> u128 {
        record_id(created_ms + self.id_shift_ms, bits)
    }

    /// Generates the workspace for `cfg`, deterministically for `cfg.seed` and
    /// the configured clock.
    pub(crate) fn generate(cfg: &SimConfig, now_ms: i64) -> Store {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let org = record_id(ID_EPOCH_MS - 700 * DAY_MS, rng.random());
        let users = (0..3).map(|_| record_id(ID_EPOCH_MS - 600 * DAY_MS, rng.random())).collect();
        let lists = (0..3).map(|_| record_id(ID_EPOCH_MS - 300 * DAY_MS, rng.random())).collect();
        let today = date_of(now_ms);
        let window_start = today - chrono::Days::new(u64::from(cfg.days.saturating_sub(1)));
        let mut store = Store {
            seed: cfg.seed,
            now_ms,
            id_shift_ms: ID_EPOCH_MS - now_ms,
            org,
            org_str: uuid_str(org),
            users,
            lists,
            campaigns: Vec::new(),
            campaign_order: Vec::new(),
            leads: Vec::new(),
            leads_all: Vec::new(),
            leads_by_campaign: Vec::new(),
            leads_no_campaign: Vec::new(),
            accounts: Vec::new(),
            emails: Vec::new(),
            email_pos: HashMap::new(),
            window_start,
            mutations: 0,
        };
        store.gen_accounts(&mut rng, cfg.accounts);
        store.gen_campaigns(&mut rng, cfg.campaigns);
        store.gen_leads(&mut rng, cfg.leads_per_campaign, cfg.list_only_leads);
        if cfg.days > 0 {
            store.gen_daily(&mut rng, window_start, today);
        }
        // Daily activity depends on the weekday of each date, so the emails draw from a
        // stream of their own: their ids stay the same whichever day the clock starts on.
        let mut email_rng = StdRng::seed_from_u64(cfg.seed ^ 0x00e3_a115_0000_0000);
        store.gen_emails(&mut email_rng, cfg.emails, cfg.days.max(1));
        store
    }

    pub(crate) fn user(&self, pick: u64) -> u128 {
        self.users[(pick % self.users.len() as u64) as usize]
    }

    fn gen_accounts(&mut self, rng: &mut StdRng, n: usize) {
        const PREFIX: &[&str] = &["get", "try", "hello", "meet", "go", "team"];
        let mut seen = HashSet::new();
        let mut prev_created = None;
        for i in 0..n {
            let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
            let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
            let brand = COMPANY_A[rng.random_range(0..COMPANY_A.len())].to_ascii_lowercase();
            let domain = format!(
                "{}{}.{}",
                PREFIX[rng.random_range(0..PREFIX.len())],
                brand,
                ["com", "io", "co"][rng.random_range(0..3)]
            );
            let mut email = format!("{}@{}", first.to_ascii_lowercase(), domain);
            if !seen.insert(email.clone()) {
                email = format!("{}{}@{}", first.to_ascii_lowercase(), i, domain);
                seen.insert(email.clone());
            }
            // Accounts added in bulk share their creation instant exactly.
            let created = match prev_created {
                Some(p) if i % 4 == 1 => p,
                _ => self.now_ms - rng.random_range(5 * DAY_MS..500 * DAY_MS),
            };
            prev_created = Some(created);
            let json = self.account_json(rng, &email, first, last, created, i);
            self.accounts.push(Account { created_ms: created, email, json });
        }
        self.accounts.sort_by(|a, b| (a.created_ms, &a.email).cmp(&(b.created_ms, &b.email)));
    }

    fn account_json(
        &self,
        rng: &mut StdRng,
        email: &str,
        first: &str,
        last: &str,
        created: i64,
        i: usize,
    ) -> Map<String, Value> {
        let status: i64 = [1, 1, 1, 1, 1, 2, 3, -1, -2, -3][rng.random_range(0..10)];
        // 12 is a provider code newer than the spec's enum.
        let provider: i64 = [2, 2, 2, 3, 3, 1, 4, 8, 11, 12][rng.random_range(0..10)];
        let warmup_status: i64 = if status < 0 { [0, -1, -2][i % 3] } else { [1, 1, 1, 0][i % 4] };
        let updated = created + rng.random_range(0..(self.now_ms - created).max(1));
        let score: Value = match i % 3 {
            0 => json!(rng.random_range(60..=100)),
            1 => json!(f64::from(rng.random_range(120..200u32)) / 2.0),
            _ => Value::Null,
        };
        let mut m = Map::new();
        m.insert("email".into(), json!(email));
        m.insert("timestamp_created".into(), json!(ts(created)));
        m.insert("timestamp_updated".into(), json!(ts(updated)));
        m.insert("first_name".into(), json!(first));
        m.insert("last_name".into(), json!(last));
        m.insert("organization".into(), json!(uuid_str(self.org)));
        m.insert("warmup_status".into(), json!(warmup_status));
        m.insert("provider_code".into(), json!(provider));
        m.insert("setup_pending".into(), json!(i % 11 == 5));
        m.insert("is_managed_account".into(), json!(i % 7 == 3));
        m.insert(
            "warmup".into(),
            json!({
                "limit": ([20, 40, 100][i % 3]),
                "advanced": {
                    "warm_ctd": false,
                    "open_rate": 0.95,
                    "important_rate": 0.8,
                    "read_emulation": true,
                    "spam_save_rate": 0.02,
                    "weekday_only": i.is_multiple_of(2)
                },
                "warmup_custom_ftag": "warmup",
                "increment": (["disabled", "0", "1", "2", "3", "4"][i % 6]),
                "reply_rate": 0.1
            }),
        );
        m.insert("daily_limit".into(), json!([30, 50, 100][i % 3]));
        m.insert("status".into(), json!(status));
        m.insert("enable_slow_ramp".into(), json!(i.is_multiple_of(5)));
        if i % 3 != 2 {
            m.insert("inbox_placement_test_limit".into(), json!(10));
        }
        if status < 0 {
            m.insert(
                "status_message".into(),
                json!({
                    "code": "EENVELOPE",
                    "command": "DATA",
                    "responseCode": 550,
                    "response": "550-5.4.5 Daily user sending limit exceeded.",
                    "e_message": "error: data command failed: 550-5.4.5 daily user sending limit exceeded"
                }),
            );
        }
        m.insert("timestamp_warmup_start".into(), json!(ts(created + DAY_MS)));
        m.insert("stat_warmup_score".into(), score);
        m.insert("sending_gap".into(), json!([10, 5, 15, 0][i % 4]));
        if i % 4 != 3 {
            m.insert("signature".into(), json!(format!("Best regards, {first}")));
        }
        if i.is_multiple_of(3) {
            m.insert(
                "tracking_domain_name".into(),
                json!(format!("track.{}", email.split('@').nth(1).unwrap_or("example.com"))),
            );
            m.insert("tracking_domain_status".into(), json!("active"));
        }
        m.insert("added_by".into(), json!(uuid_str(self.user(i as u64))));
        if i.is_multiple_of(2) {
            m.insert("modified_by".into(), json!(uuid_str(self.user(i as u64 + 1))));
        }
        m.insert("autofix_failed".into(), json!(false));
        // Still returned by the real API though dropped from the spec on
        // 2026-07-13.
        if i % 3 == 1 {
            m.insert("warmup_pool_id".into(), json!(uuid_str(self.org ^ 0x5a5a)));
        }
        m
    }

    fn gen_campaigns(&mut self, rng: &mut StdRng, n: usize) {
        let accounts: Vec<String> = self.accounts.iter().map(|a| a.email.clone()).collect();
        for i in 0..n {
            let created = self.now_ms - rng.random_range(30 * DAY_MS..400 * DAY_MS);
            let id = self.record_id(created, rng.random());
            let status = CAMPAIGN_STATUSES[i % CAMPAIGN_STATUSES.len()];
            let mut name = CAMPAIGN_NAMES[i % CAMPAIGN_NAMES.len()].to_owned();
            if i >= CAMPAIGN_NAMES.len() {
                name = format!("{name} #{}", i / CAMPAIGN_NAMES.len() + 1);
            }
            let steps = rng.random_range(1..=4usize);
            let variants: Vec<u8> =
                (0..steps).map(|s| if s == 0 { rng.random_range(1..=3) } else { rng.random_range(1..=2) }).collect();
            let open_tracking = i % 4 != 2;
            let link_tracking = i.is_multiple_of(3);
            let pl_value: f64 = match i % 4 {
                0 => 100.0,
                1 => 99.5,
                2 => 250.0,
                _ => 0.0,
            };
            let updated = created + rng.random_range(0..(self.now_ms - created) / 2);
            let json = campaign_json(CampaignSeed {
                i,
                id,
                name: &name,
                status,
                created,
                updated,
                variants: &variants,
                open_tracking,
                link_tracking,
                pl_value,
                accounts: &accounts,
                org: self.org,
                owner: self.user(i as u64),
            });
            let mut shares = Vec::new();
            let step_total: f64 = (0..steps).map(|s| 0.55f64.powi(s as i32)).sum();
            for (s, &nv) in variants.iter().enumerate() {
                let ws: Vec<f64> = (0..nv).map(|_| 1.0 + 0.4 * rng.random::<f64>()).collect();
                let wsum: f64 = ws.iter().sum();
                for (v, w) in ws.iter().enumerate() {
                    let share = 0.55f64.powi(s as i32) / step_total * w / wsum;
                    shares.push((s as u8, v as u8, share));
                }
            }
            let null_step =
                (status != 0 && i.is_multiple_of(2)).then(|| (rng.random_range(0..6), rng.random_range(0..3)));
            self.campaigns.push(Campaign {
                id,
                id_str: uuid_str(id),
                json,
                status,
                pl_value,
                open_tracking,
                link_tracking,
                variants,
                shares,
                null_step,
                history: Counters::default(),
                daily: BTreeMap::new(),
                status_counts: [0; 6],
                interest_leads: Vec::new(),
            });
            self.leads_by_campaign.push(Vec::new());
        }
        self.resort_campaigns();
    }

    pub(crate) fn resort_campaigns(&mut self) {
        let mut order: Vec<u32> = (0..self.campaigns.len() as u32).collect();
        order.sort_by(|&a, &b| self.campaigns[b as usize].id.cmp(&self.campaigns[a as usize].id));
        self.campaign_order = order;
    }

    fn gen_leads(&mut self, rng: &mut StdRng, per_campaign: usize, list_only: usize) {
        self.leads.reserve(per_campaign * self.campaigns.len() + list_only);
        for c in 0..self.campaigns.len() {
            let (created, draft) = {
                let camp = &self.campaigns[c];
                (camp_created(camp), camp.status == 0)
            };
            for _ in 0..per_campaign {
                let lead = self.new_campaign_lead(rng, c as u32, created, self.now_ms, draft);
                self.push_lead(lead);
            }
        }
        for _ in 0..list_only {
            let lead = self.new_list_lead(rng, self.now_ms - 300 * DAY_MS, self.now_ms);
            self.push_lead(lead);
        }
        let leads = &self.leads;
        let by_id = |v: &mut Vec<u32>| v.sort_unstable_by_key(|&i| leads[i as usize].id);
        self.leads_all = (0..leads.len() as u32).collect();
        by_id(&mut self.leads_all);
        for v in &mut self.leads_by_campaign {
            by_id(v);
        }
        by_id(&mut self.leads_no_campaign);
    }

    /// Appends a lead and registers it in the per-campaign bookkeeping (the
    /// sorted indexes are the caller's business).
    fn push_lead(&mut self, lead: Lead) -> u32 {
        let idx = self.leads.len() as u32;
        if lead.campaign == NONE {
            self.leads_no_campaign.push(idx);
        } else {
            let c = &mut self.campaigns[lead.campaign as usize];
            if let Some(slot) = status_slot(lead.status) {
                c.status_counts[slot] += 1;
            }
            if lead.interest != NO_INTEREST {
                c.interest_leads.push(idx);
            }
            self.leads_by_campaign[lead.campaign as usize].push(idx);
        }
        self.leads.push(lead);
        idx
    }

    /// Adds a lead created after generation, keeping every index sorted.
    pub(crate) fn insert_lead(&mut self, lead: Lead) -> u32 {
        let id = lead.id;
        let campaign = lead.campaign;
        let idx = self.push_lead(lead);
        let leads = &self.leads;
        let insert = |v: &mut Vec<u32>| {
            v.pop();
            let pos = v.partition_point(|&i| leads[i as usize].id < id);
            v.insert(pos, idx);
        };
        if campaign == NONE {
            insert(&mut self.leads_no_campaign);
        } else {
            insert(&mut self.leads_by_campaign[campaign as usize]);
        }
        self.leads_all.push(idx);
        insert(&mut self.leads_all);
        idx
    }

    /// A new lead of campaign `c`, created in `[from, to)`.
    pub(crate) fn new_campaign_lead(&self, rng: &mut StdRng, c: u32, from: i64, to: i64, draft: bool) -> Lead {
        let created = rng.random_range(from..to.max(from + 1));
        let id = self.record_id(created, rng.random());
        let span = ((self.now_ms - created) / 1000).max(2) as u32;
        let mut lead = Lead {
            id,
            created_ms: created,
            updated_ms: created,
            contact_s: 0,
            engage_s: 0,
            interest_s: 0,
            campaign: c,
            list: if rng.random_bool(0.1) { rng.random_range(0..self.lists.len() as u16) } else { NO_LIST },
            interest: NO_INTEREST,
            opens: 0,
            replies: 0,
            clicks: 0,
            removed: 0,
            status: 1,
        };
        if !draft && rng.random_bool(0.75) {
            let camp = &self.campaigns[c as usize];
            lead.contact_s = rng.random_range(1..span);
            lead.status = LEAD_STATUS_CONTACTED[rng.random_range(0..LEAD_STATUS_CONTACTED.len())];
            if camp.open_tracking && rng.random_bool(0.45) {
                lead.opens = rng.random_range(1..5);
            }
            if rng.random_bool(0.08) {
                lead.replies = rng.random_range(1..3);
            }
            if camp.link_tracking && rng.random_bool(0.06) {
                lead.clicks = rng.random_range(1..4);
            }
            if lead.opens + lead.replies + lead.clicks > 0 {
                lead.engage_s = rng.random_range(lead.contact_s..span.max(lead.contact_s + 1));
            }
            if lead.replies > 0 && rng.random_bool(0.7) {
                lead.interest = INTEREST_VALUES[rng.random_range(0..INTEREST_VALUES.len())];
                lead.interest_s = rng.random_range(lead.engage_s..span.max(lead.engage_s + 1));
            }
        } else if rng.random_bool(0.03) {
            lead.status = -3;
        }
        if rng.random_bool(0.2) {
            lead.updated_ms = created + rng.random_range(0..(self.now_ms - created).max(1));
        }
        lead
    }

    /// A new lead in no campaign (only in a lead list), created in `[from, to)`.
    pub(crate) fn new_list_lead(&self, rng: &mut StdRng, from: i64, to: i64) -> Lead {
        let created = rng.random_range(from..to.max(from + 1));
        Lead {
            id: self.record_id(created, rng.random()),
            created_ms: created,
            updated_ms: created,
            contact_s: 0,
            engage_s: 0,
            interest_s: 0,
            campaign: NONE,
            list: rng.random_range(0..self.lists.len() as u16),
            interest: NO_INTEREST,
            opens: 0,
            replies: 0,
            clicks: 0,
            removed: 0,
            status: 1,
        }
    }

    fn gen_daily(&mut self, rng: &mut StdRng, from: NaiveDate, to: NaiveDate) {
        for c in 0..self.campaigns.len() {
            if self.campaigns[c].status == 0 {
                continue;
            }
            let leads = self.leads_by_campaign[c].len() as u64;
            let hist_days = rng.random_range(0..90);
            let mut history = Counters::default();
            for _ in 0..hist_days {
                history += gen_day(rng, &self.campaigns[c], leads, true, false);
            }
            self.campaigns[c].history = history;
            for date in from.iter_days().take_while(|d| *d <= to) {
                let day = self.day_for(rng, c, date);
                self.campaigns[c].daily.insert(date, day);
            }
        }
    }

    /// A generated day of activity for campaign `c` (non-draft).
    pub(crate) fn day_for(&self, rng: &mut StdRng, c: usize, date: NaiveDate) -> Counters {
        let camp = &self.campaigns[c];
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let leads = self.leads_by_campaign[c].len() as u64;
        gen_day(rng, camp, leads, camp.sending(), weekend)
    }

    fn gen_emails(&mut self, rng: &mut StdRng, n: usize, days: u32) {
        let from = self.now_ms - i64::from(days) * DAY_MS;
        let mut times: Vec<i64> = (0..n).map(|_| rng.random_range(from..self.now_ms)).collect();
        times.sort_unstable();
        // Several emails share their timestamp_created exactly.
        for i in 1..times.len() {
            if rng.random_bool(0.12) {
                times[i] = times[i - 1];
            }
        }
        for t in times {
            let e = self.new_email(rng, t);
            self.emails.push(e);
        }
        self.emails.sort_by_key(|e| (e.created_ms, e.id));
        self.reindex_emails();
    }

    pub(crate) fn reindex_emails(&mut self) {
        self.email_pos = self.emails.iter().enumerate().map(|(i, e)| (e.id, i as u32)).collect();
    }

    /// A new email stored at `created`.
    pub(crate) fn new_email(&self, rng: &mut StdRng, created: i64) -> Email {
        let ue_type = [1u8, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 4][rng.random_range(0..14)];
        let sending: Vec<u32> = (0..self.campaigns.len() as u32)
            .filter(|&c| self.campaigns[c as usize].status != 0 && !self.leads_by_campaign[c as usize].is_empty())
            .collect();
        let manual = ue_type == 3 && rng.random_bool(0.5);
        let campaign = if manual || sending.is_empty() { NONE } else { sending[rng.random_range(0..sending.len())] };
        let pool: &[u32] = if campaign == NONE { &self.leads_all } else { &self.leads_by_campaign[campaign as usize] };
        let mut lead = NONE;
        for _ in 0..4 {
            if pool.is_empty() {
                break;
            }
            let cand = pool[rng.random_range(0..pool.len())];
            if super::render::lead_has_email(&self.leads[cand as usize]) {
                lead = cand;
                break;
            }
        }
        let step = (ue_type == 1 && campaign != NONE).then(|| {
            let vars = &self.campaigns[campaign as usize].variants;
            let s = rng.random_range(0..vars.len());
            (s as u8, rng.random_range(0..vars[s]))
        });
        let received = ue_type == 2;
        let thread = Mix::from_id(
            u128::from(lead) << 32 | u128::from(campaign),
            self.seed ^ if manual { rng.random() } else { 0 },
        )
        .next();
        Email {
            id: super::util::uuid_v7(created + self.id_shift_ms, rng.random()),
            created_ms: created,
            header_lag_ms: rng.random_range(0..120_000),
            campaign,
            lead,
            account: if self.accounts.is_empty() { NONE } else { rng.random_range(0..self.accounts.len() as u32) },
            ue_type,
            step,
            is_unread: u8::from(received && rng.random_bool(0.4)),
            is_focused: u8::from(if received { rng.random_bool(0.8) } else { rng.random_bool(0.9) }),
            is_auto_reply: u8::from(received && rng.random_bool(0.15)),
            i_status: (received && rng.random_bool(0.5)).then(|| [1, 1, 2, 0, -1, -2][rng.random_range(0..6)]),
            thread: super::util::uuid_v4(u128::from(thread) << 64 | u128::from(thread.rotate_left(29))),
        }
    }
}

fn camp_created(c: &Campaign) -> i64 {
    c.json.get("timestamp_created").and_then(Value::as_str).and_then(super::util::parse_instant).unwrap_or_default()
}

/// One generated day of campaign activity.
fn gen_day(rng: &mut StdRng, camp: &Campaign, leads: u64, sending: bool, weekend: bool) -> Counters {
    let base = (leads / 8).clamp(5, 5000);
    let sent = if sending && !weekend { rng.random_range(base * 7 / 10..=base * 13 / 10) } else { 0 };
    let contacted = sent * rng.random_range(80..=100) / 100;
    let new_leads_contacted = contacted * rng.random_range(20..=60) / 100;
    // Opens and replies trickle in for days after sending stops.
    let activity = if sending { sent.max(base / 3) } else { base / 10 };
    let opened = if camp.open_tracking { activity * rng.random_range(20..=60) / 100 } else { 0 };
    let unique_opened = opened * rng.random_range(55..=85) / 100;
    let replies = activity * rng.random_range(0..=6) / 100 + u64::from(rng.random_bool(0.3));
    let unique_replies = replies * rng.random_range(80..=100) / 100;
    let replies_automatic = replies * rng.random_range(0..=30) / 100;
    let unique_replies_automatic = replies_automatic * rng.random_range(80..=100) / 100;
    let clicks = if camp.link_tracking { activity * rng.random_range(0..=5) / 100 } else { 0 };
    let unique_clicks = clicks * rng.random_range(70..=100) / 100;
    let opportunities = unique_replies * rng.random_range(0..=40) / 100;
    let unique_opportunities = opportunities * rng.random_range(80..=100) / 100;
    Counters {
        sent,
        contacted,
        new_leads_contacted,
        opened,
        unique_opened,
        replies,
        unique_replies,
        replies_automatic,
        unique_replies_automatic,
        clicks,
        unique_clicks,
        opportunities,
        unique_opportunities,
    }
}

struct CampaignSeed<'a> {
    i: usize,
    id: u128,
    name: &'a str,
    status: i64,
    created: i64,
    updated: i64,
    variants: &'a [u8],
    open_tracking: bool,
    link_tracking: bool,
    pl_value: f64,
    accounts: &'a [String],
    org: u128,
    owner: u128,
}

/// The campaign item. Real responses omit optional fields instead of sending
/// null, send `{}` schedules and odd `start_date`s; every variant appears across
/// the first few campaigns.
fn campaign_json(s: CampaignSeed<'_>) -> Map<String, Value> {
    let i = s.i;
    let day = |ms: i64| date_of(ms).format("%Y-%m-%d").to_string();
    let all_days = json!({"0": false, "1": true, "2": true, "3": true, "4": true, "5": true, "6": false});
    let weekdays = json!({"1": true, "2": true, "3": true, "4": true, "5": true});
    let schedule = |start: Value, end: Value, days: Value| {
        json!({
            "start_date": start,
            "end_date": end,
            "schedules": [{
                "name": "Weekdays",
                "timing": {"from": "09:00", "to": "17:00"},
                "days": days,
                "timezone": TIMEZONES[i % TIMEZONES.len()]
            }]
        })
    };
    let campaign_schedule = match i % 5 {
        0 => schedule(json!(day(s.created + DAY_MS)), Value::Null, all_days),
        1 => json!({}),
        2 => schedule(json!(""), Value::Null, weekdays),
        3 => schedule(json!(ts(s.created + 3_600_000)), Value::Null, all_days),
        _ => schedule(json!(day(s.created)), json!(day(s.created + 200 * DAY_MS)), weekdays),
    };
    let steps: Vec<Value> = s
        .variants
        .iter()
        .enumerate()
        .map(|(k, &nv)| {
            let variants: Vec<Value> = (0..nv as usize)
                .map(|v| {
                    let subject = if k == 0 { SUBJECTS[(i + v) % SUBJECTS.len()] } else { "" };
                    let mut variant = json!({
                        "subject": subject,
                        "body": format!("<div>Hi {{{{firstName}}}},</div><div>Step {} variant {}.</div>", k + 1, v),
                    });
                    if v > 0 || k == 0 {
                        variant["v_disabled"] = json!(false);
                    }
                    variant
                })
                .collect();
            let mut step = json!({"type": "email", "delay": ([2, 3, 5][k % 3]), "variants": variants});
            if k % 2 == 0 {
                step["delay_unit"] = json!("days");
            }
            step
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(uuid_str(s.id)));
    m.insert("name".into(), json!(s.name));
    m.insert("status".into(), json!(s.status));
    m.insert("campaign_schedule".into(), campaign_schedule);
    m.insert("sequences".into(), json!([{"steps": steps}]));
    m.insert("timestamp_created".into(), json!(ts(s.created)));
    m.insert("timestamp_updated".into(), json!(ts(s.updated)));
    match i % 4 {
        0 | 2 => {
            m.insert("pl_value".into(), json!(s.pl_value as i64));
        }
        1 => {
            m.insert("pl_value".into(), json!(s.pl_value));
        }
        _ => {}
    }
    if i % 3 != 1 {
        m.insert("is_evergreen".into(), json!(i % 6 == 5));
    }
    let n_acc = s.accounts.len();
    let email_list: Vec<&String> = if n_acc == 0 {
        Vec::new()
    } else {
        (0..(1 + i % 3).min(n_acc)).map(|k| &s.accounts[(i + k) % n_acc]).collect()
    };
    m.insert("email_list".into(), json!(email_list));
    if i.is_multiple_of(2) {
        m.insert("email_tag_list".into(), json!([]));
    }
    // A float in a `number` field.
    m.insert("daily_limit".into(), if i % 3 == 1 { json!(50.0) } else { json!(300) });
    m.insert("stop_on_reply".into(), json!(true));
    if i % 2 == 1 {
        m.insert("stop_on_auto_reply".into(), json!(false));
    }
    m.insert("link_tracking".into(), json!(s.link_tracking));
    m.insert("open_tracking".into(), json!(s.open_tracking));
    if i.is_multiple_of(3) {
        m.insert("text_only".into(), json!(false));
        m.insert("first_email_text_only".into(), json!(false));
    }
    if i.is_multiple_of(2) {
        m.insert("email_gap".into(), json!(10));
        m.insert("random_wait_max".into(), json!(5));
    }
    if i % 4 == 1 {
        m.insert("daily_max_leads".into(), json!(40));
        m.insert("prioritize_new_leads".into(), json!(false));
        m.insert("match_lead_esp".into(), Value::Null);
    }
    if i % 5 == 2 {
        m.insert("auto_variant_select".into(), json!({"trigger": "reply_rate"}));
        m.insert("insert_unsubscribe_header".into(), json!(true));
        m.insert("allow_risky_contacts".into(), json!(false));
        m.insert("disable_bounce_protect".into(), json!(false));
    } else if i % 5 == 4 {
        m.insert("auto_variant_select".into(), Value::Null);
    }
    if matches!(s.status, 1 | 4) && i.is_multiple_of(2) {
        m.insert("not_sending_status".into(), json!([1, 3, 4][i % 3]));
    }
    if i.is_multiple_of(3) {
        m.insert("core_variables".into(), json!({}));
        m.insert(
            "custom_variables".into(),
            json!({"Company LinkedIn URL": "https://www.linkedin.com/company/example", "pause_until": null}),
        );
    }
    if i % 4 == 3 {
        m.insert("cc_list".into(), json!([]));
        m.insert("bcc_list".into(), json!(["archive@example.com"]));
        m.insert(
            "limit_emails_per_company_override".into(),
            json!({"mode": "custom", "daily_limit": 5, "scope": "per_campaign"}),
        );
        m.insert(
            "provider_routing_rules".into(),
            json!([{"action": "send", "recipient_esp": ["google"], "sender_esp": ["google"]}]),
        );
    }
    m.insert("organization".into(), json!(uuid_str(s.org)));
    if i.is_multiple_of(2) {
        m.insert("owned_by".into(), json!(uuid_str(s.owner)));
    }
    m
}
