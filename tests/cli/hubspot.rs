//! The HubSpot connector end to end against its simulator: a new source as a crate, with
//! no HubSpot-specific code in core.

use std::collections::BTreeSet;

use ferry_hubspot::sim::{MutateSpec, ObjectType, SimConfig, SimHandle, Simulator};

use crate::common::*;

const TOKEN: &str = "hs-sim-token-8e41";

struct Hs {
    sim: Simulator,
    base: String,
    handle: Option<SimHandle>,
    rt: tokio::runtime::Runtime,
}

impl Hs {
    fn start(cfg: SimConfig) -> Self {
        Hs::start_at(cfg, chrono::Utc::now() - chrono::Duration::hours(2))
    }

    /// Same seed and `now`, same data.
    fn start_at(cfg: SimConfig, now: chrono::DateTime<chrono::Utc>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let sim = Simulator::new(SimConfig { api_token: TOKEN.into(), now: Some(now), ..cfg });
        let handle = rt.block_on(sim.serve(0)).unwrap();
        let base = handle.base_url();
        Hs { sim, base, handle: Some(handle), rt }
    }
}

impl Drop for Hs {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

fn pipeline(base: &str) -> String {
    format!(
        "[pipeline]\nname = \"hs\"\nconcurrency = 4\n[source]\nconnector = \"hubspot\"\nbase_url = \"{base}\"\naccess_token = \"${{HS_TOKEN}}\"\nlookback_minutes = 1\n[source.rate_limits.app]\nper_second = 1000\n[source.rate_limits.search]\nper_second = 1000\n[sink]\ntype = \"sqlite\"\npath = \"data/h.db\"\n[logging]\ndir = \"logs\"\n"
    )
}

fn sync(s: &Scratch, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["sync", "p.toml", "--json"];
    a.extend_from_slice(args);
    let o = s.cmd(&a).env("HS_TOKEN", TOKEN).output().unwrap();
    expect_code(&o, 0);
    serde_json::from_str(&text(&o).0).unwrap()
}

fn ids(db: &rusqlite::Connection, sql: &str) -> BTreeSet<String> {
    let mut st = db.prepare(sql).unwrap();
    st.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

fn rows(db: &rusqlite::Connection, table: &str) -> Vec<(String, String)> {
    let mut st = db.prepare(&format!("SELECT id, raw_json FROM {table} ORDER BY id")).unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn a_property_list_too_long_for_one_url_is_fetched_in_pieces_and_merged_by_id() {
    let now = chrono::Utc::now() - chrono::Duration::hours(2);
    let cfg = SimConfig { contacts: 230, companies: 30, deals: 30, ..SimConfig::default() };
    // The same data twice: one simulator refuses URIs over 140 characters (every full
    // property list is longer), the other has no limit.
    let strict = Hs::start_at(SimConfig { max_uri_len: Some(140), ..cfg.clone() }, now);
    let open = Hs::start_at(cfg, now);

    let s = Scratch::new();
    s.write("p.toml", &pipeline(&strict.base));
    let o = s.cmd(&["sync", "p.toml"]).env("HS_TOKEN", TOKEN).output().unwrap();
    expect_code(&o, 3);
    let (out, err) = text(&o);
    let all = format!("{out}{err}");
    assert!(all.contains("414") && all.contains("properties_chunk_chars"), "{all}");

    let chunked =
        pipeline(&strict.base).replace("lookback_minutes = 1\n", "lookback_minutes = 1\nproperties_chunk_chars = 40\n");
    s.write("p.toml", &chunked.replace("data/h.db", "data/chunked.db"));
    sync(&s, &[]);
    let list_requests = strict
        .sim
        .requests()
        .iter()
        .filter(|r| {
            r.path == "/crm/v3/objects/contacts" && r.query.as_deref().is_some_and(|q| q.contains("properties="))
        })
        .count();
    assert!(list_requests >= 3 * 3, "3 pages of contacts, each in at least 3 pieces: {list_requests} requests");

    s.write("p.toml", &pipeline(&open.base).replace("data/h.db", "data/whole.db"));
    sync(&s, &[]);
    let (chunked, whole) = (s.db("data/chunked.db"), s.db("data/whole.db"));
    for table in ["hubspot_contacts", "hubspot_companies", "hubspot_deals"] {
        let got = rows(&chunked, table);
        assert!(!got.is_empty(), "{table}");
        assert_eq!(got, rows(&whole, table), "{table}: merged pieces differ from whole records");
    }
}

#[test]
fn full_then_incremental_sync_with_archived_records_marked() {
    let hs = Hs::start(SimConfig::default());
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&hs.base));
    let first = sync(&s, &[]);
    let db = s.db("data/h.db");
    let d = hs.sim.dataset();
    for (t, table) in [
        (ObjectType::Contacts, "hubspot_contacts"),
        (ObjectType::Companies, "hubspot_companies"),
        (ObjectType::Deals, "hubspot_deals"),
    ] {
        let live: BTreeSet<String> = d.ids(t).into_iter().collect();
        assert_eq!(ids(&db, &format!("SELECT id FROM {table} WHERE archived = 0")), live, "{table}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM hubspot_owners") as usize, d.owners.len());
    assert_eq!(count(&db, "SELECT count(*) FROM hubspot_contacts WHERE email IS NULL AND archived = 0"), 0);
    assert!(first["http"]["requests"].as_u64().unwrap() > 0);

    let report = hs.sim.mutate(MutateSpec {
        new_contacts: 7,
        update_contacts: 11,
        archive_contacts: 3,
        update_deals: 4,
        archive_companies: 2,
        ..MutateSpec::default()
    });
    hs.sim.clear_requests();
    let second = sync(&s, &[]);
    // Only search (and the archived listing, properties, owners): no full list of live objects.
    for r in hs.sim.requests() {
        let q = r.query.clone().unwrap_or_default();
        if r.method == "GET" && r.path.starts_with("/crm/v3/objects/") {
            assert!(q.contains("archived=true"), "incremental run listed live objects: {} {q}", r.path);
        }
    }
    assert_eq!(second["streams"]["contacts"]["inserted"].as_u64().unwrap() as usize, report.new_ids.contacts.len());
    // Updated: the changed ones and the newly archived ones (now marked).
    let changed = report.updated_ids.contacts.len() + report.archived_ids.contacts.len();
    assert_eq!(second["streams"]["contacts"]["updated"].as_u64().unwrap() as usize, changed);
    assert_eq!(second["streams"]["deals"]["updated"].as_u64().unwrap() as usize, report.updated_ids.deals.len());
    let archived = ids(&db, "SELECT id FROM hubspot_contacts WHERE archived = 1 AND archived_at IS NOT NULL");
    assert_eq!(archived, report.archived_ids.contacts.iter().cloned().collect());
    let archived = ids(&db, "SELECT id FROM hubspot_companies WHERE archived = 1");
    assert_eq!(archived, report.archived_ids.companies.iter().cloned().collect());
}

#[test]
fn more_than_ten_thousand_changes_in_one_window_land_exactly_once() {
    let _heavy = timing_lock();
    let hs = Hs::start(SimConfig { contacts: 10_600, companies: 5, deals: 5, ..SimConfig::default() });
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&hs.base).replace("concurrency = 4", "concurrency = 4\nstreams = [\"contacts\"]"));
    sync(&s, &[]);
    let report = hs.sim.mutate(MutateSpec { same_timestamp_contacts: 10_300, ..MutateSpec::default() });
    hs.sim.clear_requests();
    let r = sync(&s, &[]);
    assert_eq!(r["streams"]["contacts"]["updated"].as_u64().unwrap() as usize, report.updated_ids.contacts.len());
    assert_eq!(r["streams"]["contacts"]["failed"], 0);
    assert!(hs.sim.requests().iter().all(|x| x.status == 200), "a search crossed the 10,000 cap");
    let searches = hs.sim.requests().iter().filter(|x| x.path.ends_with("/search")).count();
    assert!(searches >= 52, "two windows of searches expected, got {searches}");
    let db = s.db("data/h.db");
    assert_eq!(count(&db, "SELECT count(*) FROM hubspot_contacts"), 10_600);
    let batch = r["batch_id"].as_str().unwrap();
    let updated = ids(&db, &format!("SELECT id FROM hubspot_contacts WHERE sync_batch_id = '{batch}'"));
    assert_eq!(updated, report.updated_ids.contacts.iter().cloned().collect(), "every changed contact exactly once");
}

