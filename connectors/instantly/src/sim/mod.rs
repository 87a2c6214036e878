//! A simulator of the Instantly.ai API v2 for tests, benchmarks, `ferry demo`
//! and `ferry sim instantly`.
//!
//! It serves the eight read endpoints the connector uses, with the real
//! paths, parameter names, validation errors, cursor pagination, response
//! shapes and error bodies of Instantly's API v2 and its OpenAPI document
//! (copied in `tests/sim/`), over seeded data that mirrors what real responses look like:
//! optional fields absent rather than null, `{}` schedules, empty-string
//! dates, floats in `number` fields, enum values outside the documented sets,
//! emails sharing a `timestamp_created`, step analytics from step 0 with a
//! null-step row and A/B variants.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ferry_instantly::sim::{Fault, MutateSpec, SimConfig, Simulator};
//!
//! let sim = Simulator::new(SimConfig { seed: 7, ..SimConfig::default() });
//! let server = sim.serve(0).await?; // 127.0.0.1, a free port
//! let base = server.base_url(); // http://127.0.0.1:PORT/api/v2
//! sim.inject(Fault::too_many_requests(Some(1)).on("/emails").times(2));
//! sim.on_request_mutate("/emails", 3, MutateSpec { new_emails: 5, ..MutateSpec::none() });
//! // ... run a sync against `base` with the key `sim.api_key()` ...
//! let expected = sim.dataset();
//! assert!(sim.stats().total_requests > 0);
//! # let _ = (base, expected);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Besides the API, the server answers control requests that bypass auth,
//! limits and faults and are not logged: `POST /__sim/mutate` (a JSON
//! [`MutateSpec`], every field optional; returns the [`MutateReport`]),
//! `GET /__sim/stats`, `GET /__sim/dataset`, `POST /__sim/faults` (a JSON
//! [`Fault`]), `DELETE /__sim/faults` and `DELETE /__sim/requests`.
//!
//! Decisions where the documents are silent: the last page omits
//! `next_starting_after`, and a full page always carries one (so a listing
//! whose size is a multiple of `limit` ends with an empty page); `limit`
//! defaults to 10; campaigns come newest id first, accounts by
//! `(timestamp_created, email)` ascending; analytics `end_date=D` includes
//! day D; `/emails` without `mode` shows only the focused tab;
//! `min_timestamp_created`/`max_timestamp_created` are inclusive; 429s carry
//! no `Retry-After` unless [`SimConfig::limit_retry_after`] or the fault
//! asks for one.

mod analytics;
mod api;
mod data;
mod faults;
mod limits;
mod mutate;
mod params;
mod render;
mod server;
mod util;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

pub use faults::{Fault, FaultKind, PathMatch};
pub use mutate::{DailyKey, MutateReport, MutateSpec, RemovedField};

use analytics::DateRange;
use data::Store;
use limits::{Budget, Limits};

