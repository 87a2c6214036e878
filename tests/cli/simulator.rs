//! The Instantly simulator served for tests, and pipelines against it. No tests here:
//! the module is shared with the `throughput` test binary.

use std::collections::BTreeSet;

use ferry_instantly::sim::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

use crate::common::*;

pub(crate) const KEY: &str = "sim-key-3f9d2a7c41e8";

/// A simulator served on a free loopback port from its own runtime.
pub(crate) struct Sim {
    pub sim: Simulator,
    pub base: String,
    handle: Option<SimHandle>,
    rt: tokio::runtime::Runtime,
}

impl Sim {
    pub(crate) fn start(cfg: SimConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let sim = Simulator::new(SimConfig { api_key: KEY.into(), ..cfg });
        let handle = rt.block_on(sim.serve(0)).expect("simulator binds 127.0.0.1");
        let base = handle.base_url();
        Sim { sim, base, handle: Some(handle), rt }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// A simulator and a scratch directory holding `p.toml`, an Instantly pipeline against it
/// into `data/i.db` with `extra_source` lines in `[source]`.
pub(crate) fn start(cfg: SimConfig, extra_source: &str) -> (Sim, Scratch) {
    let sim = Sim::start(cfg);
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&sim.base, "data/i.db", extra_source));
    (sim, s)
}

/// An Instantly pipeline against `base`; the key comes from the environment.
pub(crate) fn pipeline(base: &str, db: &str, extra_source: &str) -> String {
    pipeline_with(base, db, extra_source, 8)
}

/// [`pipeline`] with a given concurrency.
pub(crate) fn pipeline_with(base: &str, db: &str, extra_source: &str, concurrency: usize) -> String {
    format!(
        r#"[pipeline]
name = "inst"
concurrency = {concurrency}

[source]
connector = "instantly"
base_url = "{base}"
api_key = "${{SIM_INSTANTLY_KEY}}"
{extra_source}

[source.rate_limits.workspace]
per_second = 1000
[source.rate_limits.emails]
per_minute = 60000

[sink]
type = "sqlite"
path = "{db}"

[logging]
dir = "logs"
"#
    )
}

pub(crate) fn sync(s: &Scratch, args: &[&str]) -> Value {
    sync_code(s, args, 0)
}

/// Runs `ferry sync p.toml --json ARGS`, expecting exit `code`; returns the summary.
pub(crate) fn sync_code(s: &Scratch, args: &[&str], code: i32) -> Value {
    let mut a = vec!["sync", "p.toml", "--json"];
    a.extend_from_slice(args);
    let o = s.cmd(&a).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, code);
    serde_json::from_str(&text(&o).0).expect("json summary")
}

/// The seven stream tables, as comparable rows.
pub(crate) const TABLES: &[&str] = &[
    "instantly_campaigns_raw",
    "instantly_leads_raw",
    "instantly_steps_raw",
    "instantly_accounts_raw",
    "instantly_emails_raw",
    "instantly_daily_analytics_raw",
    "instantly_overview_raw",
];

pub(crate) fn keys(db: &rusqlite::Connection, sql: &str) -> BTreeSet<String> {
    let mut st = db.prepare(sql).unwrap();
    st.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

pub(crate) fn small() -> SimConfig {
    SimConfig {
        campaigns: 4,
        leads_per_campaign: 120,
        list_only_leads: 30,
        accounts: 7,
        emails: 230,
        ..SimConfig::default()
    }
}
