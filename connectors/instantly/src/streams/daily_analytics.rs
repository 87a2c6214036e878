//! `daily_analytics`: GET /campaigns/analytics/daily for the workspace (its own scope)
//! and per campaign (`campaign_id=`). Rows carry no campaign id, so each is stamped with
//! its scope. Incremental by date with a lookback: past days get revised, so each run
//! refetches from `cursor - lookback` to today; days before that are not refetched.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::source::{Checkpoint, ReadRequest, RunMode, SourceBatch};
use serde_json::{Value, json};

use crate::Shared;

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "instantly",
        name: "daily_analytics",
        table: "instantly_daily_analytics_raw",
        primary_key: &["scope", "date"],
        columns: &[
            Column::key("scope", SqlType::Text, "scope"),
            Column::key("date", SqlType::Date, "date"),
            Column::new("instantly_campaign_id", SqlType::Text, "instantly_campaign_id"),
            Column::new("sent", SqlType::Integer, "sent"),
            Column::new("contacted", SqlType::Integer, "contacted"),
            Column::new("opened", SqlType::Integer, "opened"),
            Column::new("unique_opened", SqlType::Integer, "unique_opened"),
            Column::new("replies", SqlType::Integer, "replies"),
            Column::new("unique_replies", SqlType::Integer, "unique_replies"),
            Column::new("clicks", SqlType::Integer, "clicks"),
            Column::new("unique_clicks", SqlType::Integer, "unique_clicks"),
            Column::new("opportunities", SqlType::Integer, "opportunities"),
        ],
        mode: SyncMode::Incremental { cursor_field: "date" },
        partitioning: Partitioning::Parent { stream: "campaigns", by: "scope (workspace, campaign)" },
        default_lookback_days: 7,
        time_flags: TimeFlagSupport::ALL,
        description: "per-day analytics, workspace and per campaign, with a revision lookback",
        legacy_key: &[("scope", "'workspace'")],
    }
}

/// The cursor meaning "days up to `day` are synced".
pub fn cursor(day: NaiveDate) -> Value {
    json!({"date": day.to_string()})
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    let campaign = super::campaign_of(&request.partition);
    let scope = campaign.clone().unwrap_or_else(|| super::WORKSPACE_SCOPE.to_owned());
    let saved = match request.mode {
        RunMode::Full => None,
        RunMode::Incremental => request
            .state
            .as_ref()
            .and_then(|s| s.get("date"))
            .and_then(Value::as_str)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
    };
    let lookback = Duration::days(i64::from(shared.config.daily_lookback_days));
    let start_date = ferry_core::window::parse_date(&shared.config.start_date).unwrap_or_default().date_naive();
    let window = request.window;
    let today = request.now.date_naive();
    let start = match (window.from, saved) {
        (Some(from), _) => from.date_naive(),
        (None, Some(d)) if !window.is_bounded() => (d - lookback).max(start_date),
        _ => start_date,
    };
    // The window's end is exclusive; the API's end_date is a day.
    let end = window.to.map(|t| (t - Duration::milliseconds(1)).date_naive()).unwrap_or(today).min(today);
    async_stream::try_stream! {
        if start > end {
            return;
        }
        let budget = shared.client.http().retry_budget();
        let mut req = Request::get("/campaigns/analytics/daily")
            .query("start_date", start.to_string())
            .query("end_date", end.to_string());
        if let Some(id) = &campaign {
            req = req.query("campaign_id", id.clone());
        }
        let endpoint = req.endpoint();
        let rows = shared.client.array(req, &budget).await?;
        let mut records = super::records(rows, &endpoint);
        // The cursor is the last day asked for, rows or not: a campaign with no activity
        // (a draft) must not be refetched from start_date on every run.
        let mut latest = saved.max(Some(end));
        for r in &mut records {
            if let Some(d) = r.get("date").and_then(Value::as_str).and_then(ferry_core::typed::parse_timestamp) {
                // A day after the run's last day is stored but never moves the cursor.
                latest = latest.max(Some(d.date_naive().min(end)));
            }
            r.insert("scope".into(), json!(scope));
            r.insert("instantly_campaign_id".into(), json!(campaign));
        }
        let mut batch = SourceBatch::records(records);
        if !window.is_bounded() && let Some(d) = latest {
            batch = batch.with_checkpoint(Checkpoint::Set(cursor(d)));
        }
        yield batch;
    }
    .boxed()
}