#[test]
fn the_example_pipeline_syncs_against_the_simulator() {
    let hs = Hs::start(SimConfig::default());
    let s = Scratch::new();
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hubspot.toml")).unwrap();
    assert!(example.contains("http://127.0.0.1:8717"));
    s.write("p.toml", &example.replace("http://127.0.0.1:8717", &hs.base).replace("hs-sim-token", TOKEN));
    let o = s.cmd(&["sync", "p.toml", "--quiet"]).output().unwrap();
    expect_code(&o, 0);
    let db = s.db("data/hubspot-demo.db");
    assert_eq!(
        count(&db, "SELECT count(*) FROM hubspot_contacts") as usize,
        hs.sim.dataset().ids(ObjectType::Contacts).len()
    );
}

#[test]
fn check_reports_a_bad_token() {
    let hs = Hs::start(SimConfig::default());
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&hs.base));
    let o = s.cmd(&["check", "p.toml"]).env("HS_TOKEN", "wrong-token-1234").output().unwrap();
    expect_code(&o, 1);
    let err = text(&o).1;
    assert!(
        err.contains("401") && err.contains("HUBSPOT_ACCESS_TOKEN") && err.contains("INVALID_AUTHENTICATION"),
        "{err}"
    );
    assert!(err.contains("correlationId"), "{err}");
    assert!(!err.contains("wrong-token-1234"));
    let o = s.cmd(&["check", "p.toml"]).env("HS_TOKEN", TOKEN).output().unwrap();
    expect_code(&o, 0);
}