/// Simulator settings. `SimConfig::default()` is a small workspace with no
/// limits, faults or latency; override fields with struct update syntax.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Seed of the generated data (same seed and clock, same data).
    pub seed: u64,
    /// Number of campaigns (statuses cycle through active, paused, completed, draft, ...).
    pub campaigns: usize,
    /// Leads in each campaign.
    pub leads_per_campaign: usize,
    /// Leads in no campaign (only in a lead list).
    pub list_only_leads: usize,
    /// Sending accounts.
    pub accounts: usize,
    /// Unibox emails, spread over the last `days` days.
    pub emails: usize,
    /// Days of daily analytics, ending at the simulator clock's today.
    pub days: u32,
    /// The API key accepted as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// Delay added to every API response.
    pub latency_ms: u64,
    /// Share of API requests answered with a random 500, 502 or 503.
    pub fail_rate: f64,
    /// Workspace budget per second, enforced with 429s (the real one is 100).
    pub rate_limit_per_sec: Option<u32>,
    /// Workspace budget per minute, enforced with 429s (the real one is 6,000).
    pub rate_limit_per_min: Option<u32>,
    /// Budget of `GET /emails` per minute (the real one is 20; off by default
    /// so tests run fast).
    pub emails_limit_per_min: Option<u32>,
    /// Whether 429s from the budgets above carry `Retry-After` (the real API
    /// is not known to send it; default false).
    pub limit_retry_after: bool,
    /// Start of the simulator clock (default: midnight UTC at the start of yesterday, so a
    /// simulator restarted on the same day with the same seed serves the same data, and a
    /// day of mutations still lies in the past; ids depend on the seed alone).
    pub now: Option<DateTime<Utc>>,
    /// Page size when a request gives no `limit` (10, as observed).
    pub default_limit: usize,
    /// Most recent requests kept in the request log.
    pub max_logged_requests: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 7,
            campaigns: 5,
            leads_per_campaign: 200,
            list_only_leads: 50,
            accounts: 12,
            emails: 300,
            days: 30,
            api_key: "sim-key".into(),
            latency_ms: 0,
            fail_rate: 0.0,
            rate_limit_per_sec: None,
            rate_limit_per_min: None,
            emails_limit_per_min: None,
            limit_retry_after: false,
            now: None,
            default_limit: 10,
            max_logged_requests: 100_000,
        }
    }
}

/// Whose daily analytics or overview a row belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// All campaigns summed (no `campaign_id` / `id` in the request).
    Workspace,
    /// One campaign, by id.
    Campaign(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Workspace => f.write_str("workspace"),
            Scope::Campaign(id) => f.write_str(id),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The rows each endpoint currently returns, exactly as served, for
/// comparing a sink's tables with the simulator.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dataset {
    /// The simulator clock.
    pub now: DateTime<Utc>,
    /// `GET /campaigns`, in API order (id descending).
    pub campaigns: Vec<Value>,
    /// `GET /campaigns/analytics` without dates (all time), in API order.
    pub campaign_analytics: Vec<Value>,
    /// `POST /leads/list`, id ascending; a lead in a campaign has its id in
    /// `campaign`, a lead in no campaign has no `campaign` key.
    pub leads: Vec<Value>,
    /// `GET /accounts`, in API order.
    pub accounts: Vec<Value>,
    /// `GET /emails?mode=emode_all&sort_order=asc`: `timestamp_created` ascending.
    pub emails: Vec<Value>,
    /// `GET /campaigns/analytics/daily` without dates, per scope, date ascending.
    pub daily: BTreeMap<Scope, Vec<Value>>,
    /// `GET /campaigns/analytics/steps` without dates, per scope.
    pub steps: BTreeMap<Scope, Vec<Value>>,
    /// `GET /campaigns/analytics/overview` without dates, per scope.
    pub overview: BTreeMap<Scope, Value>,
}

impl Dataset {
    /// The leads of one campaign (`Some(id)`) or in no campaign (`None`).
    pub fn leads_of(&self, campaign: Option<&str>) -> Vec<&Value> {
        self.leads.iter().filter(|l| l.get("campaign").and_then(Value::as_str) == campaign).collect()
    }
}

/// Request counters (API requests only; control requests are not counted).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// All API requests.
    pub total_requests: u64,
    /// Requests per path (e.g. `/api/v2/emails`).
    pub by_path: BTreeMap<String, u64>,
    /// Requests per status code returned.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests per path and status code.
    pub by_path_status: BTreeMap<String, BTreeMap<u16, u64>>,
    /// 429s sent (budgets and injected faults).
    pub rate_limited: u64,
    /// Requests an injected fault (or `fail_rate`) changed.
    pub faults_applied: u64,
    /// Mutations applied so far.
    pub mutations: u64,
}

