//! `emails`: GET /emails (mode=emode_all, sort_order=asc), incremental on
//! `timestamp_created`. The cursor is the latest `timestamp_created` seen; the next run
//! asks `min_timestamp_created = cursor - overlap`, so emails sharing the cursor's
//! timestamp or stored late are seen again and merge instead of being missed.
//! Requests count against the 20 req/min `/emails` budget too.

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::source::{Checkpoint, ReadRequest, RunMode, SourceBatch};
use ferry_core::typed::parse_timestamp;
use serde_json::{Value, json};

use crate::Shared;
use crate::client::{LoopGuard, PAGE};

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "instantly",
        name: "emails",
        table: "instantly_emails_raw",
        primary_key: &["instantly_email_id"],
        columns: &[
            Column::key("instantly_email_id", SqlType::Text, "id"),
            Column::new("instantly_campaign_id", SqlType::Text, "campaign_id"),
            Column::new("recipient_email", SqlType::Text, "to_address_email_list"),
            Column::new("subject", SqlType::Text, "subject"),
            Column::new("email_type", SqlType::Integer, "ue_type"),
            Column::new("sent_at", SqlType::Timestamp, "timestamp_email"),
            Column::new("timestamp_created", SqlType::Timestamp, "timestamp_created"),
            Column::new("lead_email", SqlType::Text, "lead"),
            Column::new("eaccount", SqlType::Text, "eaccount"),
            Column::new("thread_id", SqlType::Text, "thread_id"),
            Column::new("is_unread", SqlType::Integer, "is_unread"),
            Column::new("i_status", SqlType::Integer, "i_status"),
        ],
        mode: SyncMode::Incremental { cursor_field: "timestamp_created" },
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::ALL,
        description: "Unibox emails, incremental on timestamp_created with overlap (20 req/min)",
        legacy_key: &[],
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The cursor meaning "seen everything created before `at`".
pub fn cursor(at: DateTime<Utc>) -> Value {
    json!({"timestamp_created": iso(at)})
}

fn saved(state: Option<&Value>) -> Option<DateTime<Utc>> {
    state?.get("timestamp_created")?.as_str().and_then(parse_timestamp)
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    let saved = match request.mode {
        RunMode::Full => None,
        RunMode::Incremental => saved(request.state.as_ref()),
    };
    let overlap = Duration::minutes(i64::from(shared.config.emails_overlap_minutes));
    let start_date = ferry_core::window::parse_date(&shared.config.start_date).unwrap_or_default();
    let window = request.window;
    let now = request.now;
    // A bounded run (--from/--to/--last) reads its window and leaves the cursor alone.
    let min = match (window.from, saved) {
        (Some(from), _) => from,
        (None, Some(c)) if !window.is_bounded() => c - overlap,
        _ => start_date,
    };
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let mut guard = LoopGuard::default();
        let mut page_cursor: Option<String> = None;
        let mut latest = saved;
        loop {
            let mut req = Request::get("/emails")
                .query("limit", PAGE.to_string())
                .query("mode", "emode_all")
                .query("sort_order", "asc")
                .query("min_timestamp_created", iso(min));
            if let Some(to) = window.to {
                req = req.query("max_timestamp_created", iso(to));
            }
            if let Some(c) = &page_cursor {
                req = req.query("starting_after", c.clone());
            }
            let endpoint = req.endpoint();
            let page = shared.client.page(req, &budget).await?;
            guard.check(&endpoint, &page, page_cursor.as_deref())?;
            let done = page.items.is_empty() || page.next.is_none();
            let next = page.next.clone();
            let records = super::records(page.items, &endpoint);
            for r in &records {
                if let Some(t) = r.get("timestamp_created").and_then(Value::as_str).and_then(parse_timestamp) {
                    // A record from the future is kept, but the cursor stops at the run's
                    // start: otherwise every later run would ask from there and skip
                    // everything created in between.
                    if t > now {
                        let id = r.get("id").map(|v| v.to_string()).unwrap_or_default();
                        tracing::warn!(step = "cursor", stream = "emails", id = %id, timestamp_created = %iso(t), run_start = %iso(now), "record created in the future: stored, but the cursor stops at the run's start");
                    }
                    latest = latest.max(Some(t.min(now)));
                }
            }
            let mut batch = SourceBatch::records(records);
            if !window.is_bounded() && let Some(t) = latest {
                batch = batch.with_checkpoint(Checkpoint::Set(cursor(t)));
            }
            yield batch;
            if done {
                break;
            }
            page_cursor = next;
        }
    }
    .boxed()
}
