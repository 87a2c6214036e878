//! `steps`: GET /campaigns/analytics/steps?campaign_id= per campaign, all time. Rows
//! carry no campaign id, so each is stamped with the one it was requested for. Steps
//! count from 0; rows with a null step or variant are kept (their key part is `none`).

use std::sync::Arc;

use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::source::{ReadRequest, SourceBatch};
use serde_json::{Value, json};

use crate::Shared;

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "instantly",
        name: "steps",
        table: "instantly_steps_raw",
        primary_key: &["instantly_campaign_id", "step", "variant"],
        columns: &[
            Column::key("instantly_campaign_id", SqlType::Text, "instantly_campaign_id"),
            Column::key("step", SqlType::Text, "step_key"),
            Column::key("variant", SqlType::Text, "variant_key"),
            Column::new("step_number", SqlType::Integer, "step"),
            Column::new("emails_sent", SqlType::Integer, "sent"),
            Column::new("emails_opened", SqlType::Integer, "opened"),
            Column::new("emails_replied", SqlType::Integer, "replies"),
            Column::new("emails_clicked", SqlType::Integer, "clicks"),
        ],
        mode: SyncMode::Snapshot,
        partitioning: Partitioning::Parent { stream: "campaigns", by: "campaign" },
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "per-step, per-variant analytics per campaign (snapshot)",
        legacy_key: &[("step", "coalesce(CAST(step_number AS TEXT), 'none')"), ("variant", "coalesce(CAST(json_extract(raw_json, '$.variant') AS TEXT), 'none')")],
    }
}

/// The key text of a step or variant value: its string form, `none` when null.
fn key_part(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => json!("none"),
        Some(Value::String(s)) if s == "null" => json!("none"),
        Some(Value::String(s)) => json!(s),
        Some(other) => json!(other.to_string()),
    }
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    let campaign = super::campaign_of(&request.partition).unwrap_or_default();
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let req = Request::get("/campaigns/analytics/steps").query("campaign_id", campaign.clone());
        let endpoint = req.endpoint();
        let rows = shared.client.array(req, &budget).await?;
        let mut records = super::records(rows, &endpoint);
        for r in &mut records {
            let step = key_part(r.get("step"));
            let variant = key_part(r.get("variant"));
            // "null" strings are nulls; numeric strings load as numbers.
            if r.get("step").and_then(Value::as_str) == Some("null") {
                r.insert("step".into(), Value::Null);
            }
            r.insert("instantly_campaign_id".into(), json!(campaign));
            r.insert("step_key".into(), step);
            r.insert("variant_key".into(), variant);
        }
        yield SourceBatch::records(records);
    }
    .boxed()
}
