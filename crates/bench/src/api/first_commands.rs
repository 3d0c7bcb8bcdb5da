//! What a user's first commands cost a fresh server: its RSS once ready, then after `kubectl
//! explain pod` (the OpenAPI v3 fetch) and one `kubectl apply` of a Deployment, and some idle
//! time (what the user sees in `top` afterwards).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::server::{self, K3rsServer};

/// Settling time of a fresh server before its RSS is read (controllers start their informers).
const SETTLE: Duration = Duration::from_secs(5);

/// The Deployment the first `kubectl apply` creates.
const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

/// The RSS of a fresh server before and after the first commands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FirstCommands {
    pub(crate) fresh_mib: f64,
    pub(crate) after_mib: f64,
}

/// Starts a fresh server under `dir`, runs the commands with `kubectl`, and reads its RSS
/// before and `idle` after them.
pub(crate) async fn measure(
    k3rs: &Path,
    kubectl: &Path,
    dir: &Path,
    idle: Duration,
) -> Result<FirstCommands> {
    std::fs::create_dir_all(dir)?;
    let server = K3rsServer::start(k3rs, dir).await?;
    tokio::time::sleep(SETTLE).await;
    let fresh_mib = server::rss_mib(server.pid())?;
    let manifest = dir.join("web.yaml");
    std::fs::write(&manifest, DEPLOYMENT)
        .with_context(|| format!("writing {}", manifest.display()))?;
    let mut apply = vec!["apply".to_owned(), "-f".to_owned()];
    apply.push(manifest.display().to_string());
    for command in [vec!["explain".to_owned(), "pod".to_owned()], apply] {
        let output = tokio::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(&command)
            .output()
            .await
            .with_context(|| format!("running {}", kubectl.display()))?;
        if !output.status.success() {
            bail!(
                "kubectl {}: {}: {}",
                command.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    tokio::time::sleep(idle).await;
    let after_mib = server::rss_mib(server.pid())?;
    eprintln!(
        "k3rs first commands: fresh {fresh_mib:.0} MiB, after explain + apply and {}s idle \
         {after_mib:.0} MiB",
        idle.as_secs()
    );
    Ok(FirstCommands {
        fresh_mib,
        after_mib,
    })
}