/// One API request as received, and what it got.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/api/v2/leads/list`.
    pub path: String,
    /// The raw query string as sent (still percent-encoded), if any.
    pub query: Option<String>,
    /// The JSON body, if there was one and it parsed.
    pub body: Option<Value>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// Whether `Authorization` carried the configured key.
    pub auth_valid: bool,
    /// The status returned.
    pub status: u16,
    /// When it arrived (monotonic).
    pub received_at: Instant,
    /// When it arrived (wall clock).
    pub received_at_system: SystemTime,
    /// The `Retry-After` value sent with a 429, if any.
    pub retry_after: Option<u64>,
    /// The injected fault that shaped the response, if any (e.g. `status_503`).
    pub fault: Option<String>,
}

#[derive(Debug, Default)]
struct Log {
    records: VecDeque<RequestRecord>,
    stats: Stats,
}

#[derive(Debug)]
struct Scheduled {
    path: String,
    remaining: usize,
    spec: MutateSpec,
}

struct Inner {
    cfg: SimConfig,
    store: RwLock<Store>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Log>,
    limits: Mutex<Limits>,
    schedules: Mutex<Vec<Scheduled>>,
    last_pages: Mutex<HashMap<String, Vec<String>>>,
    rng: Mutex<StdRng>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Midnight (UTC) at the start of `t`'s day: the default simulator clock.
pub fn start_of_day(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
}

/// `/emails` → `/api/v2/emails`; full paths stay as they are.
fn normalize_path(p: &str) -> String {
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.starts_with("/api/v2") || p.starts_with("/__sim") {
        p.to_owned()
    } else if p.starts_with('/') {
        format!("/api/v2{p}")
    } else {
        format!("/api/v2/{p}")
    }
}

/// The simulator: data, faults, limits and logs behind an `Arc`; clones
/// share everything.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator").field("cfg", &self.inner.cfg).finish_non_exhaustive()
    }
}

impl Simulator {
    /// Generates the workspace described by `cfg` (a million leads take a
    /// few seconds and about 100 MB).
    pub fn new(cfg: SimConfig) -> Simulator {
        let now = cfg.now.unwrap_or_else(|| start_of_day(Utc::now()) - chrono::Duration::days(1));
        let store = Store::generate(&cfg, now.timestamp_millis());
        let limits = Limits {
            workspace: Budget::new(cfg.rate_limit_per_sec, cfg.rate_limit_per_min),
            emails: Budget::new(None, cfg.emails_limit_per_min),
        };
        let rng = StdRng::seed_from_u64(cfg.seed.rotate_left(32) ^ 0xfa11);
        Simulator {
            inner: Arc::new(Inner {
                cfg,
                store: RwLock::new(store),
                faults: Mutex::new(Vec::new()),
                log: Mutex::new(Log::default()),
                limits: Mutex::new(limits),
                schedules: Mutex::new(Vec::new()),
                last_pages: Mutex::new(HashMap::new()),
                rng: Mutex::new(rng),
            }),
        }
    }

    /// The configuration the simulator was built with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// The API key the simulator accepts.
    pub fn api_key(&self) -> &str {
        &self.inner.cfg.api_key
    }

    /// The simulator clock.
    pub fn now(&self) -> DateTime<Utc> {
        let ms = self.inner.read().now_ms;
        DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
    }

    /// Campaign ids in API order.
    pub fn campaign_ids(&self) -> Vec<String> {
        let s = self.inner.read();
        s.campaign_order.iter().map(|&c| s.campaigns[c as usize].id_str.clone()).collect()
    }

    /// Serves the API on `127.0.0.1:port` (0 picks a free port) until
    /// [`SimHandle::shutdown`] or until the handle is dropped (dropping it
    /// stops accepting connections and lets in-flight requests finish in the
    /// background).
    pub async fn serve(&self, port: u16) -> std::io::Result<SimHandle> {
        server::serve(self.inner.clone(), port).await
    }

    /// Applies a mutation now.
    pub fn mutate(&self, spec: MutateSpec) -> MutateReport {
        self.inner.mutate(&spec)
    }