/// The stored `raw_json` of every row of `table`, by id.
fn stored(db: &rusqlite::Connection, table: &str) -> std::collections::BTreeMap<String, serde_json::Value> {
    rows(db, table).into_iter().map(|(id, raw)| (id, serde_json::from_str(&raw).unwrap())).collect()
}

const OBJECT_TABLES: [(ObjectType, &str); 3] = [
    (ObjectType::Contacts, "hubspot_contacts"),
    (ObjectType::Companies, "hubspot_companies"),
    (ObjectType::Deals, "hubspot_deals"),
];

#[test]
fn records_archived_before_the_first_sync_keep_every_property_or_the_pipelines_list() {
    let cfg = SimConfig { contacts: 40, companies: 20, deals: 30, custom_properties: 120, ..SimConfig::default() };
    let hs = Hs::start(cfg);
    // Archived before ferry ever saw them: only the archived listing returns them.
    hs.sim.mutate(MutateSpec { archive_contacts: 3, archive_companies: 2, archive_deals: 4, ..MutateSpec::default() });
    let d = hs.sim.dataset();
    assert_eq!(d.archived.deals[0]["properties"].as_object().unwrap().len(), 129);

    let s = Scratch::new();
    s.write("p.toml", &pipeline(&hs.base));
    sync(&s, &[]);
    let db = s.db("data/h.db");
    for (t, table) in OBJECT_TABLES {
        let rows = stored(&db, table);
        assert_eq!(d.archived.get(t).len(), d.archived_ids.get(t).len());
        for o in d.archived.get(t) {
            let id = o["id"].as_str().unwrap();
            assert_eq!(&rows[id], o, "{table} {id}: archived record stored without all its properties");
        }
    }

    // A pipeline's `properties` list applies to archived records too: exactly those (and
    // the three HubSpot always returns).
    let wanted = [
        (ObjectType::Contacts, vec!["email", "phone", "custom_003"]),
        (ObjectType::Companies, vec!["name", "city", "custom_050"]),
        (ObjectType::Deals, vec!["dealname", "hubspot_owner_id", "custom_007", "custom_120"]),
    ];
    let list = |v: &[&str]| v.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    let properties = wanted.iter().map(|(t, v)| format!("{t} = [{}]\n", list(v))).collect::<String>();
    let p = pipeline(&hs.base)
        .replace("data/h.db", "data/listed.db")
        .replace("[sink]", &format!("[source.properties]\n{properties}[sink]"));
    s.write("p.toml", &p);
    sync(&s, &[]);
    let db = s.db("data/listed.db");
    for (t, names) in &wanted {
        let table = OBJECT_TABLES.iter().find(|(x, _)| x == t).unwrap().1;
        let rows = stored(&db, table);
        let mut expected: BTreeSet<&str> = names.iter().copied().collect();
        expected.extend(["createdate", t.modified_property(), "hs_object_id"]);
        for o in d.archived.get(*t) {
            let id = o["id"].as_str().unwrap();
            let props = rows[id]["properties"].as_object().unwrap();
            assert_eq!(props.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected, "{table} {id}");
            for (k, v) in props {
                assert_eq!(v, &o["properties"][k], "{table} {id} {k}");
            }
        }
    }
}

