//! Taking over the old Python collector's `data/instantly.db` in place (its tables and keys
//! as described in the SQLite sink's takeover code and the README).

use std::collections::BTreeMap;

use ferry_instantly::sim::Scope;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::common::*;
use crate::simulator::*;

/// The old collector's schema: surrogate `id`, natural keys, extracted columns, raw_json,
/// timestamps, an AFTER UPDATE trigger per table, indexes, WAL, foreign keys.
const OLD_SCHEMA: &str = r#"
PRAGMA journal_mode=WAL;
PRAGMA foreign_keys=ON;
CREATE TABLE instantly_campaigns_raw (
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  instantly_campaign_id TEXT NOT NULL UNIQUE,
  campaign_name TEXT, campaign_status INTEGER, leads_count INTEGER, contacted_count INTEGER,
  open_count INTEGER, reply_count INTEGER, bounced_count INTEGER, emails_sent_count INTEGER,
  total_opportunities INTEGER, total_opportunity_value REAL,
  raw_json TEXT NOT NULL,
  synced_at TEXT DEFAULT (datetime('now')), created_at TEXT DEFAULT (datetime('now')), updated_at TEXT DEFAULT (datetime('now'))
);
CREATE TABLE instantly_leads_raw (
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  instantly_lead_id TEXT NOT NULL UNIQUE,
  instantly_campaign_id TEXT REFERENCES instantly_campaigns_raw(instantly_campaign_id) ON DELETE SET NULL,
  email TEXT NOT NULL, first_name TEXT, last_name TEXT, company_name TEXT, lead_status TEXT,
  raw_json TEXT NOT NULL,
  synced_at TEXT DEFAULT (datetime('now')), created_at TEXT DEFAULT (datetime('now')), updated_at TEXT DEFAULT (datetime('now'))
);
CREATE TABLE instantly_steps_raw (
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  instantly_campaign_id TEXT NOT NULL REFERENCES instantly_campaigns_raw(instantly_campaign_id) ON DELETE CASCADE,
  step_number INTEGER, step_name TEXT, step_type TEXT,
  emails_sent INTEGER, emails_opened INTEGER, emails_replied INTEGER, emails_bounced INTEGER, emails_clicked INTEGER,
  raw_json TEXT NOT NULL,
  synced_at TEXT DEFAULT (datetime('now')), created_at TEXT DEFAULT (datetime('now')), updated_at TEXT DEFAULT (datetime('now')),
  UNIQUE (instantly_campaign_id, step_number)
);
CREATE TABLE instantly_accounts_raw (
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  email TEXT NOT NULL UNIQUE,
  organization TEXT, status INTEGER, warmup_status INTEGER, stat_warmup_score REAL,
  raw_json TEXT NOT NULL,
  synced_at TEXT DEFAULT (datetime('now')), created_at TEXT DEFAULT (datetime('now')), updated_at TEXT DEFAULT (datetime('now'))
);
CREATE TABLE instantly_emails_raw (
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  instantly_email_id TEXT NOT NULL UNIQUE,
  instantly_campaign_id TEXT, recipient_email TEXT, subject TEXT, email_type TEXT, sent_at TEXT, opened_at TEXT, replied_at TEXT,
  raw_json TEXT NOT NULL,
  synced_at TEXT DEFAULT (datetime('now')), created_at TEXT DEFAULT (datetime('now')), updated_at TEXT DEFAULT (datetime('now'))
);
CREATE TABLE instantly_daily_analytics_raw (
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  date TEXT NOT NULL UNIQUE,
  sent INTEGER, opened INTEGER, unique_opened INTEGER, replies INTEGER, unique_replies INTEGER, clicks INTEGER, unique_clicks INTEGER,
  raw_json TEXT NOT NULL,
  synced_at TEXT DEFAULT (datetime('now')), created_at TEXT DEFAULT (datetime('now')), updated_at TEXT DEFAULT (datetime('now'))
);
CREATE TABLE instantly_overview_raw (
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  total_campaigns INTEGER DEFAULT 0, total_leads INTEGER DEFAULT 0, total_emails_sent INTEGER DEFAULT 0,
  total_replies INTEGER DEFAULT 0, total_opportunities INTEGER DEFAULT 0,
  raw_json TEXT NOT NULL,
  synced_at TEXT DEFAULT (datetime('now')), created_at TEXT DEFAULT (datetime('now')), updated_at TEXT DEFAULT (datetime('now'))
);
CREATE INDEX idx_leads_campaign ON instantly_leads_raw (instantly_campaign_id);
CREATE INDEX idx_leads_status ON instantly_leads_raw (lead_status);
CREATE INDEX idx_campaigns_status ON instantly_campaigns_raw (campaign_status);
CREATE INDEX idx_steps_campaign ON instantly_steps_raw (instantly_campaign_id, step_number);
CREATE INDEX idx_daily_synced ON instantly_daily_analytics_raw (synced_at DESC);
CREATE INDEX idx_overview_synced ON instantly_overview_raw (synced_at DESC);
"#;

