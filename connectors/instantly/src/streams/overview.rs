//! `overview`: GET /campaigns/analytics/overview for the workspace and per campaign
//! (`id=`), all time, kept as a daily snapshot history keyed by (scope, snapshot_date).

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
        name: "overview",
        table: "instantly_overview_raw",
        primary_key: &["scope", "snapshot_date"],
        columns: &[
            Column::key("scope", SqlType::Text, "scope"),
            Column::key("snapshot_date", SqlType::Date, "snapshot_date"),
            Column::new("instantly_campaign_id", SqlType::Text, "instantly_campaign_id"),
            Column::new("emails_sent_count", SqlType::Integer, "emails_sent_count"),
            Column::new("contacted_count", SqlType::Integer, "contacted_count"),
            Column::new("reply_count", SqlType::Integer, "reply_count"),
            Column::new("bounced_count", SqlType::Integer, "bounced_count"),
            Column::new("total_opportunities", SqlType::Integer, "total_opportunities"),
            Column::new("total_opportunity_value", SqlType::Real, "total_opportunity_value"),
            Column::new("total_interested", SqlType::Integer, "total_interested"),
        ],
        mode: SyncMode::Snapshot,
        partitioning: Partitioning::Parent { stream: "campaigns", by: "scope (workspace, campaign)" },
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "all-time totals, workspace and per campaign, one snapshot per day",
        legacy_key: &[("scope", "'workspace'"), ("snapshot_date", "date(coalesce(synced_at, created_at))")],
    }
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    let campaign = super::campaign_of(&request.partition);
    let snapshot_date = request.now.date_naive().to_string();
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let mut req = Request::get("/campaigns/analytics/overview");
        if let Some(id) = &campaign {
            req = req.query("id", id.clone());
        }
        let endpoint = req.endpoint();
        let mut row = match shared.client.json(req, &budget).await? {
            Value::Object(m) => m,
            _ => Err(SourceError::Decode { endpoint, message: "expected a JSON object".into() })?,
        };
        row.insert("scope".into(), json!(campaign.clone().unwrap_or_else(|| super::WORKSPACE_SCOPE.to_owned())));
        row.insert("instantly_campaign_id".into(), json!(campaign));
        row.insert("snapshot_date".into(), json!(snapshot_date));
        yield SourceBatch::records(vec![row]);
    }
    .boxed()
}
