//! Progress bars on a terminal: one line per stream, plus the API line (requests,
//! retries, time spent waiting on rate limits).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::engine::{Progress, StreamReport};
use ferry_core::http::HttpMetrics;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The terminal display of a run.
pub(crate) struct Bars {
    multi: MultiProgress,
    streams: Mutex<HashMap<String, ProgressBar>>,
    api: Option<ProgressBar>,
    stop: tokio_util::sync::CancellationToken,
}

impl Bars {
    /// Bars on stderr, with an API line fed from the source's counters.
    pub(crate) fn new(metrics: Option<Arc<HttpMetrics>>) -> Arc<Self> {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let stop = tokio_util::sync::CancellationToken::new();
        let api = metrics.map(|m| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let b = bar.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let s = m.snapshot();
                    b.set_message(format!(
                        "API: {} requests, {} retries, {} × 429, waiting on rate limits {:.1}s",
                        s.requests,
                        s.retries,
                        s.rate_limited,
                        s.limiter_wait_ms as f64 / 1000.0
                    ));
                    b.tick();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(150)) => {}
                        _ = stop.cancelled() => break,
                    }
                }
            });
            bar
        });
        // Log lines (warnings above all) print above the bars instead of under them,
        // where the next redraw would erase them.
        let printer = multi.clone();
        ferry_core::logging::route_console(Some(Box::new(move |line: &str| {
            let _ = printer.println(line);
        })));
        Arc::new(Bars { multi, streams: Mutex::new(HashMap::new()), api, stop })
    }

    /// Clears the bars before the summary is printed (the summary is the one block that
    /// stays); log lines go straight to stderr again.
    pub(crate) fn finish(&self) {
        ferry_core::logging::route_console(None);
        self.stop.cancel();
        if let Some(a) = &self.api {
            a.finish_and_clear();
        }
        for b in self.streams.lock().unwrap_or_else(|e| e.into_inner()).values() {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

impl Progress for Bars {
    fn stream_started(&self, stream: &str) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<16} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(stream.to_owned());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).insert(stream.to_owned(), bar);
    }

    fn committed(&self, stream: &str, records: u64, pages: u64) {
        if let Some(b) = self.streams.lock().unwrap_or_else(|e| e.into_inner()).get(stream) {
            b.set_message(format!("{records} records, {pages} pages"));
        }
    }

    fn stream_finished(&self, stream: &str, r: &StreamReport) {
        if let Some(b) = self.streams.lock().unwrap_or_else(|e| e.into_inner()).get(stream) {
            b.set_style(
                ProgressStyle::with_template("  {prefix:<16} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.finish_with_message(format!(
                "{}: {} read, {} inserted, {} updated, {} unchanged, {} failed",
                r.status, r.records, r.stats.inserted, r.stats.updated, r.stats.unchanged, r.stats.failed
            ));
        }
    }
}
