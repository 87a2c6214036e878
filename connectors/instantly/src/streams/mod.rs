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

/// The connector's streams by name, so that choosing a stream's reader, cursor and extra
/// partitions are exhaustive matches: a stream registered without them fails the test
/// below instead of being read as nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Campaigns,
    Leads,
    Steps,
    Accounts,
    Emails,
    DailyAnalytics,
    Overview,
}

impl Stream {
    pub const ALL: [Stream; 7] = [
        Stream::Campaigns,
        Stream::Leads,
        Stream::Steps,
        Stream::Accounts,
        Stream::Emails,
        Stream::DailyAnalytics,
        Stream::Overview,
    ];

    /// The registered stream name.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Campaigns => "campaigns",
            Stream::Leads => "leads",
            Stream::Steps => "steps",
            Stream::Accounts => "accounts",
            Stream::Emails => "emails",
            Stream::DailyAnalytics => "daily_analytics",
            Stream::Overview => "overview",
        }
    }

    pub fn of(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }
}

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
                // The item as sent, cut short: it may be a 10 MB string.
                let text = other.to_string();
                let shown: String = text.chars().take(200).collect();
                tracing::warn!(step = "fetch", endpoint, item = %shown, bytes = text.len(), "skipped a list item that is not an object");
                None
            }
        })
        .collect()
}

/// The partitions of a stream that depends on campaigns: one per campaign of this run
/// (the engine hands over the campaigns stream's records, so they are listed once), plus
/// the workspace scope or the leads in no campaign.
pub(crate) fn partitions_from(stream: &str, campaigns: &[Record]) -> Vec<Partition> {
    let mut parts: Vec<Partition> = campaigns
        .iter()
        // An id is a string; one sent as a number is the same id written differently.
        .filter_map(|c| match c.get("id")? {
            Value::String(id) => Some(id.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .map(|id| Partition { context: serde_json::json!({"campaign_id": id}), key: id })
        .collect();
    add_scopes(stream, &mut parts);
    parts
}

fn add_scopes(stream: &str, parts: &mut Vec<Partition>) {
    match Stream::of(stream) {
        Some(Stream::Leads) => parts.push(Partition::keyed(NO_CAMPAIGN)),
        Some(Stream::DailyAnalytics | Stream::Overview) => parts.insert(0, Partition::keyed(WORKSPACE_SCOPE)),
        Some(Stream::Campaigns | Stream::Steps | Stream::Accounts | Stream::Emails) | None => {}
    }
}

pub(crate) fn read(shared: Arc<Shared>, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    match Stream::of(request.stream.name) {
        Some(Stream::Campaigns) => campaigns::read(shared, request),
        Some(Stream::Leads) => leads::read(shared, request),
        Some(Stream::Steps) => steps::read(shared, request),
        Some(Stream::Accounts) => accounts::read(shared, request),
        Some(Stream::Emails) => emails::read(shared, request),
        Some(Stream::DailyAnalytics) => daily_analytics::read(shared, request),
        Some(Stream::Overview) => overview::read(shared, request),
        None => {
            let e = SourceError::Other(format!("instantly has no stream `{}`", request.stream.name));
            stream::once(async move { Err(e) }).boxed()
        }
    }
}

pub(crate) fn cursor_at(stream: &str, at: DateTime<Utc>) -> Option<Value> {
    match Stream::of(stream)? {
        Stream::Emails => Some(emails::cursor(at)),
        Stream::DailyAnalytics => Some(daily_analytics::cursor(at.date_naive())),
        // No cursor a date can set.
        Stream::Campaigns | Stream::Leads | Stream::Steps | Stream::Accounts | Stream::Overview => None,
    }
}

/// The campaign id of a campaign partition (`None` for workspace / no-campaign).
pub fn campaign_of(p: &Partition) -> Option<String> {
    p.context.get("campaign_id").and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_id_sent_as_a_number_is_still_a_partition() {
        let campaigns: Vec<Record> =
            [json_id(serde_json::json!("c-1")), json_id(serde_json::json!(42)), json_id(Value::Null)]
                .into_iter()
                .collect();
        let keys: Vec<String> = partitions_from("steps", &campaigns).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["c-1", "42"]);
        let leads: Vec<String> = partitions_from("leads", &campaigns).into_iter().map(|p| p.key).collect();
        assert_eq!(leads.last().map(String::as_str), Some(NO_CAMPAIGN));
    }

    fn json_id(id: Value) -> Record {
        let mut r = Record::new();
        r.insert("id".into(), id);
        r
    }
}

#[cfg(test)]
mod stream_tests {
    use super::Stream;

    /// Every registered stream has a reader, and every reader a registered stream.
    #[test]
    fn every_registered_stream_has_a_reader() {
        let registry = ferry_core::registry::Registry::global().unwrap();
        let mut registered: Vec<&str> = registry.streams_of("instantly").iter().map(|d| d.name).collect();
        let mut readers: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
        registered.sort_unstable();
        readers.sort_unstable();
        assert_eq!(registered, readers);
    }
}
