//! `campaigns`: GET /campaigns merged with the all-time GET /campaigns/analytics,
//! by campaign id. Full refresh each run.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::source::{ReadRequest, SourceBatch};
use serde_json::Value;

use crate::Shared;

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "instantly",
        name: "campaigns",
        table: "instantly_campaigns_raw",
        primary_key: &["instantly_campaign_id"],
        columns: &[
            Column::key("instantly_campaign_id", SqlType::Text, "id"),
            Column::new("campaign_name", SqlType::Text, "name"),
            Column::new("campaign_status", SqlType::Integer, "status"),
            Column::new("leads_count", SqlType::Integer, "analytics.leads_count"),
            Column::new("contacted_count", SqlType::Integer, "analytics.contacted_count"),
            Column::new("open_count", SqlType::Integer, "analytics.open_count"),
            Column::new("reply_count", SqlType::Integer, "analytics.reply_count"),
            Column::new("bounced_count", SqlType::Integer, "analytics.bounced_count"),
            Column::new("emails_sent_count", SqlType::Integer, "analytics.emails_sent_count"),
            Column::new("total_opportunities", SqlType::Integer, "analytics.total_opportunities"),
            Column::new("total_opportunity_value", SqlType::Real, "analytics.total_opportunity_value"),
            Column::new("timestamp_created", SqlType::Timestamp, "timestamp_created"),
            Column::new("timestamp_updated", SqlType::Timestamp, "timestamp_updated"),
        ],
        mode: SyncMode::FullRefresh,
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "campaigns with their all-time analytics (under `analytics`)",
        legacy_key: &[],
    }
}

pub(crate) fn read(shared: Arc<Shared>, _request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        // The list and one analytics call (no id/ids: every campaign's all-time analytics)
        // at once: the streams that depend on campaigns wait for this one.
        let (campaigns, analytics) = ferry_core::futures::try_join!(
            shared.campaigns(),
            shared.client.array(Request::get("/campaigns/analytics"), &budget)
        )?;
        let campaigns = campaigns.clone();
        let mut by_id: HashMap<String, Value> = analytics
            .into_iter()
            .filter_map(|a| Some((a.get("campaign_id")?.as_str()?.to_owned(), a)))
            .collect();
        let mut records = super::records(campaigns, "GET /campaigns");
        for r in &mut records {
            if let Some(a) = r.get("id").and_then(Value::as_str).and_then(|id| by_id.remove(id)) {
                r.insert("analytics".into(), a);
            }
        }
        yield SourceBatch::records(records);
    }
    .boxed()
}
