//! A simulator of the HubSpot CRM v3 API for tests, benchmarks and demos.
//!
//! It serves, on 127.0.0.1 only, the read endpoints a CRM connector uses, with
//! the real paths, parameters and shapes of HubSpot's CRM v3 API:
//!
//! - `GET /crm/v3/objects/{contacts|companies|deals}`: `limit` (default 10,
//!   at most 100), `after`, `properties` (comma list, may repeat), `archived`
//!   (`true` lists archived objects only); `paging.next.after` is absent on
//!   the last page and there is no `total`.
//! - `POST /crm/v3/objects/{type}/search`: `filterGroups` (ORed groups of
//!   ANDed filters; `EQ NEQ GT GTE LT LTE BETWEEN IN NOT_IN HAS_PROPERTY
//!   NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN`), one sort rule (ties
//!   broken by id ascending; no sort means id ascending), `properties`,
//!   `limit` (default 10, at most 200) and `after` (a numeric offset).
//!   Archived objects never match. Paging so that `after + limit > 10000`
//!   answers 400, as the real 10,000-result cap does.
//! - `GET /crm/v3/properties/{type}` and `GET /crm/v3/owners`.
//!
//! Auth is `Authorization: Bearer <token>` (401 `INVALID_AUTHENTICATION`
//! otherwise); optional budgets answer 429 with `policyName`
//! `TEN_SECONDLY_ROLLING` (everything but search) or `SECONDLY` (search).
//! Errors use HubSpot's body: `status`, `message`, `correlationId`,
//! `category`; every response carries `X-HubSpot-Correlation-Id`.
//!
//! Decisions where HubSpot's documentation is silent: a `limit` above the maximum, a
//! non-numeric `after`, an unknown filter or sort property and an unknown
//! operator answer 400 `VALIDATION_ERROR`; the list cursor is the id of the
//! next object; unknown requested properties are ignored and `createdate`,
//! the last-modified property and `hs_object_id` are always returned. Without a
//! `properties` parameter, the list endpoint (live or archived) and search return only
//! HubSpot's default properties of the type; `custom_properties` adds that many custom
//! properties per type, so that the default ones are a small part of a record.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ferry_hubspot::sim::{Fault, MutateSpec, SimConfig, Simulator};
//!
//! let sim = Simulator::new(SimConfig { seed: 7, ..SimConfig::default() });
//! let server = sim.serve(0).await?;
//! let base = server.base_url(); // http://127.0.0.1:PORT
//! sim.inject(Fault::status(502).on("/search").times(1));
//! let report = sim.mutate(MutateSpec { advance_secs: 60, new_contacts: 5, ..MutateSpec::default() });
//! let expected = sim.dataset();
//! # let _ = (base, report, expected);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod data;
mod server;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use data::Store;
use server::Limits;

/// Simulator settings; override fields with struct update syntax.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Seed of the generated data (same seed and `now`, same data).
    pub seed: u64,
    /// Number of contacts.
    pub contacts: usize,
    /// Number of companies.
    pub companies: usize,
    /// Number of deals.
    pub deals: usize,
    /// Number of owners (`GET /crm/v3/owners`).
    pub owners: usize,
    /// The token accepted as `Authorization: Bearer <token>`.
    pub api_token: String,
    /// Delay added to every API response.
    pub latency_ms: u64,
    /// Budget of non-search requests per rolling 10 s (429 `TEN_SECONDLY_ROLLING`).
    pub rate_limit_per_10s: Option<u32>,
    /// Budget of search requests per second (429 `SECONDLY`; the real one is 5).
    pub search_per_sec: Option<u32>,
    /// The simulator clock at generation (default: real now).
    pub now: Option<DateTime<Utc>>,
    /// Distinct last-modified times per object type at generation, so that
    /// many objects share one (0: a quarter of the objects, about four per time).
    pub distinct_modified_times: usize,
    /// Most recent requests kept in the request log.
    pub max_logged_requests: usize,
    /// Longest request URI (path and query) served; a longer one gets 414, as HubSpot
    /// answers a too long `properties` list. `None`: no limit.
    pub max_uri_len: Option<usize>,
    /// Custom properties per object type (`custom_001`, ...) on top of the built-in ones,
    /// every object holding a value for each, as real portals have a hundred or more.
    pub custom_properties: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 7,
            contacts: 300,
            companies: 80,
            deals: 120,
            owners: 6,
            api_token: "hs-sim-token".into(),
            latency_ms: 0,
            rate_limit_per_10s: None,
            search_per_sec: None,
            now: None,
            distinct_modified_times: 0,
            max_logged_requests: 100_000,
            max_uri_len: None,
            custom_properties: 0,
        }
    }
}

