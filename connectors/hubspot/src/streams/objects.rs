//! Contacts, companies and deals.
//!
//! - First run and `--all`: the list endpoint (`limit=100`, `after`), live then archived.
//! - Incremental: the search endpoint on the last-modified property, `GTE` the saved
//!   cursor minus a lookback and `LT` the run's start, sorted ascending, `limit=200`.
//!   A search stops at 10,000 results, so before a window reaches that, the next search
//!   starts from the last record seen: later timestamps, or the same timestamp with a
//!   greater id (`hs_object_id`). Nothing is missed or repeated at the seam.
//! - Archived records never appear in search: each run lists `archived=true` and marks
//!   them (`archived`, `archived_at`).
//! - The cursor, saved with each page, is the latest modification time seen, never past
//!   the run's start.

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::record::Record;
use ferry_core::source::{Checkpoint, ReadRequest, RunMode, SourceBatch};
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

fn cursor(t: DateTime<Utc>) -> Value {
    json!({"since": t.to_rfc3339_opts(SecondsFormat::Millis, true)})
}

fn filter(prop: &str, op: &str, value: String) -> Value {
    json!({"propertyName": prop, "operator": op, "value": value})
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
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let properties = shared.properties(object).await?;
        let base = format!("{}/{object}", shared.config.objects_path);
        let mut latest = saved;
        match saved {
            None => {
                // Everything, by the list endpoint.
                let mut after: Option<String> = None;
                loop {
                    let mut req = Request::get(base.clone()).query("limit", "100").query("properties", properties.join(","));
                    if let Some(a) = &after {
                        req = req.query("after", a.clone());
                    }
                    let (results, next) = shared.client.page(req, &budget).await?;
                    let records = to_records(results);
                    for r in &records {
                        latest = latest.max(modified(r, prop));
                    }
                    let empty = records.is_empty();
                    yield SourceBatch::records(records);
                    match next {
                        Some(n) if !empty && after.as_deref() != Some(n.as_str()) => after = Some(n),
                        _ => break,
                    }
                }
            }
            Some(since) => {
                // Changes since the cursor, by search, restarting before the 10,000 cap.
                let since = since - lookback;
                let ms = |t: DateTime<Utc>| t.timestamp_millis().to_string();
                let mut seam: Option<(DateTime<Utc>, String)> = None;
                'windows: loop {
                    let groups = match &seam {
                        None => json!([{"filters": [filter(prop, "GTE", ms(since)), filter(prop, "LT", ms(run_start))]}]),
                        Some((t, id)) => json!([
                            {"filters": [filter(prop, "GT", ms(*t)), filter(prop, "LT", ms(run_start))]},
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
                            Some(t) => batch.with_checkpoint(Checkpoint::Set(cursor(t.min(run_start)))),
                            None => batch,
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
        // Archived records never appear in search: list them and mark them.
        let mut after: Option<String> = None;
        loop {
            let mut req = Request::get(base.clone()).query("limit", "100").query("archived", "true");
            if let Some(a) = &after {
                req = req.query("after", a.clone());
            }
            let (results, next) = shared.client.page(req, &budget).await?;
            let records = to_records(results);
            let empty = records.is_empty();
            yield SourceBatch::records(records);
            match next {
                Some(n) if !empty && after.as_deref() != Some(n.as_str()) => after = Some(n),
                _ => break,
            }
        }
        if let Some(t) = latest {
            yield SourceBatch::default().with_checkpoint(Checkpoint::Set(cursor(t.min(run_start))));
        }
    }
    .boxed()
}
