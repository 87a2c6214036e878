//! Console output: tables and summaries for people, JSON for scripts.

use std::fmt::Write as _;

use ferry_core::engine::RunReport;
use ferry_core::sink::{LogRow, RunRecord};

/// Formats a table with a header row; columns are left-aligned except numbers.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let numeric = !c.is_empty() && c.chars().all(|ch| ch.is_ascii_digit() || ch == '.' || ch == ',');
            let pad = widths[i].saturating_sub(c.chars().count());
            if numeric && i > 0 {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&mut out, header.to_vec());
    line(&mut out, widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect());
    for r in rows {
        line(&mut out, r.iter().map(String::as_str).collect());
    }
    out
}

/// `1234ms` -> `1.2s`.
pub(crate) fn duration(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 120_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// The end-of-run summary.
pub(crate) fn summary(r: &RunReport) -> String {
    let mut rows = Vec::new();
    for (name, s) in &r.streams {
        rows.push(vec![
            name.clone(),
            s.status.clone(),
            s.records.to_string(),
            s.stats.inserted.to_string(),
            s.stats.updated.to_string(),
            s.stats.unchanged.to_string(),
            s.stats.failed.to_string(),
            duration(s.duration_ms),
        ]);
    }
    let mut out = format!(
        "{} run {} ({}): {}{}\n",
        r.pipeline,
        r.batch_id,
        r.mode,
        r.status.as_str(),
        if r.dry_run { " (dry run: nothing written)" } else { "" }
    );
    let header: &[&str] = if r.dry_run {
        &["stream", "status", "read", "would insert", "would update", "unchanged", "failed", "time"]
    } else {
        &["stream", "status", "read", "inserted", "updated", "unchanged", "failed", "time"]
    };
    out.push_str(&table(header, &rows));
    for (name, s) in &r.streams {
        if let Some(e) = &s.error {
            let _ = writeln!(out, "{name}: {e}");
        }
    }
    for n in &r.notices {
        let _ = writeln!(out, "note: {n}");
    }
    if let Some(h) = &r.http {
        let _ = writeln!(
            out,
            "API requests: {}, retries: {}, 429s: {}, rate-limit wait: {}, backoff: {}",
            h.requests,
            h.retries,
            h.rate_limited,
            duration(h.limiter_wait_ms),
            duration(h.backoff_ms)
        );
    }
    let _ = writeln!(out, "duration: {}", duration(r.duration_ms));
    out
}

fn totals(stats: &serde_json::Value) -> (u64, u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0, 0);
    if let Some(streams) = stats.get("streams").and_then(|s| s.as_object()) {
        for s in streams.values() {
            let g = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            t.0 += g("inserted");
            t.1 += g("updated");
            t.2 += g("unchanged");
            t.3 += g("failed");
        }
    }
    t.4 = stats.pointer("/http/requests").and_then(serde_json::Value::as_u64).unwrap_or(0);
    t
}

/// `ferry status`: recent runs.
pub(crate) fn runs(runs: &[RunRecord]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let (i, u, n, f, calls) = totals(&r.stats);
            let dur = r
                .finished_at
                .map(|f| duration((f - r.started_at).num_milliseconds().max(0) as u64))
                .unwrap_or_else(|| "-".into());
            vec![
                r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                dur,
                r.mode.clone(),
                r.status.clone(),
                i.to_string(),
                u.to_string(),
                n.to_string(),
                f.to_string(),
                calls.to_string(),
                r.batch_id.clone(),
            ]
        })
        .collect();
    table(
        &[
            "started (UTC)",
            "duration",
            "mode",
            "status",
            "inserted",
            "updated",
            "unchanged",
            "failed",
            "API calls",
            "batch",
        ],
        &rows,
    )
}

/// `ferry status --batch`: one run, every stream.
pub(crate) fn run_detail(r: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "batch     {}", r.batch_id);
    let _ = writeln!(out, "pipeline  {}", r.pipeline);
    let _ = writeln!(out, "mode      {}", r.mode);
    let _ = writeln!(out, "status    {}", r.status);
    let _ = writeln!(out, "started   {}", r.started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    if let Some(f) = r.finished_at {
        let _ = writeln!(out, "finished  {}", f.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    let _ = writeln!(out, "arguments {}", r.arguments);
    let mut rows = Vec::new();
    if let Some(streams) = r.stats.get("streams").and_then(|s| s.as_object()) {
        for (name, s) in streams {
            let g = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0).to_string();
            rows.push(vec![
                name.clone(),
                s.get("status").and_then(|v| v.as_str()).unwrap_or("").to_owned(),
                g("records"),
                g("inserted"),
                g("updated"),
                g("unchanged"),
                g("failed"),
                duration(s.get("duration_ms").and_then(serde_json::Value::as_u64).unwrap_or(0)),
                s.get("error").and_then(|v| v.as_str()).unwrap_or("").to_owned(),
            ]);
        }
    }
    out.push_str(&table(
        &["stream", "status", "read", "inserted", "updated", "unchanged", "failed", "time", "error"],
        &rows,
    ));
    if let Some(h) = r.stats.get("http").filter(|h| !h.is_null()) {
        let g = |k: &str| h.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let _ =
            writeln!(out, "API requests: {}, retries: {}, 429s: {}", g("requests"), g("retries"), g("rate_limited"));
    }
    out
}

/// `ferry status --errors`.
pub(crate) fn errors(rows: &[LogRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|l| {
            vec![
                l.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                l.level.clone(),
                l.meta.get("stream").and_then(|s| s.as_str()).unwrap_or("").to_owned(),
                l.step.clone(),
                l.message.clone(),
                ["error", "reason"]
                    .iter()
                    .find_map(|k| l.meta.get(*k).and_then(|s| s.as_str()))
                    .unwrap_or("")
                    .to_owned(),
            ]
        })
        .collect();
    table(&["time (UTC)", "level", "stream", "step", "message", "error"], &rows)
}

/// Writes to stdout; a closed pipe or any other write error drops the text (the reader
/// went away: `ferry status | head -1`), never panics and never stops a sync.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// [`emit`] for stderr.
pub(crate) fn emit_err(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// An error and its causes on one line, leaving out a cause whose text the message
/// already holds (`cannot read p.toml: No such file or directory (os error 2)` once).
pub(crate) fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