/// The CRM object types served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    /// `contacts` (object type id `0-1`).
    Contacts,
    /// `companies` (`0-2`).
    Companies,
    /// `deals` (`0-3`).
    Deals,
}

impl ObjectType {
    /// All three, in path order.
    pub const ALL: [ObjectType; 3] = [ObjectType::Contacts, ObjectType::Companies, ObjectType::Deals];

    /// The name used in paths (`contacts`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
        }
    }

    /// The last-modified property: `lastmodifieddate` for contacts,
    /// `hs_lastmodifieddate` for companies and deals.
    pub fn modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// Parses a path segment (`contacts`, `contact`, `0-1`, ...).
    pub fn parse(s: &str) -> Option<ObjectType> {
        match s.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contacts),
            "companies" | "company" | "0-2" => Some(ObjectType::Companies),
            "deals" | "deal" | "0-3" => Some(ObjectType::Deals),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value per object type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ByType<T> {
    /// Contacts.
    pub contacts: T,
    /// Companies.
    pub companies: T,
    /// Deals.
    pub deals: T,
}

impl<T> ByType<T> {
    /// The value for `t`.
    pub fn get(&self, t: ObjectType) -> &T {
        match t {
            ObjectType::Contacts => &self.contacts,
            ObjectType::Companies => &self.companies,
            ObjectType::Deals => &self.deals,
        }
    }

    /// The value for `t`, mutably.
    pub fn get_mut(&mut self, t: ObjectType) -> &mut T {
        match t {
            ObjectType::Contacts => &mut self.contacts,
            ObjectType::Companies => &mut self.companies,
            ObjectType::Deals => &mut self.deals,
        }
    }
}

/// Changes applied by [`Simulator::mutate`], in this order: the clock
/// advances by `advance_secs`; `same_timestamp_contacts` existing contacts are
/// modified at one identical time; then the creations, updates (of objects
/// not touched yet) and archivals (likewise) follow, one millisecond apart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MutateSpec {
    /// Seconds the simulator clock moves forward first.
    pub advance_secs: u64,
    /// Contacts created.
    pub new_contacts: usize,
    /// Existing contacts updated.
    pub update_contacts: usize,
    /// Existing contacts archived.
    pub archive_contacts: usize,
    /// Existing contacts all modified at one identical timestamp.
    pub same_timestamp_contacts: usize,
    /// Companies created.
    pub new_companies: usize,
    /// Existing companies updated.
    pub update_companies: usize,
    /// Existing companies archived.
    pub archive_companies: usize,
    /// Deals created.
    pub new_deals: usize,
    /// Existing deals updated.
    pub update_deals: usize,
    /// Existing deals archived.
    pub archive_deals: usize,
}

/// What a mutation did (ids are numeric strings, ascending).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MutateReport {
    /// Objects created.
    pub new_ids: ByType<Vec<String>>,
    /// Existing objects modified (including the same-timestamp contacts).
    pub updated_ids: ByType<Vec<String>>,
    /// Objects archived.
    pub archived_ids: ByType<Vec<String>>,
    /// The shared timestamp of the same-timestamp contacts, if any.
    pub same_timestamp: Option<DateTime<Utc>>,
    /// The simulator clock afterwards (the latest modification time).
    pub now: DateTime<Utc>,
}

/// Everything the simulator holds, as served.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dataset {
    /// The simulator clock.
    pub now: DateTime<Utc>,
    /// Live (non-archived) objects with all their properties, id ascending.
    pub objects: ByType<Vec<Value>>,
    /// Ids of archived objects, ascending.
    pub archived_ids: ByType<Vec<String>>,
    /// Archived objects with all their properties, id ascending.
    pub archived: ByType<Vec<Value>>,
    /// Owners as `GET /crm/v3/owners` returns them.
    pub owners: Vec<Value>,
}

impl Dataset {
    /// The ids of the live objects of one type, ascending.
    pub fn ids(&self, t: ObjectType) -> Vec<String> {
        self.objects.get(t).iter().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect()
    }
}

