//! Contacts, companies and deals.
//!
//! - First run and `--all`: the list endpoint (`limit=100`, `after`), live then archived.
//!   A property list longer than `properties_chunk_chars` is asked for in pieces, each
//!   page once per piece, merged by id (HubSpot answers 414 past its URL limit).
//! - Incremental: the search endpoint on the last-modified property, `GTE` the saved
//!   cursor minus a lookback and `LT` the run's start, sorted ascending, `limit=200`.
//!   A search stops at 10,000 results, so before a window reaches that, the next search
//!   starts from the last record seen: later timestamps, or the same timestamp with a
//!   greater id (`hs_object_id`). Nothing is missed or repeated at the seam.
//! - `--from/--to/--last`: the search between the window's bounds (at most the run's
//!   start), whatever the saved cursor, which stays where it is.
//! - `--rollback=D`: the engine sets the cursor to D (`cursor`), so the run searches from
//!   D minus the lookback.
//! - Archived records never appear in search: each run lists `archived=true` with the
//!   same properties as the live listing (HubSpot answers only its default properties to
//!   a request naming none), in pieces when the list is long, and marks them (`archived`,
//!   `archived_at`). A window keeps those archived inside it.
//! - The cursor, saved with each page, is the latest modification time seen, never past
//!   the run's start.

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::{Request, RetryBudget};
use ferry_core::record::Record;
use ferry_core::source::{Checkpoint, CursorGuard, ReadRequest, RunMode, SourceBatch};
use ferry_core::typed::parse_timestamp;
use serde_json::{Value, json};

use crate::Shared;

/// The search cap of HubSpot.
pub const SEARCH_CAP: usize = 10_000;
/// Search page size.
pub const SEARCH_PAGE: usize = 200;

/// The last-modified property of an object type.
pub fn cursor_property(object: &str) -> &'static str {
    if object == "contacts" { "lastmodifieddate" } else { "hs_lastmodifieddate" }
}

fn modified(r: &Record, prop: &str) -> Option<DateTime<Utc>> {
    r.get("properties")
        .and_then(|p| p.get(prop))
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .or_else(|| r.get("updatedAt").and_then(Value::as_str).and_then(parse_timestamp))
}

