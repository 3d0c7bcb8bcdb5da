//! An etcd 3.4 server for one benchmark run: loopback only, free ports, a temporary data dir,
//! etcd's default durability (an fsync per commit), killed when dropped.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions};

/// How long etcd may take to answer its first status request.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running etcd child process.
#[derive(Debug)]
pub(crate) struct EtcdServer {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl EtcdServer {
    /// Starts `binary` with its data in `dir/data` and its log in `dir/etcd.log`, and waits until
    /// it answers.
    pub(crate) async fn start(binary: &Path, dir: &Path) -> Result<(Self, Client)> {
        let (client_port, peer_port) = two_free_ports()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = dir.join("data");
        let log = dir.join("etcd.log");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let log_file_err = log_file
            .try_clone()
            .with_context(|| format!("opening {} twice", log.display()))?;

        let mut cmd = Command::new(binary);
        cmd.arg("--name=default")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_file_err);
        // etcd reads every flag from ETCD_* variables too; none from our environment may leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = EtcdServer {
            child,
            endpoint: client_url,
            log,
        };
        let client = server.wait_ready().await?;
        Ok((server, client))
    }

    async fn wait_ready(&mut self) -> Result<Client> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for etcd")? {
                bail!(
                    "etcd exited during start-up ({status}); {}",
                    self.log_tail()
                );
            }
            let options = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(1))
                .with_timeout(Duration::from_secs(60));
            if let Ok(mut client) = Client::connect([&self.endpoint], Some(options)).await {
                if client.status().await.is_ok() {
                    return Ok(client);
                }
            }
            if start.elapsed() > START_TIMEOUT {
                bail!(
                    "etcd did not answer on {} within {START_TIMEOUT:?}; {}",
                    self.endpoint,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server process's id (for its memory).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines.get(lines.len().saturating_sub(10)..).unwrap_or(&[]);
        format!("last lines of {}:\n{}", self.log.display(), tail.join("\n"))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // SIGKILL is fine: the data dir is thrown away with the run.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The version line of `binary --version` ("3.4.23").
pub(crate) fn version(binary: &Path) -> Result<String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("etcd Version:"))
        .map(|version| version.trim().to_owned())
        .with_context(|| format!("{} --version printed no version", binary.display()))
}

/// Two distinct free loopback ports (both held open until both are known).
fn two_free_ports() -> Result<(u16, u16)> {
    let first = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    let second = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}