/// Request counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// All requests.
    pub total_requests: u64,
    /// Requests per path.
    pub by_path: BTreeMap<String, u64>,
    /// Requests per status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests per path and status code.
    pub by_path_status: BTreeMap<String, BTreeMap<u16, u64>>,
    /// 429s sent.
    pub rate_limited: u64,
    /// Requests shaped by an injected fault.
    pub faults_applied: u64,
}

/// One request as received and what it got.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/crm/v3/objects/contacts/search`.
    pub path: String,
    /// The raw query string (still percent-encoded), if any.
    pub query: Option<String>,
    /// The JSON body, if there was one and it parsed.
    pub body: Option<Value>,
    /// Whether `Authorization` carried the configured token.
    pub auth_ok: bool,
    /// The status returned.
    pub status: u16,
}

/// What an injected fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and a HubSpot error body (429 carries
    /// `policyName: TEN_SECONDLY_ROLLING`), before auth and limits.
    Status {
        /// The HTTP status.
        code: u16,
    },
    /// Answer normally but cut the JSON body in half.
    Malformed,
    /// Delay the response by this much, then answer normally.
    Latency {
        /// Delay in milliseconds.
        ms: u64,
    },
}

/// A fault applied to the next `times` requests whose path contains `path`
/// (every API path when `None`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// Substring of the request path to match.
    pub path: Option<String>,
    /// How many requests it still applies to.
    pub times: usize,
}

impl Fault {
    fn new(kind: FaultKind) -> Fault {
        Fault { kind, path: None, times: 1 }
    }

    /// A status fault, once, on any path.
    pub fn status(code: u16) -> Fault {
        Fault::new(FaultKind::Status { code })
    }

    /// A truncated-body fault, once, on any path.
    pub fn malformed() -> Fault {
        Fault::new(FaultKind::Malformed)
    }

    /// A latency fault, once, on any path.
    pub fn latency(ms: u64) -> Fault {
        Fault::new(FaultKind::Latency { ms })
    }

    /// Restricts the fault to paths containing `path`.
    pub fn on(mut self, path: &str) -> Fault {
        self.path = Some(path.to_owned());
        self
    }

    /// Applies the fault to `n` requests.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = n;
        self
    }
}

#[derive(Debug, Default)]
struct Log {
    records: VecDeque<RequestRecord>,
    stats: Stats,
}

struct Inner {
    cfg: SimConfig,
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Log>,
    limits: Mutex<Limits>,
    rng: Mutex<StdRng>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The simulator; clones share data, faults, limits and logs.
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
    /// Generates the portal described by `cfg`.
    pub fn new(cfg: SimConfig) -> Simulator {
        let now = cfg.now.unwrap_or_else(Utc::now);
        let store = Store::generate(&cfg, now.timestamp_millis());
        let limits = Limits::new(cfg.rate_limit_per_10s, cfg.search_per_sec);
        let rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed_c0de);
        Simulator {
            inner: Arc::new(Inner {
                cfg,
                store: Mutex::new(store),
                faults: Mutex::new(Vec::new()),
                log: Mutex::new(Log::default()),
                limits: Mutex::new(limits),
                rng: Mutex::new(rng),
            }),
        }
    }

    /// The configuration the simulator was built with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// The token the simulator accepts.
    pub fn api_token(&self) -> &str {
        &self.inner.cfg.api_token
    }

    /// The simulator clock.
    pub fn now(&self) -> DateTime<Utc> {
        data::to_datetime(lock(&self.inner.store).now_ms)
    }

    /// Serves the API on `127.0.0.1:port` (0 picks a free port) until
    /// [`SimHandle::shutdown`] or until the handle is dropped.
    pub async fn serve(&self, port: u16) -> std::io::Result<SimHandle> {
        server::serve(self.inner.clone(), port).await
    }

    /// Applies a mutation now (see [`MutateSpec`]).
    pub fn mutate(&self, spec: MutateSpec) -> MutateReport {
        lock(&self.inner.store).mutate(&spec)
    }

    /// The current data, per object type.
    pub fn dataset(&self) -> Dataset {
        lock(&self.inner.store).dataset()
    }

    /// Request counters.
    pub fn stats(&self) -> Stats {
        lock(&self.inner.log).stats.clone()
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.log).records.iter().cloned().collect()
    }

    /// Empties the request log and resets the counters.
    pub fn clear_requests(&self) {
        *lock(&self.inner.log) = Log::default();
    }

    /// Adds a fault; faults are matched in the order they were added.
    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            lock(&self.inner.faults).push(fault);
        }
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }
}

pub use ferry_core::sim::SimHandle;