fn to_records(items: Vec<Value>) -> Vec<Record> {
    items
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Splits a property list into comma-joined values of at most `max` characters (a single
/// longer name stands alone).
pub fn property_chunks(properties: &[String], max: usize) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for p in properties {
        if !current.is_empty() && current.len() + 1 + p.len() > max {
            chunks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(p);
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Adds the `properties` of `more` to the records of `base` with the same id. Records of
/// `more` that `base` lacks (created between the two requests) are left out; they come
/// whole in a later run.
fn merge_properties(base: &mut [Record], more: Vec<Record>) {
    let mut by_id: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, r) in base.iter().enumerate() {
        if let Some(id) = r.get("id").and_then(Value::as_str) {
            by_id.insert(id.to_owned(), i);
        }
    }
    for mut m in more {
        let Some(&i) = m.get("id").and_then(Value::as_str).and_then(|id| by_id.get(id)) else { continue };
        let Some(Value::Object(extra)) = m.remove("properties") else { continue };
        match base[i].get_mut("properties") {
            Some(Value::Object(props)) => props.extend(extra),
            _ => {
                base[i].insert("properties".into(), Value::Object(extra));
            }
        }
    }
}

/// A 414 names the setting that avoids it.
fn uri_too_long(e: SourceError) -> SourceError {
    if e.status() == Some(414) {
        SourceError::Other(format!(
            "{e}; the property list is too long for one URL: lower `properties_chunk_chars` in [source] (default 15000) or name fewer `properties`"
        ))
    } else {
        e
    }
}

/// The saved cursor: every modification up to `t` is synced (also what `--rollback`
/// sets).
pub(crate) fn cursor(t: DateTime<Utc>) -> Value {
    json!({"since": t.to_rfc3339_opts(SecondsFormat::Millis, true)})
}

fn filter(prop: &str, op: &str, value: String) -> Value {
    json!({"propertyName": prop, "operator": op, "value": value})
}

/// One page of the list endpoint (live or archived) with every wanted property: one
/// request per piece of the property list, merged by id.
async fn list_page(
    shared: &Shared,
    base: &str,
    chunks: &[String],
    after: Option<&str>,
    archived: bool,
    budget: &RetryBudget,
) -> Result<(Vec<Record>, Option<String>), SourceError> {
    let request = |chunk: &str| {
        let mut req = Request::get(base.to_owned()).query("limit", "100");
        if archived {
            req = req.query("archived", "true");
        }
        req = req.query("properties", chunk.to_owned());
        if let Some(a) = after {
            req = req.query("after", a.to_owned());
        }
        req
    };
    let (results, next) = shared.client.page(request(&chunks[0]), budget).await.map_err(uri_too_long)?;
    let mut records = to_records(results);
    for chunk in &chunks[1..] {
        let (more, _) = shared.client.page(request(chunk), budget).await.map_err(uri_too_long)?;
        merge_properties(&mut records, to_records(more));
    }
    Ok((records, next))
}

/// How a run reads live records.
enum Plan {
    /// Everything, by the list endpoint (first run, `--all`).
    List,
    /// Changes by search: `from` (inclusive, none: unbounded) to `to` (exclusive).
    Search {
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        /// Whether the cursor moves (not for `--from/--to/--last`, which leave it alone).
        checkpoint: bool,
    },
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    let object = request.stream.name;
    let prop = cursor_property(object);
    let saved = match request.mode {
        RunMode::Full => None,
        RunMode::Incremental => {
            request.state.as_ref().and_then(|s| s.get("since")).and_then(Value::as_str).and_then(parse_timestamp)
        }
    };
    let run_start = request.now;
    let lookback = Duration::minutes(i64::from(shared.config.lookback_minutes));
    let window = request.window;
    // A window (--from/--to/--last) searches between its bounds whatever the saved
    // cursor, and leaves it alone.
    let plan = if window.is_bounded() {
        Plan::Search { from: window.from, to: window.to.map_or(run_start, |t| t.min(run_start)), checkpoint: false }
    } else {
        match saved {
            None => Plan::List,
            Some(since) => Plan::Search { from: Some(since - lookback), to: run_start, checkpoint: true },
        }
    };
    let in_window = move |t: Option<DateTime<Utc>>| {
        !window.is_bounded()
            || t.is_some_and(|t| window.from.is_none_or(|f| t >= f) && window.to.is_none_or(|to| t < to))
    };
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let properties = shared.properties(object).await?;
        let chunks = property_chunks(&properties, shared.config.properties_chunk_chars);
        let base = format!("{}/{object}", shared.config.objects_path);
        let mut latest = saved;
        let mut checkpoints = true;
        match plan {
            Plan::List => {
                // A property list too long for one URL is asked for in pieces, page by
                // page, and merged by id.
                let mut after: Option<String> = None;
                let mut guard = CursorGuard::default();
                loop {
                    let (records, next) = list_page(&shared, &base, &chunks, after.as_deref(), false, &budget).await?;
                    // A page is kept even when its next cursor loops: its records are new.
                    let looped = guard.check(&format!("GET {base}"), after.as_deref(), &records, next.as_deref());
                    for r in &records {
                        latest = latest.max(modified(r, prop));
                    }
                    let empty = records.is_empty();
                    yield SourceBatch::records(records);
                    looped?;
                    match next {
                        Some(n) if !empty => after = Some(n),
                        _ => break,
                    }
                }
            }
            Plan::Search { from, to, checkpoint } => {
                // Changes between the bounds, by search, restarting before the 10,000 cap.
                checkpoints = checkpoint;
                let ms = |t: DateTime<Utc>| t.timestamp_millis().to_string();
                let mut seam: Option<(DateTime<Utc>, String)> = None;
                'windows: loop {
                    if from.is_some_and(|f| f >= to) {
                        break;
                    }
                    let groups = match &seam {
                        None => {
                            let mut filters: Vec<Value> = from.map(|f| filter(prop, "GTE", ms(f))).into_iter().collect();
                            filters.push(filter(prop, "LT", ms(to)));
                            json!([{"filters": filters}])
                        }
                        Some((t, id)) => json!([
                            {"filters": [filter(prop, "GT", ms(*t)), filter(prop, "LT", ms(to))]},
                            {"filters": [filter(prop, "EQ", ms(*t)), filter("hs_object_id", "GT", id.clone())]},
                        ]),
                    };
                    let mut offset = 0usize;
                    loop {
                        let body = json!({
                            "filterGroups": groups,
                            "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
                            "properties": properties,
                            "limit": SEARCH_PAGE,
                            "after": offset.to_string(),
                        });
                        let (results, next) = shared.client.page(Request::post(format!("{base}/search"), body), &budget).await?;
                        let records = to_records(results);
                        let last = records.last().and_then(|r| Some((modified(r, prop)?, r.get("id")?.as_str()?.to_owned())));
                        for r in &records {
                            latest = latest.max(modified(r, prop));
                        }
                        let n = records.len();
                        let batch = SourceBatch::records(records);
                        // Ascending order: everything up to the latest time seen is in.
                        yield match latest {
                            Some(t) if checkpoint => batch.with_checkpoint(Checkpoint::Set(cursor(t.min(run_start)))),
                            _ => batch,
                        };
                        if next.is_none() || n == 0 {
                            break 'windows;
                        }
                        offset += n;
                        if offset + SEARCH_PAGE > SEARCH_CAP {
                            // The next page would cross the cap: a new search from the seam.
                            match last {
                                Some(l) if seam.as_ref() != Some(&l) => {
                                    seam = Some(l);
                                    continue 'windows;
                                }
                                _ => Err(SourceError::Pagination {
                                    endpoint: format!("POST {base}/search"),
                                    message: "more than 10,000 results share one modification time and id range; cannot page further".into(),
                                })?,
                            }
                        }
                    }
                }
            }
        }
        // Archived records never appear in search: list them, with the same properties as
        // the live ones (HubSpot answers only its default ones to a request naming none),
        // and mark them. A window keeps those archived inside it.
        let mut after: Option<String> = None;
        let mut guard = CursorGuard::default();
        loop {
            let (mut records, next) = list_page(&shared, &base, &chunks, after.as_deref(), true, &budget).await?;
            let looped = guard.check(&format!("GET {base}?archived=true"), after.as_deref(), &records, next.as_deref());
            let empty = records.is_empty();
            records.retain(|r| in_window(archived_at(r)));
            yield SourceBatch::records(records);
            looped?;
            match next {
                Some(n) if !empty => after = Some(n),
                _ => break,
            }
        }
        if checkpoints && let Some(t) = latest {
            yield SourceBatch::default().with_checkpoint(Checkpoint::Set(cursor(t.min(run_start))));
        }
    }
    .boxed()
}

/// When a record was archived (`archivedAt`, else its last update).
fn archived_at(r: &Record) -> Option<DateTime<Utc>> {
    r.get("archivedAt")
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .or_else(|| r.get("updatedAt").and_then(Value::as_str).and_then(parse_timestamp))
}

#[cfg(test)]
mod tests {
    use super::property_chunks;

    #[test]
    fn property_chunks_stay_within_the_limit_and_keep_every_name_once() {
        let props: Vec<String> =
            ["a", "bb", "ccc", "dddd", "a_name_longer_than_the_limit", "e"].map(String::from).into();
        let chunks = property_chunks(&props, 8);
        assert_eq!(chunks, ["a,bb,ccc", "dddd", "a_name_longer_than_the_limit", "e"]);
        assert!(chunks.iter().filter(|c| c.contains(',')).all(|c| c.len() <= 8));
        assert_eq!(chunks.join(",").split(',').collect::<Vec<_>>(), props);
        assert_eq!(property_chunks(&props, 15_000), [props.join(",")]);
        assert_eq!(property_chunks(&[], 10), [""]);
    }
}
