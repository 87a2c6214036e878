//! `owners`: GET /crm/v3/owners, paged with `after`, full refresh.

use std::sync::Arc;

use ferry_core::error::SourceError;
use ferry_core::futures::stream::{BoxStream, StreamExt};
use ferry_core::http::Request;
use ferry_core::source::SourceBatch;
use serde_json::Value;

use crate::Shared;

pub(crate) fn read(shared: Arc<Shared>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
    async_stream::try_stream! {
        let budget = shared.client.http().retry_budget();
        let mut after: Option<String> = None;
        let mut guard = ferry_core::source::CursorGuard::default();
        loop {
            let mut req = Request::get("/crm/v3/owners").query("limit", "100");
            if let Some(a) = &after {
                req = req.query("after", a.clone());
            }
            let endpoint = req.endpoint();
            let (results, next) = shared.client.page(req, &budget).await?;
            let looped = guard.check(&endpoint, after.as_deref(), &results, next.as_deref());
            let empty = results.is_empty();
            yield SourceBatch::records(results.into_iter().filter_map(|v| match v { Value::Object(m) => Some(m), _ => None }).collect());
            looped?;
            match next {
                Some(n) if !empty => after = Some(n),
                _ => break,
            }
        }
    }
    .boxed()
}