    /// Applies `spec` when the `after_n_requests`-th request (counted from
    /// now, 1 = the next one) to `path` arrives, before that request is
    /// answered. `path` is a full path (`/api/v2/emails`) or the part after
    /// `/api/v2` (`/emails`).
    pub fn on_request_mutate(&self, path: &str, after_n_requests: usize, spec: MutateSpec) {
        lock(&self.inner.schedules).push(Scheduled {
            path: normalize_path(path),
            remaining: after_n_requests.max(1),
            spec,
        });
    }

    /// Everything the API currently returns, per stream (see [`Dataset`]).
    pub fn dataset(&self) -> Dataset {
        self.inner.dataset()
    }

    /// Request counters.
    pub fn stats(&self) -> Stats {
        let mut stats = lock(&self.inner.log).stats.clone();
        stats.mutations = self.inner.read().mutations;
        stats
    }

    /// The request log, oldest first (at most `max_logged_requests`).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.log).records.iter().cloned().collect()
    }

    /// Empties the request log and resets the counters.
    pub fn clear_requests(&self) {
        *lock(&self.inner.log) = Log::default();
    }

    /// Adds a fault; faults are matched in the order they were added.
    pub fn inject(&self, fault: Fault) {
        if fault.count > 0 {
            lock(&self.inner.faults).push(fault);
        }
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Faults not yet used up.
    pub fn pending_faults(&self) -> Vec<Fault> {
        lock(&self.inner.faults).clone()
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn mutate(&self, spec: &MutateSpec) -> MutateReport {
        let real_now = Utc::now().timestamp_millis();
        self.write().mutate(spec, real_now, self.cfg.days > 0)
    }

    fn dataset(&self) -> Dataset {
        let s = self.read();
        let all = DateRange::default();
        let order: Vec<usize> = s.campaign_order.iter().map(|&c| c as usize).collect();
        let mut daily = BTreeMap::new();
        let mut steps = BTreeMap::new();
        let mut overview = BTreeMap::new();
        daily.insert(Scope::Workspace, s.daily(&order, &all));
        steps.insert(Scope::Workspace, s.steps(&order, &all, false));
        overview.insert(Scope::Workspace, s.overview(&order, &all, false));
        for &c in &order {
            let scope = Scope::Campaign(s.campaigns[c].id_str.clone());
            daily.insert(scope.clone(), s.daily(&[c], &all));
            steps.insert(scope.clone(), s.steps(&[c], &all, false));
            overview.insert(scope, s.overview(&[c], &all, false));
        }
        Dataset {
            now: DateTime::<Utc>::from_timestamp_millis(s.now_ms).unwrap_or_default(),
            campaigns: order.iter().map(|&c| Value::Object(s.campaigns[c].json.clone())).collect(),
            campaign_analytics: order.iter().map(|&c| s.campaign_analytics(c, &all)).collect(),
            leads: s.leads_all.iter().map(|&i| s.lead_value(i)).collect(),
            accounts: s.accounts.iter().map(|a| Value::Object(a.json.clone())).collect(),
            emails: (0..s.emails.len()).map(|p| s.email_value(p)).collect(),
            daily,
            steps,
            overview,
        }
    }
}

pub use ferry_core::sim::SimHandle;

/// Serves a simulator for `cfg` on `127.0.0.1:port` until Ctrl-C, after
/// printing the base URL and the API key (for `ferry sim instantly`).
pub async fn run_standalone(cfg: SimConfig, port: u16) -> std::io::Result<()> {
    let sim = Simulator::new(cfg);
    let handle = sim.serve(port).await?;
    println!("instantly simulator listening on {}", handle.base_url());
    println!("api key: {}", sim.api_key());
    println!(
        "control: POST {0}/__sim/mutate, GET {0}/__sim/stats, GET {0}/__sim/dataset, POST|DELETE {0}/__sim/faults",
        handle.root_url()
    );
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