/// The filters of the first group of every search of `object`, in request order.
fn search_filters(hs: &Hs, object: ObjectType) -> Vec<Vec<(String, String, String)>> {
    let path = format!("/crm/v3/objects/{object}/search");
    hs.sim
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            let body = r.body.clone().unwrap_or_default();
            body["filterGroups"][0]["filters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                    (s("propertyName"), s("operator"), s("value"))
                })
                .collect()
        })
        .collect()
}

/// Live objects of `t` whose last modification falls in `[from, to)`.
fn modified_between(
    d: &ferry_hubspot::sim::Dataset,
    t: ObjectType,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> usize {
    d.objects
        .get(t)
        .iter()
        .filter(|o| {
            let at: chrono::DateTime<chrono::Utc> = o["updatedAt"].as_str().unwrap().parse().unwrap();
            at >= from && at < to
        })
        .count()
}

fn logged(db: &rusqlite::Connection, batch: &str, needle: &str) -> i64 {
    count(db, &format!("SELECT count(*) FROM sync_logs WHERE batch_id = '{batch}' AND message LIKE '%{needle}%'"))
}

fn notices(summary: &serde_json::Value) -> Vec<String> {
    summary["notices"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn midnight(day: chrono::NaiveDate) -> chrono::DateTime<chrono::Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

#[test]
fn rollback_searches_again_from_the_date_and_leaves_cursors_where_a_fresh_sync_would() {
    let hs = Hs::start(SimConfig::default());
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&hs.base));
    sync(&s, &[]);
    hs.sim.mutate(MutateSpec { update_contacts: 5, update_companies: 2, update_deals: 3, ..MutateSpec::default() });
    sync(&s, &[]);

    let day = (hs.sim.now() - chrono::Duration::days(60)).date_naive();
    hs.sim.clear_requests();
    let r = sync(&s, &[&format!("--rollback={day}")]);
    // The pipeline's lookback (1 minute) applies behind the rolled-back cursor as behind any.
    let since = midnight(day) - chrono::Duration::minutes(1);
    let d = hs.sim.dataset();
    for (t, _) in OBJECT_TABLES {
        let searches = search_filters(&hs, t);
        assert!(!searches.is_empty(), "{t}: no search after --rollback");
        let from = (t.modified_property().to_owned(), "GTE".to_owned(), since.timestamp_millis().to_string());
        assert_eq!(searches[0][0], from, "{t}: the search starts at the rollback date");
        let expected = modified_between(&d, t, since, chrono::Utc::now());
        assert!(expected > 10, "{t}: {expected}");
        assert_eq!(r["streams"][t.as_str()]["records"].as_u64().unwrap() as usize, expected, "{t}");
    }
    // owners is fetched whole every run: the flag is reported, once, not silently dropped.
    let n = notices(&r);
    assert_eq!(n.iter().filter(|n| n.contains("ignored for full-refresh stream owners")).count(), 1, "{n:?}");
    assert!(n.iter().all(|n| n.contains("--rollback")), "{n:?}");
    let db = s.db("data/h.db");
    assert_eq!(logged(&db, r["batch_id"].as_str().unwrap(), "ignored for full-refresh stream owners"), 1);

    // A fresh sync of the same data leaves the same cursors.
    let fresh = Scratch::new();
    fresh.write("p.toml", &pipeline(&hs.base));
    sync(&fresh, &[]);
    let cursors = |db: &rusqlite::Connection| {
        table_rows(db, "sync_state")
            .into_iter()
            .map(|r| r.split('|').take(4).collect::<Vec<_>>().join("|"))
            .collect::<Vec<_>>()
    };
    let (rolled, fresh) = (cursors(&db), cursors(&fresh.db("data/h.db")));
    assert_eq!(rolled.len(), 3, "{rolled:?}");
    assert_eq!(rolled, fresh);
}

#[test]
fn from_to_and_last_search_their_window_and_leave_cursors_alone() {
    let hs = Hs::start(SimConfig::default());
    let s = Scratch::new();
    s.write("p.toml", &pipeline(&hs.base));
    sync(&s, &[]);
    hs.sim.mutate(MutateSpec { update_contacts: 5, archive_contacts: 2, update_deals: 3, ..MutateSpec::default() });
    let db = s.db("data/h.db");
    let before = table_rows(&db, "sync_state");

    let now = hs.sim.now();
    let (from, to) = ((now - chrono::Duration::days(90)).date_naive(), (now - chrono::Duration::days(30)).date_naive());
    hs.sim.clear_requests();
    let r = sync(&s, &[&format!("--from={from}"), &format!("--to={to}")]);
    assert_eq!(table_rows(&db, "sync_state"), before, "a window moved the saved cursors");
    // --to names a day and includes it.
    let (lo, hi) = (midnight(from), midnight(to) + chrono::Duration::days(1));
    let d = hs.sim.dataset();
    for (t, _) in OBJECT_TABLES {
        let searches = search_filters(&hs, t);
        assert!(!searches.is_empty(), "{t}: no search for the window");
        let prop = t.modified_property().to_owned();
        assert_eq!(searches[0][0], (prop.clone(), "GTE".into(), lo.timestamp_millis().to_string()), "{t}");
        assert_eq!(searches[0][1], (prop, "LT".into(), hi.timestamp_millis().to_string()), "{t}");
        // Archived records outside the window are not part of it either.
        assert_eq!(r["streams"][t.as_str()]["records"].as_u64().unwrap() as usize, modified_between(&d, t, lo, hi));
    }
    let n = notices(&r);
    assert!(
        n.iter().any(|n| n.contains("--from")
            && n.contains("--to")
            && n.contains("ignored for full-refresh stream owners")),
        "{n:?}"
    );
    assert_eq!(logged(&db, r["batch_id"].as_str().unwrap(), "ignored for full-refresh stream owners"), 1);

    hs.sim.clear_requests();
    let started = chrono::Utc::now();
    sync(&s, &["--last=30d", "--streams", "contacts"]);
    assert_eq!(table_rows(&db, "sync_state"), before, "--last moved the saved cursors");
    let searches = search_filters(&hs, ObjectType::Contacts);
    assert!(!searches.is_empty());
    let gte: i64 = searches[0][0].2.parse().unwrap();
    let expect = (started - chrono::Duration::days(30)).timestamp_millis();
    assert!((gte - expect).abs() < 60_000, "{gte} vs {expect}");
}

/// A server whose list endpoint hands out cursors A, B, A, ... (each page with new records),
/// or A, A when `repeat` is set; archived lists are empty.
fn looping_list_server(repeat: bool) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let served = served.clone();
        async move {
            let query = uri.query().unwrap_or_default().to_owned();
            if query.contains("archived=true") {
                return axum::Json(serde_json::json!({"results": []}));
            }
            let n = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let next = if repeat || !query.contains("after=A") { "A" } else { "B" };
            axum::Json(serde_json::json!({
                "results": [{"id": n.to_string(), "properties": {"email": format!("c{n}@example.com"), "lastmodifieddate": "2025-01-01T00:00:00Z"}, "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z", "archived": false}],
                "paging": {"next": {"after": next}}
            }))
        }
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    (base, rt)
}

#[test]
fn a_list_that_hands_out_a_cursor_again_fails_the_stream_instead_of_looping_or_ending_early() {
    for repeat in [false, true] {
        let (base, _rt) = looping_list_server(repeat);
        let s = Scratch::new();
        let toml = pipeline(&base)
            .replace("[pipeline]\n", "[pipeline]\ntimeout = \"20s\"\n")
            .replace("lookback_minutes = 1\n", "lookback_minutes = 1\nproperties = { contacts = [\"email\"] }\n");
        s.write("p.toml", &toml);
        let started = std::time::Instant::now();
        let o = s.cmd(&["sync", "p.toml", "--streams", "contacts"]).env("HS_TOKEN", TOKEN).output().unwrap();
        let err = text(&o).1;
        expect_code(&o, 1);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "repeat {repeat}: took {:?}",
            started.elapsed()
        );
        assert!(err.contains("returned cursor A again"), "repeat {repeat}: {err}");
        // The pages read before the loop are kept.
        let stored = count(&s.db("data/h.db"), "SELECT count(*) FROM hubspot_contacts");
        assert_eq!(stored, if repeat { 2 } else { 3 }, "repeat {repeat}");
    }
}
