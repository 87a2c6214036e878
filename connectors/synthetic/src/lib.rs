//! ferry-synthetic: deterministic generated records, in the spirit of Vector's
//! `demo_logs` source. Drives the engine in tests, the crash test and the sink benchmark.
//!
//! Streams:
//! - `users`: full refresh, key `id`; a `change_share` of users change with each
//!   `generation`; the scan position is saved per page, so a killed run resumes.
//! - `events`: incremental on `seq`, key (`user_id`, `seq`); `growth` new events per
//!   generation.
//! - `orders`: partitioned by region (`partitions`), key `order_id`, resumable per region.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::config::{PipelineConfig, Settings};
use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::{ConfigError, SourceError};
use ferry_core::futures::stream::{self, BoxStream, StreamExt};
use ferry_core::inventory;
use ferry_core::record::Record;
use ferry_core::registry::ConnectorDescriptor;
use ferry_core::source::{Checkpoint, Partition, ReadRequest, RunMode, Source, SourceBatch};
use serde::Deserialize;
use serde_json::{Value, json};

/// Settings of `[source] connector = "synthetic"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Users (and events, and orders) generated.
    #[serde(default = "default_records")]
    pub records: u64,
    /// Seed of every generated value.
    #[serde(default)]
    pub seed: u64,
    /// Which run this is: users change and events grow with it.
    #[serde(default)]
    pub generation: u64,
    /// Share of users changed in each generation (0.0..=1.0).
    #[serde(default = "default_change_share")]
    pub change_share: f64,
    /// New events per generation.
    #[serde(default = "default_growth")]
    pub growth: u64,
    /// Records per page.
    #[serde(default = "default_page")]
    pub page_size: u64,
    /// Regions (partitions) of `orders`.
    #[serde(default = "default_partitions")]
    pub partitions: u64,
    /// Sleep per page, to make runs slow enough to interrupt.
    #[serde(default)]
    pub delay_ms: u64,
    /// Every Nth user is malformed (null id or a text score), to exercise refusals.
    #[serde(default)]
    pub bad_record_every: u64,
    /// A stream that fails after `fail_after` records.
    #[serde(default)]
    pub fail_stream: Option<String>,
    /// Records read before `fail_stream` fails.
    #[serde(default)]
    pub fail_after: u64,
    /// Panic while listing partitions (tests that a crashed stream task fails the run).
    #[serde(default)]
    pub panic_in_partitions: bool,
    /// Sleep while listing partitions, as a source that lists them from a slow API does.
    #[serde(default)]
    pub partitions_delay_ms: u64,
    /// Fail the credential check (tests of `ferry check`).
    #[serde(default)]
    pub check_fails: bool,
    /// A pretend credential. Failure messages echo it (as a careless connector might echo
    /// a URL carrying a key), which is how the tests prove redaction holds everywhere.
    #[serde(default)]
    pub api_token: Option<ferry_core::secret::Secret>,
}

fn default_records() -> u64 {
    1_000
}
fn default_change_share() -> f64 {
    0.1
}
fn default_growth() -> u64 {
    100
}
fn default_page() -> u64 {
    250
}
fn default_partitions() -> u64 {
    4
}

const REGIONS: &[&str] = &["emea", "amer", "apac", "latam", "anz", "mena", "nordics", "dach"];

inventory::submit! {
    ConnectorDescriptor {
        name: "synthetic",
        description: "deterministic generated records for tests and benchmarks (no network)",
        build,
        default_pipeline: None,
    }
}

inventory::submit! {
    StreamDescriptor {
        connector: "synthetic",
        name: "users",
        table: "synthetic_users",
        primary_key: &["id"],
        columns: &[
            Column::key("id", SqlType::Integer, "id"),
            Column::new("email", SqlType::Text, "email"),
            Column::new("name", SqlType::Text, "name"),
            Column::new("score", SqlType::Real, "score"),
            Column::new("active", SqlType::Boolean, "active"),
            Column::new("signup_at", SqlType::Timestamp, "signup_at"),
            Column::new("plan", SqlType::Text, "profile.plan"),
        ],
        mode: SyncMode::FullRefresh,
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "generated users; a share changes each generation",
        legacy_key: &[],
    }
}

