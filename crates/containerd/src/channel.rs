//! A tonic channel to a gRPC server on a unix socket (containerd's native API and CRI).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// Connecting to a unix socket failed.
#[derive(Debug, thiserror::Error)]
#[error("connecting to {}", path.display())]
pub struct ConnectError {
    pub path: PathBuf,
    #[source]
    pub source: tonic::transport::Error,
}

/// Opens a channel to the gRPC server listening on `socket`. The URI is a placeholder that only
/// fills the `:authority` header; every connection (and reconnection) dials the socket.
pub async fn connect(socket: &Path) -> Result<Channel, ConnectError> {
    let path = socket.to_path_buf();
    let dial = path.clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let dial = dial.clone();
            async move { UnixStream::connect(dial).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ConnectError { path, source })
}
