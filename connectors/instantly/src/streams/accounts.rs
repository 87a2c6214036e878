//! `accounts`: GET /accounts (sending mailboxes), keyed by email. The cursor
//! (`timestamp_created&email`) is passed back verbatim; the client URL-encodes it.

use std::sync::Arc;

use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::source::{ReadRequest, SourceBatch};

use crate::Shared;
use crate::client::{LoopGuard, PAGE};

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "instantly",
        name: "accounts",
        table: "instantly_accounts_raw",
        primary_key: &["email"],
        columns: &[
            Column::key("email", SqlType::Text, "email"),
            Column::new("organization", SqlType::Text, "organization"),
            Column::new("status", SqlType::Integer, "status"),
            Column::new("warmup_status", SqlType::Integer, "warmup_status"),
            Column::new("stat_warmup_score", SqlType::Real, "stat_warmup_score"),
            Column::new("provider_code", SqlType::Integer, "provider_code"),
            Column::new("timestamp_created", SqlType::Timestamp, "timestamp_created"),
            Column::new("timestamp_updated", SqlType::Timestamp, "timestamp_updated"),
        ],
        mode: SyncMode::FullRefresh,
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "sending mailboxes, keyed by email",
        legacy_key: &[],
    }
}

pub(crate) fn read(shared: Arc<Shared>, _request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let mut guard = LoopGuard::default();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = Request::get("/accounts").query("limit", PAGE.to_string());
            if let Some(c) = &cursor {
                req = req.query("starting_after", c.clone());
            }
            let endpoint = req.endpoint();
            let page = shared.client.page(req, &budget).await?;
            guard.check(&endpoint, &page, cursor.as_deref())?;
            let done = page.items.is_empty() || page.next.is_none();
            let next = page.next.clone();
            yield SourceBatch::records(super::records(page.items, &endpoint));
            if done {
                break;
            }
            cursor = next;
        }
    }
    .boxed()
}
