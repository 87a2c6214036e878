//! `ferry demo`: the Instantly simulator, the real pipeline, and the monitoring queries.

use anyhow::anyhow;
use ferry_core::config::PipelineConfig;
use ferry_core::engine::{self, Pipeline, RunOptions};
use ferry_core::error::Exit;
use ferry_instantly::sim::{SimConfig, Simulator};
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::commands::{CliError, Result, console_logging, install_signal_handlers};
use crate::output;

/// The seed's monitoring queries, run against the demo database.
pub(crate) const MONITORING: &[(&str, &str)] = &[
    (
        "recent syncs",
        "SELECT batch_id, mode, status, started_at, finished_at FROM sync_runs ORDER BY started_at DESC LIMIT 5",
    ),
    (
        "errors",
        "SELECT created_at, level, step, message FROM sync_logs WHERE level IN ('WARN', 'ERROR') ORDER BY id DESC LIMIT 10",
    ),
    (
        "batch statistics",
        "SELECT batch_id, step, json_extract(meta, '$.stream') AS stream, json_extract(meta, '$.inserted') AS inserted, \
         json_extract(meta, '$.updated') AS updated, json_extract(meta, '$.unchanged') AS unchanged \
         FROM sync_logs WHERE step = 'STREAM_END' AND batch_id = (SELECT batch_id FROM sync_runs ORDER BY started_at DESC LIMIT 1) \
         ORDER BY stream",
    ),
];

pub(crate) async fn demo(args: DemoArgs) -> Result<Exit> {
    // The simulator's clock starts at yesterday's midnight (UTC) and its ids depend on the
    // seed alone, so runs on the same day see the same data and a second run shows the
    // incremental path.
    let sim = Simulator::new(SimConfig { seed: args.seed, ..SimConfig::default() });
    let server = sim.serve(0).await.map_err(|e| CliError::failed(anyhow!("cannot start the simulator: {e}")))?;
    let text = format!(
        r#"[pipeline]
name = "demo"
concurrency = 8

[source]
connector = "instantly"
base_url = "{}"
api_key = "{}"

# The simulator's workspace is ours alone, so the demo may use more of it than the
# defaults (10 req/s; 20 req/min on /emails as documented) that leave room for others.
[source.rate_limits.workspace]
per_second = 50
[source.rate_limits.emails]
per_minute = 120

[sink]
type = "sqlite"
path = "{}"

[logging]
dir = "logs"
"#,
        server.base_url(),
        sim.api_key(),
        args.db.replace('\\', "/")
    );
    let config = PipelineConfig::parse(&text, "<demo pipeline>")?;
    let _guard = console_logging(Some(&config), false)?;
    outln!("Instantly simulator on {} (seed {}); syncing into {}", server.base_url(), args.seed, args.db);
    let mut pipeline = Pipeline::build(config, None)?;
    let cancel = CancellationToken::new();
    install_signal_handlers(cancel.clone());
    let report = engine::run(&mut pipeline, RunOptions::default(), cancel).await?;
    server.shutdown().await;
    outln!();
    out!("{}", output::summary(&report));

    let conn = rusqlite::Connection::open(&args.db)
        .map_err(|e| CliError::failed(anyhow!("cannot reopen {}: {e}", args.db)))?;
    for (title, sql) in MONITORING {
        outln!("\n-- {title}\n{sql};");
        let (header, rows) = query(&conn, sql).map_err(|e| CliError::failed(anyhow!("{title}: {e}")))?;
        if rows.is_empty() {
            outln!("(no rows)");
        } else {
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            out!("{}", output::table(&header, &rows));
        }
    }
    outln!(
        "\nRun `ferry demo` again: the second run reads only new emails and analytics and rewrites no unchanged row."
    );
    Ok(report.status.exit_code())
}

fn query(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut stmt = conn.prepare(sql)?;
    let header: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let n = header.len();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                        rusqlite::types::Value::Null => String::new(),
                        rusqlite::types::Value::Integer(v) => v.to_string(),
                        rusqlite::types::Value::Real(v) => v.to_string(),
                        rusqlite::types::Value::Text(v) => v,
                        rusqlite::types::Value::Blob(_) => "<blob>".into(),
                    })
                })
                .collect::<rusqlite::Result<Vec<String>>>()
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((header, rows))
}
