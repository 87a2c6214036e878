//! Plumbing shared by connectors' API simulators (feature `sim`): serving an axum router
//! on 127.0.0.1 and stopping it. What a simulator answers stays in its connector.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A running simulator server; dropping it stops the server without waiting.
#[derive(Debug)]
pub struct SimHandle {
    /// The bound address (always on 127.0.0.1).
    pub addr: SocketAddr,
    /// Path of the API under the root (`/api/v2`, or empty).
    base_path: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// Serves `app` on `127.0.0.1:port` (0: any free port). `base_path` is where the
    /// simulated API starts under the root.
    pub async fn serve(app: axum::Router, port: u16, base_path: &'static str) -> std::io::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(SimHandle { addr, base_path, stop: Some(stop), task: Some(task) })
    }

    /// The base a connector is configured with: the root and the API's path.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.root_url(), self.base_path)
    }

    /// `http://127.0.0.1:PORT`, where a simulator's control paths live.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits until open ones are finished (at most five
    /// seconds).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
