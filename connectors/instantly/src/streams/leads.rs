//! `leads`: POST /leads/list per campaign (`campaign` in the body) plus the leads in no
//! campaign (`in_campaign: false`). A full scan each run, with change detection by
//! content in the sink; the scan position is saved after every committed page, so a
//! killed run resumes mid-scan, and a completed scan clears it.

use std::sync::Arc;

use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::source::{Checkpoint, ReadRequest, RunMode, SourceBatch};
use serde_json::{Value, json};

use crate::Shared;
use crate::client::{LoopGuard, PAGE};

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "instantly",
        name: "leads",
        table: "instantly_leads_raw",
        primary_key: &["instantly_lead_id"],
        columns: &[
            Column::key("instantly_lead_id", SqlType::Text, "id"),
            Column::new("instantly_campaign_id", SqlType::Text, "campaign"),
            Column::new("email", SqlType::Text, "email"),
            Column::new("first_name", SqlType::Text, "first_name"),
            Column::new("last_name", SqlType::Text, "last_name"),
            Column::new("company_name", SqlType::Text, "company_name"),
            Column::new("lead_status", SqlType::Text, "status"),
            Column::new("timestamp_created", SqlType::Timestamp, "timestamp_created"),
            Column::new("timestamp_updated", SqlType::Timestamp, "timestamp_updated"),
            Column::new("timestamp_last_contact", SqlType::Timestamp, "timestamp_last_contact"),
            Column::new("timestamp_last_touch", SqlType::Timestamp, "timestamp_last_touch"),
        ],
        mode: SyncMode::FullRefresh,
        partitioning: Partitioning::Parent { stream: "campaigns", by: "campaign (and leads in none)" },
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "leads per campaign and in no campaign; resumable scan, change detection",
        legacy_key: &[],
    }
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    let campaign = super::campaign_of(&request.partition);
    let resume = match request.mode {
        RunMode::Full => None,
        RunMode::Incremental => {
            request.state.as_ref().and_then(|s| s.get("starting_after")).and_then(Value::as_str).map(str::to_owned)
        }
    };
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let mut guard = LoopGuard::default();
        let mut cursor = resume;
        if let Some(c) = &cursor {
            tracing::info!(step = "fetch", stream = "leads", partition = campaign.as_deref().unwrap_or(super::NO_CAMPAIGN), cursor = %c, "resuming an interrupted scan");
        }
        loop {
            let mut body = json!({"limit": PAGE});
            match &campaign {
                Some(id) => body["campaign"] = json!(id),
                None => body["in_campaign"] = json!(false),
            }
            if let Some(c) = &cursor {
                body["starting_after"] = json!(c);
            }
            let req = Request::post("/leads/list", body);
            let endpoint = req.endpoint();
            let page = shared.client.page(req, &budget).await?;
            guard.check(&endpoint, &page, cursor.as_deref())?;
            let records = super::records(page.items, &endpoint);
            match page.next {
                Some(next) if !records.is_empty() => {
                    yield SourceBatch::records(records).with_checkpoint(Checkpoint::Set(json!({"starting_after": next})));
                    cursor = Some(next);
                }
                _ => {
                    yield SourceBatch::records(records).with_checkpoint(Checkpoint::Clear);
                    break;
                }
            }
        }
    }
    .boxed()
}