inventory::submit! {
    StreamDescriptor {
        connector: "synthetic",
        name: "events",
        table: "synthetic_events",
        primary_key: &["user_id", "seq"],
        columns: &[
            Column::key("user_id", SqlType::Integer, "user_id"),
            Column::key("seq", SqlType::Integer, "seq"),
            Column::new("kind", SqlType::Text, "kind"),
            Column::new("at", SqlType::Timestamp, "at"),
        ],
        mode: SyncMode::Incremental { cursor_field: "seq" },
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "append-only events, incremental on seq",
        legacy_key: &[],
    }
}

inventory::submit! {
    StreamDescriptor {
        connector: "synthetic",
        name: "orders",
        table: "synthetic_orders",
        primary_key: &["order_id"],
        columns: &[
            Column::key("order_id", SqlType::Text, "order_id"),
            Column::new("region", SqlType::Text, "region"),
            Column::new("amount", SqlType::Real, "amount"),
            Column::new("placed_at", SqlType::Timestamp, "placed_at"),
        ],
        mode: SyncMode::FullRefresh,
        partitioning: Partitioning::Dynamic { by: "region" },
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "orders per region (one partition per region)",
        legacy_key: &[],
    }
}

fn build(settings: &Settings, _pipeline: &PipelineConfig) -> Result<Arc<dyn Source>, ConfigError> {
    let config: SyntheticConfig = settings.parse()?;
    if !(0.0..=1.0).contains(&config.change_share) {
        return Err(ConfigError::Other(format!(
            "synthetic: change_share = {} must be between 0.0 and 1.0",
            config.change_share
        )));
    }
    if config.page_size == 0 || config.partitions == 0 || config.partitions > REGIONS.len() as u64 {
        return Err(ConfigError::Other(format!(
            "synthetic: page_size must be at least 1 and partitions 1 to {}",
            REGIONS.len()
        )));
    }
    Ok(Arc::new(Synthetic { config: Arc::new(config) }))
}

/// The synthetic source.
pub struct Synthetic {
    config: Arc<SyntheticConfig>,
}

