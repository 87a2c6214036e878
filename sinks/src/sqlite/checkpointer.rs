//! Checkpoints of the WAL on a thread of their own, so the writer never stops to copy the
//! WAL into the database file.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// WAL pages after which the writer checkpoints by itself: SQLite's usual threshold, in
/// force until the background checkpointer runs.
pub(super) const WRITER_AUTOCHECKPOINT: u32 = 4_000;

/// WAL pages (64 MiB at 4 KiB) past which the WAL is restarted. Passive checkpoints copy
/// frames, but a WAL starts again from its beginning only when every frame was copied as
/// a writer begins a transaction, which a busy writer never allows: a sync of 1,000,000
/// leads grew it to 692 MB.
const RESTART_AFTER_PAGES: i64 = 16_384;
/// With the background checkpointer running, the writer still checkpoints by itself
/// (passively) past this size, a little before a restart is due; with it the WAL of a
/// 1,000,000-lead sync peaked at 106 and 97 MB (two runs), with the net at four times the
/// restart size at 142 MB.
pub(super) const WRITER_AUTOCHECKPOINT_BEHIND: u32 = 16_000;
/// How long a restart waits for readers still using old frames before it gives up until
/// the next commit.
const RESTART_WAIT: Duration = Duration::from_millis(200);

enum CheckpointRequest {
    /// Copy what is committed; wait for nobody.
    Passive,
    /// Copy everything and restart the WAL, then answer. The writer asks between its
    /// transactions and waits, so only readers can delay it.
    Restart(std::sync::mpsc::SyncSender<()>),
}

/// Copies committed WAL frames into the database file on its own thread and connection,
/// so that the writer does not stop for it after its commits (in a bulk load the copy is
/// about a third of the writer's time). Passive checkpoints never wait for the writer or
/// for readers, and copy only committed frames. When the WAL passes
/// [`RESTART_AFTER_PAGES`], the writer asks for a restart between two transactions.
pub(super) struct Checkpointer {
    requests: Option<std::sync::mpsc::SyncSender<CheckpointRequest>>,
    /// Pages in the WAL at the last checkpoint.
    wal_pages: std::sync::Arc<std::sync::atomic::AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> rusqlite::Result<Checkpointer> {
        use std::sync::atomic::Ordering::Relaxed;
        let conn = Connection::open(path)?;
        conn.busy_timeout(RESTART_WAIT)?;
        let (requests, incoming) = std::sync::mpsc::sync_channel::<CheckpointRequest>(1);
        let wal_pages = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let pages = wal_pages.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // The pragma answers (busy, pages in the WAL, pages copied).
                let checkpoint = |mode: &str| -> rusqlite::Result<(i64, i64)> {
                    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get(0)?, r.get(1)?)))
                };
                while let Ok(request) = incoming.recv() {
                    match request {
                        CheckpointRequest::Passive => match checkpoint("PASSIVE") {
                            Ok((_, n)) => pages.store(n, Relaxed),
                            Err(e) => {
                                tracing::debug!(step = "checkpoint", error = %e, "background WAL checkpoint skipped")
                            }
                        },
                        CheckpointRequest::Restart(done) => {
                            match checkpoint("RESTART") {
                                Ok((0, _)) => pages.store(0, Relaxed),
                                Ok(_) => tracing::debug!(
                                    step = "checkpoint",
                                    "WAL restart postponed: a reader still uses it"
                                ),
                                Err(e) => tracing::debug!(step = "checkpoint", error = %e, "WAL restart postponed"),
                            }
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer { requests: Some(requests), wal_pages, thread: Some(thread) })
    }

    /// After a commit (no transaction open): a passive checkpoint in the background (one
    /// already asked for and not yet started covers this one), or, past the size limit, a
    /// restart this call waits for.
    pub(super) fn after_commit(&self) {
        let Some(requests) = &self.requests else { return };
        if self.wal_pages.load(std::sync::atomic::Ordering::Relaxed) > RESTART_AFTER_PAGES {
            let (done, wait) = std::sync::mpsc::sync_channel(1);
            if requests.send(CheckpointRequest::Restart(done)).is_ok() {
                let _ = wait.recv();
            }
        } else {
            let _ = requests.try_send(CheckpointRequest::Passive);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
