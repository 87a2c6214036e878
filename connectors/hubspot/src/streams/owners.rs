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
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut req = Request::get("/crm/v3/owners").query("limit", "100");
            if let Some(a) = &after {
                req = req.query("after", a.clone());
            }
            let endpoint = req.endpoint();
            let (results, next) = shared.client.page(req, &budget).await?;
            let empty = results.is_empty();
            yield SourceBatch::records(results.into_iter().filter_map(|v| match v { Value::Object(m) => Some(m), _ => None }).collect());
            match next {
                Some(n) if !empty => {
                    if !seen.insert(n.clone()) {
                        Err(SourceError::Pagination { endpoint, message: format!("cursor {n} came back again; stopping instead of looping") })?;
                    }
                    after = Some(n);
                }
                _ => break,
            }
        }
    }
    .boxed()
}