/// SplitMix64: a fast, well-distributed hash of a counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl SyntheticConfig {
    /// The generation in which user `i` last changed (0 if never).
    fn last_change(&self, i: u64) -> u64 {
        (1..=self.generation)
            .rev()
            .find(|g| unit(mix(self.seed ^ mix(i) ^ g.wrapping_mul(0xA24B_AED4_963E_E407))) < self.change_share)
            .unwrap_or(0)
    }

    /// User `i` as of this generation.
    pub fn user(&self, i: u64) -> Record {
        let h = mix(self.seed ^ i);
        let changed = self.last_change(i);
        let plans = ["free", "pro", "team", "enterprise"];
        let mut v = json!({
            "id": i,
            "email": format!("user{i}@example.com"),
            "name": format!("User {}", h % 100_000),
            "score": (h % 10_000) as f64 / 100.0,
            "active": !h.is_multiple_of(3),
            "signup_at": format!("2025-{:02}-{:02}T{:02}:00:00Z", 1 + h % 12, 1 + (h >> 8) % 28, (h >> 16) % 24),
            "profile": {"plan": plans[((h >> 20) as usize + changed as usize) % 4], "tags": [h % 7, h % 11]},
            "revision": changed,
        });
        if changed > 0 {
            v["profile"]["changed_in"] = json!(changed);
        }
        if self.bad_record_every > 0 && i % self.bad_record_every == self.bad_record_every - 1 {
            if (i / self.bad_record_every).is_multiple_of(2) {
                v["id"] = Value::Null;
            } else {
                v["score"] = json!("not a number");
            }
        }
        match v {
            Value::Object(m) => m,
            _ => unreachable!("json! object literal"),
        }
    }

    /// Number of events this generation.
    pub fn event_count(&self) -> u64 {
        self.records + self.generation * self.growth
    }

    /// Event number `seq`.
    pub fn event(&self, seq: u64) -> Record {
        let h = mix(self.seed.wrapping_add(0x5151) ^ seq);
        let kinds = ["open", "click", "reply", "bounce"];
        let v = json!({
            "user_id": h % self.records.max(1),
            "seq": seq,
            "kind": kinds[(h % 4) as usize],
            "at": format!("2025-11-{:02}T{:02}:{:02}:00Z", 1 + seq % 28, (h >> 8) % 24, (h >> 16) % 60),
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("json! object literal"),
        }
    }

    /// Order `i` of region `r`.
    pub fn order(&self, r: u64, i: u64) -> Record {
        let h = mix(self.seed.wrapping_add(0x0D0D) ^ (r << 40) ^ i);
        let v = json!({
            "order_id": format!("{}-{i}", REGIONS[r as usize]),
            "region": REGIONS[r as usize],
            "amount": (h % 100_000) as f64 / 100.0,
            "placed_at": format!("2025-10-{:02}T12:00:00Z", 1 + i % 28),
            "lines": [{"sku": format!("SKU{}", h % 500), "qty": 1 + h % 5}],
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("json! object literal"),
        }
    }

    /// Orders in region `r`.
    pub fn orders_in(&self, r: u64) -> u64 {
        let base = self.records / self.partitions;
        base + u64::from(r < self.records % self.partitions)
    }
}

/// Which record generator a read uses.
#[derive(Clone, Copy)]
enum Kind {
    Users,
    Events,
    Orders(u64),
}

struct Scan {
    config: Arc<SyntheticConfig>,
    kind: Kind,
    next: u64,
    end: u64,
    read: u64,
    fail_after: Option<u64>,
    done: bool,
}

impl Scan {
    fn page(&mut self) -> Option<Result<SourceBatch, SourceError>> {
        if self.done {
            return None;
        }
        if self.next >= self.end {
            self.done = true;
            // Snapshot scans clear their position; incremental ones keep their cursor.
            return match self.kind {
                Kind::Events => None,
                _ => Some(Ok(SourceBatch::default().with_checkpoint(Checkpoint::Clear))),
            };
        }
        let stop = (self.next + self.config.page_size).min(self.end);
        let mut records = Vec::with_capacity((stop - self.next) as usize);
        for i in self.next..stop {
            if let Some(limit) = self.fail_after
                && self.read >= limit
            {
                self.done = true;
                let token = self.config.api_token.as_ref().map(|t| t.expose()).unwrap_or("none");
                return Some(Err(SourceError::Other(format!(
                    "synthetic failure point reached after {limit} records (fail_after) at /page?offset={}&token={token}",
                    self.next
                ))));
            }
            records.push(match self.kind {
                Kind::Users => self.config.user(i),
                Kind::Events => self.config.event(i),
                Kind::Orders(r) => self.config.order(r, i),
            });
            self.read += 1;
        }
        self.next = stop;
        let cursor = match self.kind {
            Kind::Events => json!({"seq": stop - 1}),
            _ => json!({"offset": stop}),
        };
        Some(Ok(SourceBatch::records(records).with_checkpoint(Checkpoint::Set(cursor))))
    }
}

#[ferry_core::async_trait]
impl Source for Synthetic {
    async fn partitions(&self, _stream: &'static StreamDescriptor) -> Result<Vec<Partition>, SourceError> {
        if self.config.panic_in_partitions {
            panic!("synthetic panic point reached (panic_in_partitions)");
        }
        tokio::time::sleep(std::time::Duration::from_millis(self.config.partitions_delay_ms)).await;
        Ok((0..self.config.partitions)
            .map(|r| Partition { key: REGIONS[r as usize].to_owned(), context: json!(r) })
            .collect())
    }

    fn read(&self, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let config = self.config.clone();
        let state = if request.mode == RunMode::Full { None } else { request.state };
        let offset = state.as_ref().and_then(|s| s.get("offset")).and_then(Value::as_u64);
        let (kind, next, end) = match request.stream.name {
            "users" => (Kind::Users, offset.unwrap_or(0), config.records),
            "events" => {
                let after = state.as_ref().and_then(|s| s.get("seq")).and_then(Value::as_u64);
                (Kind::Events, after.map_or(0, |s| s + 1), config.event_count())
            }
            _ => {
                let r = request.partition.context.as_u64().unwrap_or(0);
                (Kind::Orders(r), offset.unwrap_or(0), config.orders_in(r))
            }
        };
        let fail_after = (config.fail_stream.as_deref() == Some(request.stream.name)).then_some(config.fail_after);
        let delay = Duration::from_millis(config.delay_ms);
        let scan = Scan { config, kind, next, end, read: 0, fail_after, done: false };
        stream::unfold(scan, move |mut scan| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            } else {
                // Give other tasks a turn between pages, as network I/O would.
                tokio::task::yield_now().await;
            }
            scan.page().map(|item| (item, scan))
        })
        .boxed()
    }

    async fn check(&self) -> Result<String, SourceError> {
        if self.config.check_fails {
            return Err(SourceError::Other("synthetic check failed (check_fails = true)".into()));
        }
        Ok(format!("synthetic source ready: {} records per stream", self.config.records))
    }
}
