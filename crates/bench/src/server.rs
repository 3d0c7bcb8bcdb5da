//! A `k3rs server` child process for one benchmark run: a free loopback port, a temporary data
//! dir, killed when dropped.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::{ApiClient, Credentials};

/// How long the server may take to answer `/readyz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running k3rs server.
#[derive(Debug)]
pub(crate) struct K3rsServer {
    child: Child,
    pub(crate) port: u16,
    pub(crate) credentials: Credentials,
    /// The admin kubeconfig the server wrote.
    pub(crate) kubeconfig: PathBuf,
    /// The store's directory (`<data-dir>/server/db`).
    pub(crate) store_dir: PathBuf,
    log: PathBuf,
}

impl K3rsServer {
    /// Starts `binary server` with its data under `dir` and waits until it is ready.
    pub(crate) async fn start(binary: &Path, dir: &Path) -> Result<K3rsServer> {
        K3rsServer::start_with(binary, dir, &[]).await
    }

    /// [`K3rsServer::start`] with more flags for `k3rs server`.
    pub(crate) async fn start_with(
        binary: &Path,
        dir: &Path,
        flags: &[String],
    ) -> Result<K3rsServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let data = dir.join("data");
        let log = dir.join("k3rs.log");
        let kubeconfig = dir.join("kubeconfig.yaml");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .arg("server")
            .arg("--data-dir")
            .arg(&data)
            .args(["--https-listen-port", &port.to_string()])
            .args(["--bind-address", "127.0.0.1", "--node-name", "bench"])
            // The control plane alone: these benchmarks bring hollow nodes.
            .arg("--disable-agent")
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let tls = data.join("server").join("tls");
        let mut server = K3rsServer {
            child,
            port,
            credentials: Credentials {
                ca: tls.join("server-ca.crt"),
                cert: tls.join("client-admin.crt"),
                key: tls.join("client-admin.key"),
            },
            kubeconfig,
            store_dir: data.join("server").join("db"),
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for k3rs")? {
                bail!(
                    "k3rs exited during start-up ({status}); see {}",
                    self.log.display()
                );
            }
            if self.credentials.key.exists() {
                if let Ok(client) = ApiClient::connect(self.port, &self.credentials, 1).await {
                    if client.get("/readyz").await.is_ok() {
                        return Ok(());
                    }
                }
            }
            if start.elapsed() > START_TIMEOUT {
                bail!(
                    "k3rs was not ready on port {} within {START_TIMEOUT:?}; see {}",
                    self.port,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server process's id (for its memory).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for K3rsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident set size of process `pid` in MiB (`VmRSS`).
pub(crate) fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no VmRSS for process {pid}"))?;
    Ok(kib / 1024.0)
}

/// The bytes of every file under `path` (0 if it does not exist).
pub(crate) fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| disk_bytes(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// CPU time (user and system) process `pid` has used so far, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // After the command name (in parentheses, which may hold spaces): state is field 3, utime
    // and stime are fields 14 and 15, in clock ticks of USER_HZ (100 on Linux).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> Result<f64> {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .with_context(|| format!("no field {} in /proc/{pid}/stat", index + 3))
    };
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// Clock ticks per second in `/proc/<pid>/stat` (fixed by the kernel ABI).
const USER_HZ: f64 = 100.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let pid = std::process::id();
        let start = cpu_seconds(pid).unwrap();
        let mut x = 0u64;
        let begin = Instant::now();
        while begin.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_seconds(pid).unwrap() > start);
        assert!(rss_mib(pid).unwrap() > 0.0);
    }

    #[test]
    fn disk_bytes_adds_up_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 23]).unwrap();
        assert_eq!(disk_bytes(dir.path()), 123);
        assert_eq!(disk_bytes(&dir.path().join("a")), 100);
        assert_eq!(disk_bytes(&dir.path().join("missing")), 0);
    }
}
