//! Crash safety: SIGKILL at random points, re-run, and the tables equal an
//! uninterrupted run's (no loss, no duplicates, state consistent).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;

const TABLES: &[&str] = &["synthetic_users", "synthetic_events", "synthetic_orders"];

fn pipeline(generation: u64) -> String {
    synthetic_pipeline(
        "crash",
        "data/c.db",
        &format!("records = 3000\npage_size = 100\ndelay_ms = 2\nchange_share = 0.3\ngeneration = {generation}"),
    )
}

fn snapshot(s: &Scratch) -> Vec<Vec<String>> {
    let db = s.db("data/c.db");
    let mut v: Vec<Vec<String>> = TABLES.iter().map(|t| table_rows(&db, t)).collect();
    // State after a completed run: the events cursor, no scan positions left behind.
    let mut st = db.prepare("SELECT stream || '/' || partition || '=' || cursor FROM sync_state ORDER BY 1").unwrap();
    v.push(st.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect());
    v
}

#[test]
fn sigkill_at_random_points_then_rerun_converges() {
    let _heavy = timing_lock();
    // Reference: uninterrupted runs of generation 0 and then generation 1.
    let reference = Scratch::new();
    reference.write("p.toml", &pipeline(0));
    let t0 = Instant::now();
    expect_code(&reference.run(&["sync", "p.toml", "--quiet"]), 0);
    let full_time = t0.elapsed();
    let ref_gen0 = snapshot(&reference);
    let gen0_db = std::fs::read(reference.path("data/c.db")).unwrap();
    reference.write("p.toml", &pipeline(1));
    expect_code(&reference.run(&["sync", "p.toml", "--quiet"]), 0);
    let ref_gen1 = snapshot(&reference);
    assert_ne!(ref_gen0, ref_gen1);

    let seed = std::env::var("FERRY_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (set FERRY_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut killed_mid_run = 0;
    // Rounds continue until at least 20 kills landed while a sync was running.
    let mut i = 0;
    while killed_mid_run < 20 && i < 80 {
        i += 1;
        let s = Scratch::new();
        // Even rounds start empty (insert path); odd rounds start from a completed
        // generation 0 and sync generation 1 (update path).
        let (generation, expected) = if i % 2 == 0 { (0, &ref_gen0) } else { (1, &ref_gen1) };
        if generation == 1 {
            std::fs::create_dir_all(s.path("data")).unwrap();
            std::fs::write(s.path("data/c.db"), &gen0_db).unwrap();
        }
        s.write("p.toml", &pipeline(generation));
        // One or two kills per round, then a run to completion.
        for _ in 0..rng.random_range(1..=2) {
            let mut child = s.cmd(&["sync", "p.toml", "--quiet"]).spawn().unwrap();
            let at = Duration::from_millis(rng.random_range(5..=full_time.as_millis().max(30) as u64));
            std::thread::sleep(at);
            if child.try_wait().unwrap().is_none() {
                killed_mid_run += 1;
            }
            child.kill().ok(); // SIGKILL
            child.wait().unwrap();
        }
        let o = s.run(&["sync", "p.toml", "--quiet"]);
        expect_code(&o, 0);
        assert_eq!(&snapshot(&s), expected, "round {i} (generation {generation}) diverged; seed {seed}");
    }
    assert!(killed_mid_run >= 20, "only {killed_mid_run} kills landed during a run; seed {seed}");
}