const TABLES_OLD: &[&str] = &[
    "instantly_campaigns_raw",
    "instantly_leads_raw",
    "instantly_steps_raw",
    "instantly_accounts_raw",
    "instantly_emails_raw",
    "instantly_daily_analytics_raw",
    "instantly_overview_raw",
];

/// Builds the old database from (part of) the simulator's data, as the collector stored
/// it: numeric lead status as text, null-step rows, workspace-only daily rows, one
/// overview row per old run, a field only the old raw_json had, and a lead the API no
/// longer returns.
fn build_old(path: &std::path::Path, sim: &Sim) {
    let d = sim.sim.dataset();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(OLD_SCHEMA).unwrap();
    for t in TABLES_OLD {
        conn.execute_batch(&format!(
            "CREATE TRIGGER trg_{t}_updated AFTER UPDATE ON {t} BEGIN UPDATE {t} SET updated_at = datetime('now') WHERE id = NEW.id; END;"
        ))
        .unwrap();
    }
    let old = |v: &Value| {
        let mut v = v.clone();
        v["legacy_only"] = json!("kept from the old collector");
        v.to_string()
    };
    for c in &d.campaigns {
        conn.execute(
            "INSERT INTO instantly_campaigns_raw (instantly_campaign_id, campaign_name, campaign_status, raw_json, synced_at) VALUES (?1, ?2, ?3, ?4, '2025-11-01 09:00:00')",
            params![c["id"].as_str(), c["name"].as_str(), c["status"].as_i64(), old(c)],
        )
        .unwrap();
    }
    for l in d.leads.iter().filter(|l| l["email"].is_string()).take(150) {
        conn.execute(
            "INSERT INTO instantly_leads_raw (instantly_lead_id, instantly_campaign_id, email, first_name, lead_status, raw_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![l["id"].as_str(), l["campaign"].as_str(), l["email"].as_str(), l["first_name"].as_str(), l["status"].to_string(), old(l)],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO instantly_leads_raw (instantly_lead_id, email, lead_status, raw_json) VALUES ('gone-lead', 'gone@example.com', '-1', '{\"id\":\"gone-lead\"}')",
        [],
    )
    .unwrap();
    for (scope, rows) in &d.steps {
        let Scope::Campaign(c) = scope else { continue };
        // The old key ignored the variant: variant-0 rows and the null-step rows (several).
        for r in rows.iter().filter(|r| r["variant"] == json!("0") || r["step"].is_null()) {
            conn.execute(
                "INSERT INTO instantly_steps_raw (instantly_campaign_id, step_number, emails_sent, raw_json) VALUES (?1, ?2, ?3, ?4)",
                params![c, r["step"].as_str().and_then(|s| s.parse::<i64>().ok()), r["sent"].as_i64(), old(r)],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO instantly_steps_raw (instantly_campaign_id, step_number, raw_json) VALUES (?1, NULL, '{\"step\":null,\"variant\":null}')",
            params![c],
        )
        .unwrap();
    }
    for r in &d.daily[&Scope::Workspace] {
        conn.execute(
            "INSERT INTO instantly_daily_analytics_raw (date, sent, opened, raw_json) VALUES (?1, ?2, ?3, ?4)",
            params![r["date"].as_str(), r["sent"].as_i64().map(|s| s / 2), r["opened"].as_i64(), old(r)],
        )
        .unwrap();
    }
    for (i, day) in ["2025-10-30 08:00:00", "2025-10-31 08:00:00", "2025-10-31 20:00:00"].iter().enumerate() {
        conn.execute(
            "INSERT INTO instantly_overview_raw (raw_json, synced_at, created_at) VALUES (?1, ?2, ?2)",
            params![json!({"emails_sent_count": 100 * i}).to_string(), day],
        )
        .unwrap();
    }
    for a in d.accounts.iter().take(5) {
        conn.execute(
            "INSERT INTO instantly_accounts_raw (email, status, raw_json) VALUES (?1, ?2, ?3)",
            params![a["email"].as_str(), a["status"].as_i64(), old(a)],
        )
        .unwrap();
    }
    for e in d.emails.iter().take(20) {
        conn.execute(
            "INSERT INTO instantly_emails_raw (instantly_email_id, subject, opened_at, raw_json) VALUES (?1, ?2, '2025-10-01 10:00:00', ?3)",
            params![e["id"].as_str(), e["subject"].as_str(), old(e)],
        )
        .unwrap();
    }
    drop(conn); // checkpoints the WAL into the file
}

fn old_rows(conn: &Connection, table: &str) -> BTreeMap<String, String> {
    let mut st = conn.prepare(&format!("SELECT id, raw_json FROM {table}")).unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

fn setup() -> (Sim, Scratch, std::path::PathBuf) {
    let (sim, s) = start(small(), "");
    let db = s.path("data/i.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    build_old(&db, &sim);
    (sim, s, db)
}

fn backups(s: &Scratch) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(s.path("data"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().contains(".pre-ferry-") && !p.to_string_lossy().ends_with("-wal")
        })
        .collect()
}

#[test]
fn migration_keeps_every_row_backs_up_byte_for_byte_and_is_idempotent() {
    let (_sim, s, db) = setup();
    let original = std::fs::read(&db).unwrap();
    let before: Vec<BTreeMap<String, String>> = {
        let c = Connection::open(&db).unwrap();
        TABLES_OLD.iter().map(|t| old_rows(&c, t)).collect()
    };
    let foreign_keys = |c: &Connection| -> Vec<(String, String, String, String, String, String)> {
        let mut out = Vec::new();
        for t in TABLES_OLD {
            let mut st = c
                .prepare(&format!(
                    "SELECT \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list('{t}')"
                ))
                .unwrap();
            out.extend(
                st.query_map([], |r| Ok((t.to_string(), r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                    .unwrap()
                    .map(Result::unwrap),
            );
        }
        out.sort();
        out
    };
    let fks_before = foreign_keys(&Connection::open(&db).unwrap());
    assert_eq!(fks_before.len(), 2, "the old schema's foreign keys (leads and steps to campaigns): {fks_before:?}");

    // Before the takeover, `status` and `state show` say how to take it over, and touch nothing.
    for args in [&["status", "p.toml"][..], &["state", "show", "p.toml"]] {
        let o = s.cmd(args).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
        let (out, err) = text(&o);
        assert_ne!(o.status.code(), Some(0), "{args:?}: {out}");
        assert!(err.contains("not taken it over yet") && err.contains("ferry migrate"), "{args:?}: {err}");
        assert_eq!(std::fs::read(&db).unwrap(), original, "{args:?} touched the file");
    }

    // The dry run shows the plan and leaves the file byte-identical.
    let o = s.cmd(&["migrate", "p.toml", "--dry-run"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    let plan = text(&o).0;
    for needle in [
        "back up",
        "instantly_daily_analytics_raw: rebuild",
        "instantly_leads_raw: rebuild",
        "instantly_overview_raw: rebuild",
        "instantly_steps_raw: rebuild",
    ] {
        assert!(plan.contains(needle), "plan lacks {needle}:\n{plan}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), original, "dry run touched the file");
    assert!(backups(&s).is_empty());

    let o = s.cmd(&["migrate", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    let b = backups(&s);
    assert_eq!(b.len(), 1);
    assert_eq!(std::fs::read(&b[0]).unwrap(), original, "backup differs from the original");

    let c = Connection::open(&db).unwrap();
    for (t, rows) in TABLES_OLD.iter().zip(&before) {
        assert_eq!(&old_rows(&c, t), rows, "{t}: ids or raw_json changed or rows lost");
    }
    let import: String =
        c.query_row("SELECT batch_id FROM sync_runs WHERE mode = 'legacy-import'", [], |r| r.get(0)).unwrap();
    for t in TABLES_OLD {
        let stamped = count(&c, &format!("SELECT count(*) FROM {t} WHERE first_sync_batch_id = '{import}'"));
        assert_eq!(stamped, count(&c, &format!("SELECT count(*) FROM {t}")), "{t}");
    }
    let meta: String = c.query_row("SELECT meta FROM sync_logs WHERE step = 'MIGRATE'", [], |r| r.get(0)).unwrap();
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(
        meta["tables"]["instantly_leads_raw"]["rows_before"],
        meta["tables"]["instantly_leads_raw"]["rows_after"]
    );
    assert_eq!(meta["tables"]["instantly_leads_raw"]["rows_before"], 151);
    // Old workspace daily rows are the workspace scope; old overview rows keep their dates.
    assert_eq!(
        count(&c, "SELECT count(*) FROM instantly_daily_analytics_raw WHERE scope = 'workspace'") as usize,
        before[5].len()
    );
    let dates: Vec<String> = {
        let mut st = c.prepare("SELECT snapshot_date FROM instantly_overview_raw ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(dates.len(), 3);
    assert!(dates.contains(&"2025-10-30".to_owned()) && dates.contains(&"2025-10-31".to_owned()), "{dates:?}");
    // The triggers and the foreign keys (with their ON DELETE actions) survive the rebuild.
    assert_eq!(count(&c, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 7);
    assert_eq!(foreign_keys(&c), fks_before);
    assert_eq!(count(&c, "SELECT count(*) FROM pragma_foreign_key_check"), 0, "the migrated rows satisfy them");
    drop(c);

    // A second run changes nothing.
    let after_first = std::fs::read(&db).unwrap();
    let o = s.cmd(&["migrate", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    assert!(text(&o).0.contains("nothing to migrate"), "{}", text(&o).0);
    assert_eq!(backups(&s).len(), 1);
    assert_eq!(std::fs::read(&db).unwrap(), after_first);
}

#[test]
fn syncing_into_the_migrated_file_matches_a_fresh_database() {
    let (sim, s, db) = setup();
    let o = s.cmd(&["sync", "p.toml", "--json"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 0);
    let fresh = Scratch::new();
    fresh.write("p.toml", &pipeline(&sim.base, "data/f.db", ""));
    sync(&fresh, &[]);
    let m = Connection::open(&db).unwrap();
    let f = fresh.db("data/f.db");
    let descriptors = ferry_core::registry::Registry::global().unwrap().streams_of("instantly");
    for d in descriptors {
        let key = d.primary_key.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(" || '|' || ");
        // Compared as text: an old column keeps its declared type (email_type TEXT holds '1').
        let cols: Vec<String> =
            d.columns.iter().map(|c| format!("coalesce(CAST(\"{}\" AS TEXT), 'NULL')", c.name)).collect();
        let sql = format!("SELECT {key}, {} , raw_json FROM {}", cols.join(" || '|' || "), d.table);
        let read = |c: &Connection| -> BTreeMap<String, (String, Value)> {
            let mut st = c.prepare(&sql).unwrap();
            st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, serde_json::from_str(&r.get::<_, String>(2)?).unwrap()))))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let (mrows, frows) = (read(&m), read(&f));
        for (k, (cols, raw)) in &frows {
            let (mcols, mraw) = mrows.get(k).unwrap_or_else(|| panic!("{}: row {k} missing after migration", d.table));
            assert_eq!(mcols, cols, "{}: typed columns of {k}", d.table);
            let mut merged = mraw.clone();
            assert!(
                !ferry_core::record::merge(&mut merged, raw.clone()),
                "{}: raw_json of {k} differs beyond old-only fields",
                d.table
            );
        }
        // Old-only rows stay.
        assert!(mrows.len() >= frows.len());
    }
    assert_eq!(count(&m, "SELECT count(*) FROM instantly_leads_raw WHERE instantly_lead_id = 'gone-lead'"), 1);
    assert_eq!(
        count(
            &m,
            "SELECT count(*) FROM instantly_campaigns_raw WHERE json_extract(raw_json, '$.legacy_only') IS NOT NULL"
        ),
        count(&m, "SELECT count(*) FROM instantly_campaigns_raw")
    );
    // Old surrogate ids are stable; old extracted columns the API cannot fill keep their values.
    assert_eq!(count(&m, "SELECT count(*) FROM instantly_emails_raw WHERE opened_at = '2025-10-01 10:00:00'"), 20);
}

#[test]
fn a_kill_during_migration_leaves_the_old_file_or_the_migrated_one() {
    let _heavy = timing_lock();
    let (sim, s, db) = setup();
    // Enough old leads that the rebuild takes a while.
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
             INSERT INTO instantly_leads_raw (instantly_lead_id, email, lead_status, raw_json)
             SELECT 'bulk-' || i, 'bulk' || i || '@example.com', '1', json_object('id', 'bulk-' || i, 'n', i) FROM n;",
        )
        .unwrap();
    }
    let pristine = std::fs::read(&db).unwrap();
    let reset = || {
        std::fs::write(&db, &pristine).unwrap();
        let _ = std::fs::remove_file(format!("{}-wal", db.display()));
        let _ = std::fs::remove_file(format!("{}-shm", db.display()));
    };
    let started = std::time::Instant::now();
    expect_code(&s.cmd(&["migrate", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap(), 0);
    let full = started.elapsed().as_millis() as u64;
    let (mut old, mut migrated) = (0, 0);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for i in 0..24 {
        reset();
        let mut child = s.cmd(&["migrate", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).spawn().unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_millis(rng % full.max(10)));
        child.kill().ok();
        child.wait().unwrap();
        let c = Connection::open(&db).unwrap();
        let is_migrated =
            count(&c, "SELECT count(*) FROM pragma_table_info('instantly_daily_analytics_raw') WHERE name = 'scope'")
                == 1;
        let has_runs = count(&c, "SELECT count(*) FROM sqlite_master WHERE name = 'sync_runs'") == 1;
        let leads_migrated =
            count(&c, "SELECT count(*) FROM pragma_table_info('instantly_leads_raw') WHERE name = 'sync_batch_id'")
                == 1;
        assert_eq!(count(&c, "SELECT count(*) FROM instantly_leads_raw"), 40_151, "round {i}: rows lost");
        assert!(is_migrated == has_runs && is_migrated == leads_migrated, "round {i}: a mix of old and migrated");
        if is_migrated { migrated += 1 } else { old += 1 }
    }
    eprintln!("kills: {old} left the old file, {migrated} the migrated one (full migration {full} ms)");
    assert!(old > 0, "no kill landed before the migration committed");
    drop(sim);
}

#[test]
fn an_unexpected_file_is_refused_and_left_untouched() {
    // An extra column of a type ferry cannot map.
    let (_sim, s, db) = setup();
    Connection::open(&db).unwrap().execute_batch("ALTER TABLE instantly_accounts_raw ADD COLUMN shape BLOB").unwrap();
    let original = std::fs::read(&db).unwrap();
    let o = s.cmd(&["sync", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 1);
    let err = text(&o).1;
    assert!(
        err.contains("cannot take over table instantly_accounts_raw")
            && err.contains("shape")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), original);

    // A table it cannot map: a stream table without raw_json.
    let (_sim, s, db) = setup();
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "DROP TABLE instantly_overview_raw; CREATE TABLE instantly_overview_raw (id TEXT, total INTEGER)",
        )
        .unwrap();
    let original = std::fs::read(&db).unwrap();
    let o = s.cmd(&["migrate", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 1);
    assert!(text(&o).1.contains("no raw_json column"), "{}", text(&o).1);
    assert_eq!(std::fs::read(&db).unwrap(), original);

    // Another writer holds the database.
    let (_sim, s, db) = setup();
    let original = std::fs::read(&db).unwrap();
    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE; INSERT INTO instantly_overview_raw (raw_json) VALUES ('{}');").unwrap();
    let p = std::fs::read_to_string(s.path("p.toml"))
        .unwrap()
        .replace("type = \"sqlite\"", "type = \"sqlite\"\nbusy_timeout_ms = 300");
    s.write("p.toml", &p);
    let o = s.cmd(&["migrate", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
    expect_code(&o, 1);
    assert!(text(&o).1.contains("locked by another writer"), "{}", text(&o).1);
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let c = Connection::open(&db).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM sqlite_master WHERE name = 'sync_runs'"), 0, "nothing was changed");
    drop(c);
    assert_eq!(std::fs::read(&db).unwrap().len(), original.len());
}

/// The old file without its first two campaigns (and, through its foreign keys, their
/// leads and steps): the first sync meets campaigns that are new to it.
fn setup_without_two_campaigns(sim: &Sim) -> Scratch {
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&sim.base, "data/i.db", ""));
    let db = s.path("data/i.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    build_old(&db, sim);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    for id in sim.sim.campaign_ids().iter().take(2) {
        conn.execute("DELETE FROM instantly_campaigns_raw WHERE instantly_campaign_id = ?1", [id]).unwrap();
    }
    s
}

#[test]
fn dependent_streams_write_after_their_campaigns_on_a_taken_over_file() {
    let sim = Sim::start(small());
    let campaigns_listed = |sim: &Sim| sim.sim.requests().iter().filter(|r| r.path == "/api/v2/campaigns").count();
    for round in 0..20 {
        let s = setup_without_two_campaigns(&sim);
        sim.sim.clear_requests();
        let o = s.cmd(&["sync", "p.toml", "--json"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap();
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "round {round}\n{out}\n{err}");
        assert_eq!(campaigns_listed(&sim), 1, "round {round}: campaigns listed more than once");
        let db = s.db("data/i.db");
        let d = sim.sim.dataset();
        assert_eq!(count(&db, "SELECT count(*) FROM instantly_campaigns_raw"), d.campaigns.len() as i64);
        assert!(count(&db, "SELECT count(*) FROM instantly_leads_raw") > d.leads.len() as i64 - 1);
    }
    // A dependent stream selected alone reads its parent too, on a fresh takeover.
    let s = setup_without_two_campaigns(&sim);
    sim.sim.clear_requests();
    let o = s
        .cmd(&["sync", "p.toml", "--json", "--streams", "leads,steps"])
        .env("SIM_INSTANTLY_KEY", KEY)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["streams"]["campaigns"]["status"], "ok", "{summary}");
    assert_eq!(summary["streams"]["leads"]["failed"], 0, "{summary}");
    assert_eq!(campaigns_listed(&sim), 1);
}

#[test]
fn a_record_whose_parent_never_appears_is_refused_alone() {
    let sim = Sim::start(small());
    let s = setup_without_two_campaigns(&sim);
    expect_code(&s.cmd(&["migrate", "p.toml"]).env("SIM_INSTANTLY_KEY", KEY).output().unwrap(), 0);
    // A lead of a campaign nobody stores, written through the sink: refused with a reason,
    // its batch neighbours land.
    let db = s.db("data/i.db");
    let parent = sim.sim.campaign_ids()[0].clone();
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM instantly_campaigns_raw WHERE instantly_campaign_id = '{parent}'")),
        0
    );
    drop(db);
    let stream = ferry_core::registry::Registry::global().unwrap().stream("instantly", "leads").unwrap();
    let mut sink =
        ferry_sinks::sqlite::SqliteSink::open(&s.path("data/i.db"), std::time::Duration::from_secs(5)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    use ferry_core::sink::Sink;
    let record = |id: &str, campaign: Option<&str>| {
        let mut v = json!({"id": id, "email": format!("{id}@example.com")});
        if let Some(c) = campaign {
            v["campaign"] = json!(c);
        }
        ferry_core::sink::SinkRecord::new(stream, v.as_object().unwrap().clone())
    };
    let outcome = rt
        .block_on(async {
            sink.init().await?;
            sink.prepare(&[stream]).await?;
            sink.write(ferry_core::sink::WriteBatch {
                pipeline: "inst".into(),
                batch_id: "b1".into(),
                stream,
                records: vec![record("orphan-1", Some(&parent)), record("fine-1", None), record("fine-2", None)],
                state: None,
                logs: Vec::new(),
                dry_run: false,
            })
            .await
        })
        .unwrap();
    assert_eq!((outcome.stats.inserted, outcome.stats.failed), (2, 1), "{outcome:?}");
    assert!(outcome.failures[0].reason.contains("parent"), "{:?}", outcome.failures);
}
