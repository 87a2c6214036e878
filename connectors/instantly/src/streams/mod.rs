//! The seven streams, one file each, and what they share.

pub mod accounts;
pub mod campaigns;
pub mod daily_analytics;
pub mod emails;
pub mod leads;
pub mod overview;
pub mod steps;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{self, BoxStream, StreamExt};
use ferry_core::record::Record;
use ferry_core::source::{Partition, ReadRequest, SourceBatch};
use serde_json::Value;

use crate::Shared;

/// The scope key of workspace-wide analytics rows.
pub const WORKSPACE_SCOPE: &str = "workspace";
/// The partition of leads in no campaign.
pub const NO_CAMPAIGN: &str = "no-campaign";

/// Turns API items (objects) into records; anything else is skipped with a warning.
pub fn records(items: Vec<Value>, endpoint: &str) -> Vec<Record> {
    items
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) => Some(m),
            other => {
                tracing::warn!(step = "fetch", endpoint, item = %other, "skipped a list item that is not an object");
                None
            }
        })
        .collect()
}

pub(crate) async fn partitions(shared: &Shared, stream: &str) -> Result<Vec<Partition>, SourceError> {
    let mut parts = shared.campaign_partitions().await?;
    match stream {
        "leads" => parts.push(Partition::keyed(NO_CAMPAIGN)),
        "daily_analytics" | "overview" => parts.insert(0, Partition::keyed(WORKSPACE_SCOPE)),
        _ => {}
    }
    Ok(parts)
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    match request.stream.name {
        "campaigns" => campaigns::read(shared, request),
        "leads" => leads::read(shared, request),
        "steps" => steps::read(shared, request),
        "accounts" => accounts::read(shared, request),
        "emails" => emails::read(shared, request),
        "daily_analytics" => daily_analytics::read(shared, request),
        "overview" => overview::read(shared, request),
        other => {
            let e = SourceError::Other(format!("instantly has no stream `{other}`"));
            stream::once(async move { Err(e) }).boxed()
        }
    }
}

pub(crate) fn cursor_at(stream: &str, at: DateTime<Utc>) -> Option<Value> {
    match stream {
        "emails" => Some(emails::cursor(at)),
        "daily_analytics" => Some(daily_analytics::cursor(at.date_naive())),
        _ => None,
    }
}

/// The campaign id of a campaign partition (`None` for workspace / no-campaign).
pub fn campaign_of(p: &Partition) -> Option<String> {
    p.context.get("campaign_id").and_then(Value::as_str).map(str::to_owned)
}
