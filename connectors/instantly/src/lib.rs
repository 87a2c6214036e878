//! ferry-instantly: the Instantly.ai API v2 connector.
//!
//! Seven streams (`streams/`), each registered with its descriptor; a client over core's
//! HTTP client (`client.rs`); typed settings (`config.rs`); and, behind the `sim`
//! feature, a simulator of the API for tests, benchmarks and `ferry demo`.
//!
//! Architecture invariant: this crate depends only on ferry-core.

pub mod client;
pub mod config;
#[cfg(feature = "sim")]
pub mod sim;
pub mod streams;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ferry_core::config::{PipelineConfig, Settings};
use ferry_core::descriptor::StreamDescriptor;
use ferry_core::error::{ConfigError, SourceError};
use ferry_core::futures::stream::BoxStream;
use ferry_core::http::{HttpMetrics, Request};
use ferry_core::record::Record;
use ferry_core::registry::ConnectorDescriptor;
use ferry_core::source::{Partition, ReadRequest, Source, SourceBatch};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::client::Client;
use crate::config::InstantlyConfig;

/// The pipeline `ferry sync instantly` runs without a file.
pub const DEFAULT_PIPELINE: &str = r#"[pipeline]
name = "instantly"

[source]
connector = "instantly"
api_key = "${INSTANTLY_API_KEY}"

[sink]
type = "sqlite"
path = "data/instantly.db"

[logging]
dir = "logs"
"#;

ferry_core::inventory::submit! {
    ConnectorDescriptor {
        name: "instantly",
        description: "Instantly.ai API v2: campaigns, leads, steps, accounts, emails, daily analytics, overview",
        build,
        default_pipeline: Some(DEFAULT_PIPELINE),
    }
}

fn build(settings: &Settings, _pipeline: &PipelineConfig) -> Result<Arc<dyn Source>, ConfigError> {
    let config: InstantlyConfig = settings.parse()?;
    Ok(Arc::new(Instantly::new(config.resolve()?)?))
}

/// What every stream of a run shares.
#[derive(Debug)]
pub struct Shared {
    /// The client.
    pub client: Client,
    /// Settings.
    pub config: InstantlyConfig,
    campaigns: OnceCell<Vec<Value>>,
}

impl Shared {
    /// Every campaign (id-bearing objects), fetched once per run.
    pub async fn campaigns(&self) -> Result<&Vec<Value>, SourceError> {
        self.campaigns
            .get_or_try_init(|| async {
                let budget = self.client.http().retry_budget();
                let mut all = Vec::new();
                let mut guard = client::LoopGuard::default();
                let mut cursor: Option<String> = None;
                loop {
                    let mut req = Request::get("/campaigns").query("limit", client::PAGE.to_string());
                    if let Some(c) = &cursor {
                        req = req.query("starting_after", c.clone());
                    }
                    let endpoint = req.endpoint();
                    let page = self.client.page(req, &budget).await?;
                    guard.check(&endpoint, &page, cursor.as_deref())?;
                    let done = page.items.is_empty() || page.next.is_none();
                    all.extend(page.items);
                    if done {
                        break;
                    }
                    cursor = page.next;
                }
                Ok(all)
            })
            .await
    }
}

/// The Instantly source.
pub struct Instantly {
    shared: Arc<Shared>,
}

impl Instantly {
    /// A source over a resolved configuration.
    pub fn new(config: InstantlyConfig) -> Result<Self, ConfigError> {
        let client = Client::new(&config).map_err(|e| ConfigError::Other(e.message))?;
        Ok(Instantly { shared: Arc::new(Shared { client, config, campaigns: OnceCell::new() }) })
    }
}

#[ferry_core::async_trait]
impl Source for Instantly {
    async fn partitions_from(
        &self,
        stream: &'static StreamDescriptor,
        campaigns: &[Record],
    ) -> Result<Vec<Partition>, SourceError> {
        Ok(streams::partitions_from(stream.name, campaigns))
    }

    fn read(&self, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        streams::read(self.shared.clone(), request)
    }

    async fn check(&self) -> Result<String, SourceError> {
        let budget = self.shared.client.http().retry_budget();
        let page = self.shared.client.page(Request::get("/campaigns").query("limit", "1"), &budget).await?;
        Ok(format!(
            "API key accepted by {} ({} campaign{} visible on the first page)",
            self.shared.config.base_url,
            page.items.len(),
            if page.items.len() == 1 { "" } else { "s" }
        ))
    }

    fn cursor_at(&self, stream: &'static StreamDescriptor, at: DateTime<Utc>) -> Option<Value> {
        streams::cursor_at(stream.name, at)
    }

    fn metrics(&self) -> Option<Arc<HttpMetrics>> {
        Some(self.shared.client.http().metrics())
    }
}
