//! Core's HTTP client: every outbound request of a connector goes through it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters shared by all requests of a source.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Requests sent (including retries).
    pub requests: AtomicU64,
    /// Retries after a transient failure.
    pub retries: AtomicU64,
    /// 429 responses received.
    pub rate_limited: AtomicU64,
    /// Milliseconds spent waiting on the local rate limiter.
    pub limiter_wait_ms: AtomicU64,
    /// Milliseconds spent in backoff before retries.
    pub backoff_ms: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct HttpMetricsSnapshot {
    /// Requests sent (including retries).
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// 429 responses.
    pub rate_limited: u64,
    /// Time waiting on the rate limiter (ms).
    pub limiter_wait_ms: u64,
    /// Time in backoff (ms).
    pub backoff_ms: u64,
}

impl HttpMetrics {
    /// Reads the counters.
    pub fn snapshot(&self) -> HttpMetricsSnapshot {
        HttpMetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            limiter_wait_ms: self.limiter_wait_ms.load(Ordering::Relaxed),
            backoff_ms: self.backoff_ms.load(Ordering::Relaxed),
        }
    }
}
