//! ferry-hubspot: the HubSpot CRM v3 connector: contacts, companies, deals and owners.
//!
//! Proof that a source plugs in as a crate: everything comes from ferry-core (descriptors,
//! `Source`, HTTP client and budgets, state, errors); core knows nothing of HubSpot.
//!
//! Architecture invariant: this crate depends only on ferry-core.

pub mod client;
pub mod config;
#[cfg(feature = "sim")]
pub mod sim;
pub mod streams;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ferry_core::config::{PipelineConfig, Settings};
use ferry_core::descriptor::{FlagUse, StreamDescriptor};
use ferry_core::error::{ConfigError, SourceError};
use ferry_core::futures::stream::BoxStream;
use ferry_core::http::{HttpMetrics, Request};
use ferry_core::registry::ConnectorDescriptor;
use ferry_core::source::{ReadRequest, Source, SourceBatch};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::client::Client;
use crate::config::HubspotConfig;

/// The pipeline `ferry sync hubspot` runs without a file.
pub const DEFAULT_PIPELINE: &str = r#"[pipeline]
name = "hubspot"

[source]
connector = "hubspot"
access_token = "${HUBSPOT_ACCESS_TOKEN}"

[sink]
type = "sqlite"
path = "data/hubspot.db"

[logging]
dir = "logs"
"#;

ferry_core::inventory::submit! {
    ConnectorDescriptor {
        name: "hubspot",
        description: "HubSpot CRM v3: contacts, companies, deals (incremental by search), owners",
        build,
        default_pipeline: Some(DEFAULT_PIPELINE),
    }
}

fn build(settings: &Settings, _pipeline: &PipelineConfig) -> Result<Arc<dyn Source>, ConfigError> {
    let config: HubspotConfig = settings.parse()?;
    let config = config.resolve()?;
    let client = Client::new(&config).map_err(|e| ConfigError::Other(e.message))?;
    Ok(Arc::new(Hubspot { shared: Arc::new(Shared { client, config, properties: Mutex::new(HashMap::new()) }) }))
}

/// What the streams of a run share.
#[derive(Debug)]
pub struct Shared {
    /// The client.
    pub client: Client,
    /// Settings.
    pub config: HubspotConfig,
    properties: Mutex<HashMap<String, Vec<String>>>,
}

impl Shared {
    /// The properties to fetch for an object type: the pipeline's list, or every property
    /// the properties endpoint lists (fetched once per run).
    pub async fn properties(&self, object: &str) -> Result<Vec<String>, SourceError> {
        if let Some(p) = self.config.properties.get(object) {
            return Ok(p.clone());
        }
        let mut cache = self.properties.lock().await;
        if let Some(p) = cache.get(object) {
            return Ok(p.clone());
        }
        let budget = self.client.http().retry_budget();
        let (results, _) = self.client.page(Request::get(format!("/crm/v3/properties/{object}")), &budget).await?;
        let names: Vec<String> =
            results.iter().filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned)).collect();
        cache.insert(object.to_owned(), names.clone());
        Ok(names)
    }
}

/// The HubSpot source.
pub struct Hubspot {
    shared: Arc<Shared>,
}

#[ferry_core::async_trait]
impl Source for Hubspot {
    fn read(&self, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        use streams::Stream;
        match Stream::of(request.stream.name) {
            Some(Stream::Owners) => streams::owners::read(self.shared.clone()),
            Some(Stream::Contacts | Stream::Companies | Stream::Deals) => {
                streams::objects::read(self.shared.clone(), request)
            }
            None => {
                let e = SourceError::Other(format!("hubspot has no stream `{}`", request.stream.name));
                ferry_core::futures::StreamExt::boxed(ferry_core::futures::stream::once(async move { Err(e) }))
            }
        }
    }

    async fn check(&self) -> Result<String, SourceError> {
        let budget = self.shared.client.http().retry_budget();
        let path = format!("{}/contacts", self.shared.config.objects_path);
        self.shared.client.page(Request::get(path).query("limit", "1"), &budget).await?;
        Ok(format!("access token accepted by {}", self.shared.config.base_url))
    }

    /// Contacts, companies and deals follow their last modification time: rolling back to
    /// a date searches again from that date (minus the lookback, as every search does).
    fn cursor_at(&self, stream: &'static StreamDescriptor, at: DateTime<Utc>) -> Option<Value> {
        (stream.flag_use(ferry_core::window::TimeFlag::Rollback) == FlagUse::Honoured)
            .then(|| streams::objects::cursor(at))
    }

    fn metrics(&self) -> Option<Arc<HttpMetrics>> {
        Some(self.shared.client.http().metrics())
    }
}
