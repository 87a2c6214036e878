//! Throughput at the rate limit, in a test binary of its own: cargo runs test binaries one
//! after another, so this timing measurement never shares the 2 cores with the other tests.

#[path = "cli/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "cli/simulator.rs"]
#[allow(dead_code)]
mod simulator;

use std::time::Instant;

use ferry_instantly::sim::SimConfig;

use crate::common::*;
use crate::simulator::*;

#[test]
fn throughput_at_the_limit_stays_within_a_quarter_of_the_budget_bound() {
    // 200 ms per request, 50 requests/second: paging one request at a time would
    // manage 5 per second, ten times slower than the budget.
    let cfg = SimConfig {
        latency_ms: 200,
        campaigns: 20,
        leads_per_campaign: 1400,
        list_only_leads: 100,
        accounts: 30,
        emails: 400,
        ..SimConfig::default()
    };
    let sim = Sim::start(cfg);
    let s = Scratch::new();
    let text = pipeline_with(&sim.base, "data/i.db", "", 64)
        .replace("per_second = 1000", "per_second = 50")
        .replace("per_minute = 60000", "per_minute = 3000");
    s.write("p.toml", &text);
    let started = Instant::now();
    let r = sync(&s, &[]);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(r["status"], "ok");
    let requests = sim.sim.stats().total_requests as f64;
    // Both budgets admit 50/s here; the bound is the requests over that rate.
    let bound = requests / 50.0;
    let ratio = wall / bound;
    eprintln!("latency mode: {requests} requests, wall {wall:.2}s, budget bound {bound:.2}s, ratio {ratio:.2}");

    assert!(ratio <= 1.25, "wall {wall:.2}s is {ratio:.2} x the budget bound {bound:.2}s");
}
