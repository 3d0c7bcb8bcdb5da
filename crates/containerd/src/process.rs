//! containerd as a supervised child of k3rs: started with k3rs's config, restarted with back-off
//! when it exits, stopped on request; its containers outlive it.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::UnixStream;
use tokio::process::Child;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{ConfigError, ContainerdConfig};
use crate::cri::{CriClient, CriError};
use crate::paths::{fits_unix_socket, ContainerdPaths, MAX_SOCKET_PATH_BYTES};
use crate::sys;

/// The first restart waits this long; each further attempt doubles it.
pub const RESTART_DELAY_MIN: Duration = Duration::from_secs(1);
/// The longest wait between restarts.
pub const RESTART_DELAY_MAX: Duration = Duration::from_secs(30);
/// A containerd that ran this long before it exited starts the back-off afresh.
pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);
/// Lines of containerd's log quoted in a start-up error.
const LOG_TAIL_LINES: usize = 20;
/// Bytes of containerd's log read for those lines.
const LOG_TAIL_BYTES: u64 = 16 << 10;
/// How often start-up polls CRI `Version`.
const READY_POLL: Duration = Duration::from_millis(50);

/// How to run one node's containerd.
#[derive(Debug, Clone)]
pub struct ContainerdSettings {
    /// The `containerd` binary: a path, or a name looked up on `PATH`.
    pub binary: PathBuf,
    /// The config written to [`Self::config_file`] at start.
    pub config: ContainerdConfig,
    /// Where the config is written (0600).
    pub config_file: PathBuf,
    /// containerd's stdout and stderr are appended here.
    pub log_file: PathBuf,
    /// How long a start waits for CRI `Version` to answer.
    pub ready_timeout: Duration,
    /// How long a stop waits after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
}

impl ContainerdSettings {
    /// The settings for a node's `paths` and `config`: `containerd` from `PATH`, 60 s to
    /// become ready, 10 s to stop.
    pub fn new(paths: &ContainerdPaths, config: ContainerdConfig) -> Self {
        ContainerdSettings {
            binary: PathBuf::from("containerd"),
            config,
            config_file: paths.config_file.clone(),
            log_file: paths.log_file.clone(),
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// What the supervised containerd is doing (see [`Containerd::state`]).
#[derive(Debug, Clone)]
pub enum RuntimeState {
    /// Running and answering CRI.
    Running {
        /// Its process id.
        pid: u32,
    },
    /// Not running; the supervisor starts it again after `retry_in`.
    Restarting {
        /// Why the last run (or start attempt) ended.
        cause: RestartCause,
        /// Restart attempts since containerd last ran for [`RESTART_RESET_AFTER`] (1 = first).
        attempt: u32,
        /// The back-off before this attempt.
        retry_in: Duration,
    },
    /// Stopped on request; nothing restarts it.
    Stopped,
}

/// Why containerd is being restarted.
#[derive(Debug, Clone)]
pub enum RestartCause {
    /// It exited (or was killed).
    Exited(ExitStatus),
    /// The binary could not be started.
    SpawnFailed(Arc<io::Error>),
    /// It started but CRI did not answer in time; it was killed.
    NotReady {
        /// How long CRI was polled.
        waited: Duration,
    },
    /// Waiting for it failed; it was killed.
    WaitFailed(Arc<io::Error>),
}

impl std::fmt::Display for RestartCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartCause::Exited(status) => write!(f, "containerd exited ({status})"),
            RestartCause::SpawnFailed(error) => write!(f, "containerd could not start: {error}"),
            RestartCause::NotReady { waited } => {
                write!(f, "containerd did not answer CRI within {waited:?}")
            }
            RestartCause::WaitFailed(error) => write!(f, "waiting for containerd failed: {error}"),
        }
    }
}

/// Why containerd could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// The socket path does not fit a unix socket address.
    #[error(
        "containerd socket {path}: {len} bytes, longer than a unix socket path may be \
         ({MAX_SOCKET_PATH_BYTES}); use a shorter data dir"
    )]
    SocketPathTooLong {
        /// The socket.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// Something already answers on the socket.
    #[error("containerd socket {path}: another process (a containerd?) already listens there")]
    SocketInUse {
        /// The socket.
        path: PathBuf,
    },
    /// Probing the socket failed for another reason than nothing listening.
    #[error("containerd socket {path}: probing it")]
    ProbeSocket {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The binary is neither a file nor on `PATH`.
    #[error("containerd binary {binary}: not found (is containerd installed and on PATH?)")]
    BinaryNotFound {
        /// The binary as given.
        binary: PathBuf,
    },
    /// A directory could not be created.
    #[error("creating directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The config could not be rendered.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file could not be written.
    #[error("writing containerd config {path}")]
    WriteConfig {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The process could not be started (or its log opened).
    #[error("starting containerd {binary} (log {log_file})")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The log file.
        log_file: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// containerd exited before CRI answered.
    #[error("containerd exited during start ({status}); last lines of {log_file}:\n{tail}")]
    ExitedDuringStart {
        /// How it exited.
        status: ExitStatus,
        /// Its log.
        log_file: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// CRI did not answer in time; containerd was killed.
    #[error(
        "containerd on {socket} did not answer CRI within {waited:?}; last lines of {log_file}:\n{tail}"
    )]
    NotReady {
        /// The socket.
        socket: PathBuf,
        /// How long it waited.
        waited: Duration,
        /// Its log.
        log_file: PathBuf,
        /// The log's last lines.
        tail: String,
        /// The last CRI error seen.
        #[source]
        last_error: Option<Box<CriError>>,
    },
    /// Waiting for or signalling the process failed.
    #[error("stopping containerd")]
    Stop {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The supervisor task panicked or was cancelled.
    #[error("containerd supervisor task")]
    Supervisor {
        /// The task's failure.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// A running containerd under supervision. Dropping it stops containerd as [`Containerd::stop`]
/// does, in the background.
#[derive(Debug)]
pub struct Containerd {
    socket: PathBuf,
    state: watch::Receiver<RuntimeState>,
    stop: watch::Sender<bool>,
    supervisor: JoinHandle<Result<Option<ExitStatus>, ContainerdError>>,
}

impl Containerd {
    /// Writes the config, starts containerd and waits until CRI `Version` answers; then
    /// supervises it (restarts with back-off from [`RESTART_DELAY_MIN`] to
    /// [`RESTART_DELAY_MAX`]). Refuses a socket path too long for a unix socket and a socket
    /// something already answers on.
    pub async fn start(settings: ContainerdSettings) -> Result<Containerd, ContainerdError> {
        let config = &settings.config;
        for socket in [&config.grpc_socket, &config.ttrpc_socket] {
            if !fits_unix_socket(socket) {
                return Err(ContainerdError::SocketPathTooLong {
                    path: socket.clone(),
                    len: socket.as_os_str().len(),
                });
            }
        }
        ensure_nothing_listens(&config.grpc_socket).await?;
        let binary = find_binary(&settings.binary, std::env::var_os("PATH").as_deref())
            .ok_or_else(|| ContainerdError::BinaryNotFound {
                binary: settings.binary.clone(),
            })?;
        let text = config.render()?;
        create_dirs(&settings)?;
        write_private_file(&settings.config_file, text.as_bytes()).map_err(|source| {
            ContainerdError::WriteConfig {
                path: settings.config_file.clone(),
                source,
            }
        })?;

        let launcher = Launcher {
            binary,
            config_file: settings.config_file.clone(),
            log_file: settings.log_file.clone(),
            socket: config.grpc_socket.clone(),
            ready_timeout: settings.ready_timeout,
            stop_timeout: settings.stop_timeout,
            spawner: Spawner::start().map_err(|source| ContainerdError::Spawn {
                binary: settings.binary.clone(),
                log_file: settings.log_file.clone(),
                source,
            })?,
        };
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let child = match launcher.launch(&mut stop_rx).await {
            Ok(child) => child,
            Err(failure) => return Err(launcher.start_error(failure)),
        };
        let pid = child.id().unwrap_or_default();
        tracing::info!(pid, socket = %launcher.socket.display(), "containerd is running");
        let (state_tx, state_rx) = watch::channel(RuntimeState::Running { pid });
        let supervisor = tokio::spawn(supervise(launcher, child, stop_rx, state_tx));
        Ok(Containerd {
            socket: config.grpc_socket.clone(),
            state: state_rx,
            stop: stop_tx,
            supervisor,
        })
    }

    /// The gRPC socket (native API and CRI).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Follows the runtime's state: the kubelet turns `Restarting` into a node condition and
    /// an event.
    pub fn state(&self) -> watch::Receiver<RuntimeState> {
        self.state.clone()
    }

    /// containerd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        match *self.state.borrow() {
            RuntimeState::Running { pid } => Some(pid),
            RuntimeState::Restarting { .. } | RuntimeState::Stopped => None,
        }
    }

    /// Stops containerd: SIGTERM, then SIGKILL after the stop timeout. Its shims and containers
    /// keep running; the next start adopts them. Returns how it exited (`None` when it was
    /// between restarts).
    pub async fn stop(self) -> Result<Option<ExitStatus>, ContainerdError> {
        self.stop.send_replace(true);
        self.supervisor
            .await
            .map_err(|source| ContainerdError::Supervisor { source })?
    }
}

/// Fails when something accepts connections on `socket` (containerd would unlink it and take
/// it over). A socket file nobody listens on is left for containerd to replace.
async fn ensure_nothing_listens(socket: &Path) -> Result<(), ContainerdError> {
    match UnixStream::connect(socket).await {
        Ok(_) => Err(ContainerdError::SocketInUse {
            path: socket.to_path_buf(),
        }),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(())
        }
        Err(source) => Err(ContainerdError::ProbeSocket {
            path: socket.to_path_buf(),
            source,
        }),
    }
}

/// `binary` itself when it names a path (has a `/`), else the first executable file of that
/// name in the `PATH` value `path_var`.
pub fn find_binary(binary: &Path, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if binary.components().count() > 1 || binary.is_absolute() {
        return binary.is_file().then(|| binary.to_path_buf());
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn create_dirs(settings: &ContainerdSettings) -> Result<(), ContainerdError> {
    let config = &settings.config;
    let mut dirs: Vec<(&Path, u32)> = vec![
        (&config.root, 0o711),
        (&config.state, 0o711),
        (&config.opt, 0o711),
        (&config.cni_conf_dir, 0o755),
    ];
    for file in [
        &config.grpc_socket,
        &config.ttrpc_socket,
        &settings.config_file,
        &settings.log_file,
    ] {
        if let Some(parent) = file.parent() {
            dirs.push((parent, 0o711));
        }
    }
    for (dir, mode) in dirs {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|source| ContainerdError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// Writes `contents` to `path` atomically (a 0600 temporary file beside it, synced, renamed).
fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// The attempt number after a run of `ran_for` that followed attempt `previous` (0 = the first
/// run): back to 1 after a long run, else one more.
pub fn next_attempt(previous: u32, ran_for: Duration) -> u32 {
    if ran_for >= RESTART_RESET_AFTER {
        1
    } else {
        previous.saturating_add(1)
    }
}

/// The back-off before restart attempt `attempt` (1-based): 1 s, 2 s, 4 s, … at most 30 s.
pub fn restart_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    RESTART_DELAY_MIN
        .saturating_mul(1 << doublings)
        .min(RESTART_DELAY_MAX)
}

/// The last `n` lines of `text` (a partial first line, cut by a byte offset, is dropped when
/// more lines follow).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last lines containerd wrote to `log_file` after byte `since`.
fn log_tail(log_file: &Path, since: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(log_file)?;
        let end = file.metadata()?.len();
        let from = since.max(end.saturating_sub(LOG_TAIL_BYTES));
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        // A read that starts mid-file starts mid-line: drop that partial line.
        let text = match (from > since, text.split_once('\n')) {
            (true, Some((_, rest))) => rest.to_owned(),
            _ => text.into_owned(),
        };
        Ok(last_lines(&text, LOG_TAIL_LINES))
    };
    match read() {
        Ok(tail) if tail.trim().is_empty() => "(nothing)".to_owned(),
        Ok(tail) => tail,
        Err(error) => format!("(cannot read the log: {error})"),
    }
}

/// Spawns containerd from a thread of its own: PR_SET_PDEATHSIG fires when the thread that
/// forked the child exits, so the parent must be a thread that lives exactly as long as the
/// supervision (tokio's blocking-pool threads come and go). The thread ends when this is
/// dropped, which the supervisor does only after containerd was reaped.
#[derive(Debug)]
struct Spawner {
    requests: mpsc::Sender<SpawnRequest>,
}

#[derive(Debug)]
struct SpawnRequest {
    command: tokio::process::Command,
    reply: oneshot::Sender<io::Result<Child>>,
}

impl Spawner {
    fn start() -> io::Result<Spawner> {
        let runtime = tokio::runtime::Handle::current();
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("containerd-parent".to_owned())
            .stack_size(256 << 10)
            .spawn(move || {
                // tokio's process driver (child reaping) belongs to the runtime.
                let _runtime = runtime.enter();
                for mut request in incoming {
                    let _ = request.reply.send(request.command.spawn());
                }
            })?;
        Ok(Spawner { requests })
    }

    async fn spawn(&self, command: tokio::process::Command) -> io::Result<Child> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(SpawnRequest { command, reply })
            .map_err(|_| io::Error::other("containerd spawner thread is gone"))?;
        answer
            .await
            .map_err(|_| io::Error::other("containerd spawner thread is gone"))?
    }
}

/// Why one launch did not give a running containerd.
#[derive(Debug)]
enum LaunchFailure {
    Spawn(io::Error),
    Exited {
        status: ExitStatus,
        tail: String,
    },
    NotReady {
        waited: Duration,
        tail: String,
        last_error: Option<CriError>,
    },
    WaitFailed(io::Error),
    /// A stop was requested meanwhile; containerd was stopped.
    Stopped(io::Result<ExitStatus>),
}

/// Starts containerd processes with the same binary, config and log.
#[derive(Debug)]
struct Launcher {
    binary: PathBuf,
    config_file: PathBuf,
    log_file: PathBuf,
    socket: PathBuf,
    ready_timeout: Duration,
    stop_timeout: Duration,
    spawner: Spawner,
}

enum LaunchEvent {
    Ready,
    NotReady(Option<CriError>),
    Exited(io::Result<ExitStatus>),
    StopRequested,
}

impl Launcher {
    /// Starts containerd and waits until CRI `Version` answers.
    async fn launch(&self, stop: &mut watch::Receiver<bool>) -> Result<Child, LaunchFailure> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.log_file)
            .map_err(LaunchFailure::Spawn)?;
        let log_start = log.metadata().map(|meta| meta.len()).unwrap_or(0);
        let stderr = log.try_clone().map_err(LaunchFailure::Spawn)?;
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("--config")
            .arg(&self.config_file)
            // containerd would tell k3rs's own systemd unit it is ready.
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Its own process group: a Ctrl-C in k3rs's terminal reaches k3rs only, which
            // then stops containerd in order.
            .process_group(0);
        sys::kill_with_parent(&mut command);
        let mut child = self
            .spawner
            .spawn(command)
            .await
            .map_err(LaunchFailure::Spawn)?;
        let started = Instant::now();

        let event = tokio::select! {
            ready = wait_for_cri(&self.socket, self.ready_timeout) => match ready {
                Ok(()) => LaunchEvent::Ready,
                Err(last_error) => LaunchEvent::NotReady(last_error),
            },
            status = child.wait() => LaunchEvent::Exited(status),
            () = stop_requested(stop) => LaunchEvent::StopRequested,
        };
        match event {
            LaunchEvent::Ready => Ok(child),
            LaunchEvent::Exited(Ok(status)) => Err(LaunchFailure::Exited {
                status,
                tail: log_tail(&self.log_file, log_start),
            }),
            LaunchEvent::Exited(Err(error)) => {
                let _ = child.start_kill();
                Err(LaunchFailure::WaitFailed(error))
            }
            LaunchEvent::NotReady(last_error) => {
                let _ = child.kill().await;
                Err(LaunchFailure::NotReady {
                    waited: started.elapsed(),
                    tail: log_tail(&self.log_file, log_start),
                    last_error,
                })
            }
            LaunchEvent::StopRequested => Err(LaunchFailure::Stopped(
                terminate(&mut child, self.stop_timeout).await,
            )),
        }
    }

    fn start_error(&self, failure: LaunchFailure) -> ContainerdError {
        match failure {
            LaunchFailure::Spawn(source) | LaunchFailure::WaitFailed(source) => {
                ContainerdError::Spawn {
                    binary: self.binary.clone(),
                    log_file: self.log_file.clone(),
                    source,
                }
            }
            LaunchFailure::Exited { status, tail } => ContainerdError::ExitedDuringStart {
                status,
                log_file: self.log_file.clone(),
                tail,
            },
            LaunchFailure::NotReady {
                waited,
                tail,
                last_error,
            } => ContainerdError::NotReady {
                socket: self.socket.clone(),
                waited,
                log_file: self.log_file.clone(),
                tail,
                last_error: last_error.map(Box::new),
            },
            // Nothing can request a stop before `start` returns.
            LaunchFailure::Stopped(Err(source)) => ContainerdError::Stop { source },
            LaunchFailure::Stopped(Ok(status)) => ContainerdError::ExitedDuringStart {
                status,
                log_file: self.log_file.clone(),
                tail: log_tail(&self.log_file, 0),
            },
        }
    }
}

/// Resolves once a stop is requested (or the [`Containerd`] handle is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Polls CRI `Version` on `socket` until it answers; gives up after `timeout` with the last
/// error.
async fn wait_for_cri(socket: &Path, timeout: Duration) -> Result<(), Option<CriError>> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    while Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, cri_version(socket)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => last_error = Some(error),
            Err(_elapsed) => break,
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Err(last_error)
}

async fn cri_version(socket: &Path) -> Result<(), CriError> {
    CriClient::connect(socket).await?.version().await.map(drop)
}

/// SIGTERM, up to `grace` for it to exit, then SIGKILL.
async fn terminate(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    // `id()` is `None` once the child was reaped: its pid may belong to another process by then.
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        if let Err(errno) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
            tracing::warn!(pid, %errno, "sending SIGTERM to containerd");
        }
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_elapsed) => {
            tracing::warn!(?grace, "containerd did not exit after SIGTERM; killing it");
            child.kill().await?;
            child.wait().await
        }
    }
}

enum RunEvent {
    Exited(io::Result<ExitStatus>),
    StopRequested,
}

/// Watches the running containerd, restarts it when it exits, stops it on request.
async fn supervise(
    launcher: Launcher,
    mut child: Child,
    mut stop: watch::Receiver<bool>,
    state: watch::Sender<RuntimeState>,
) -> Result<Option<ExitStatus>, ContainerdError> {
    let mut attempt = 0;
    let mut running_since = Instant::now();
    loop {
        let event = tokio::select! {
            status = child.wait() => RunEvent::Exited(status),
            () = stop_requested(&mut stop) => RunEvent::StopRequested,
        };
        let mut cause = match event {
            RunEvent::StopRequested => {
                let status = terminate(&mut child, launcher.stop_timeout).await;
                state.send_replace(RuntimeState::Stopped);
                tracing::info!(?status, "containerd stopped");
                return status
                    .map(Some)
                    .map_err(|source| ContainerdError::Stop { source });
            }
            RunEvent::Exited(Ok(status)) => RestartCause::Exited(status),
            RunEvent::Exited(Err(error)) => {
                let _ = child.start_kill();
                RestartCause::WaitFailed(Arc::new(error))
            }
        };
        attempt = next_attempt(attempt, running_since.elapsed());
        loop {
            let retry_in = restart_delay(attempt);
            tracing::warn!(%cause, attempt, ?retry_in, "restarting containerd");
            state.send_replace(RuntimeState::Restarting {
                cause: cause.clone(),
                attempt,
                retry_in,
            });
            let stopped = tokio::select! {
                () = tokio::time::sleep(retry_in) => false,
                () = stop_requested(&mut stop) => true,
            };
            if stopped {
                state.send_replace(RuntimeState::Stopped);
                return Ok(None);
            }
            match launcher.launch(&mut stop).await {
                Ok(next) => {
                    child = next;
                    running_since = Instant::now();
                    let pid = child.id().unwrap_or_default();
                    tracing::info!(pid, attempt, "containerd is running again");
                    state.send_replace(RuntimeState::Running { pid });
                    break;
                }
                Err(failure) => match failure.into_restart_cause() {
                    Ok(next_cause) => {
                        cause = next_cause;
                        attempt = attempt.saturating_add(1);
                    }
                    Err(stopped) => {
                        state.send_replace(RuntimeState::Stopped);
                        return stopped
                            .map(Some)
                            .map_err(|source| ContainerdError::Stop { source });
                    }
                },
            }
        }
    }
}

impl LaunchFailure {
    /// The restart cause this failure reports (and logs), or how containerd exited when the
    /// launch ended in a stop.
    fn into_restart_cause(self) -> Result<RestartCause, io::Result<ExitStatus>> {
        match self {
            LaunchFailure::Spawn(error) => Ok(RestartCause::SpawnFailed(Arc::new(error))),
            LaunchFailure::WaitFailed(error) => Ok(RestartCause::WaitFailed(Arc::new(error))),
            LaunchFailure::Exited { status, tail } => {
                tracing::warn!(%status, log = %tail, "containerd exited during restart");
                Ok(RestartCause::Exited(status))
            }
            LaunchFailure::NotReady {
                waited,
                tail,
                last_error,
            } => {
                tracing::warn!(?waited, log = %tail, ?last_error, "containerd did not become ready");
                Ok(RestartCause::NotReady { waited })
            }
            LaunchFailure::Stopped(status) => Err(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_thirty_seconds() {
        let delays: Vec<u64> = (1..=8).map(|a| restart_delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(restart_delay(0), RESTART_DELAY_MIN);
        assert_eq!(restart_delay(u32::MAX), RESTART_DELAY_MAX);
    }

    #[test]
    fn a_long_run_resets_the_attempts() {
        assert_eq!(next_attempt(0, Duration::from_millis(10)), 1);
        assert_eq!(next_attempt(3, Duration::from_secs(5)), 4);
        assert_eq!(next_attempt(7, RESTART_RESET_AFTER), 1);
        assert_eq!(next_attempt(u32::MAX, Duration::ZERO), u32::MAX);
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn log_tail_reads_only_what_this_start_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("containerd.log");
        fs::write(&log, "old run\n").unwrap();
        let since = fs::metadata(&log).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        for i in 0..30 {
            writeln!(file, "line {i}").unwrap();
        }
        let tail = log_tail(&log, since);
        assert!(tail.starts_with("line 10\n"), "{tail}");
        assert!(tail.ends_with("line 29"), "{tail}");
        assert_eq!(
            log_tail(&log, fs::metadata(&log).unwrap().len()),
            "(nothing)"
        );
        assert!(log_tail(&dir.path().join("missing"), 0).starts_with("(cannot read the log"));
    }

    #[test]
    fn binaries_are_found_by_path_or_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("containerd");
        fs::write(&binary, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("not-executable");
        fs::write(&plain, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
        let path_var =
            std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            find_binary(Path::new("containerd"), Some(&path_var)),
            Some(binary.clone())
        );
        assert_eq!(
            find_binary(Path::new("not-executable"), Some(&path_var)),
            None
        );
        assert_eq!(find_binary(Path::new("containerd"), None), None);
        assert_eq!(find_binary(&binary, None), Some(binary.clone()));
        assert_eq!(find_binary(&dir.path().join("missing"), None), None);
    }

    #[test]
    fn config_files_are_written_private_and_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        write_private_file(&file, b"version = 2\n").unwrap();
        write_private_file(&file, b"version = 2\nroot = \"/x\"\n").unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "version = 2\nroot = \"/x\"\n"
        );
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn restart_causes_read_as_sentences() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            RestartCause::Exited(ExitStatus::from_raw(9)).to_string(),
            "containerd exited (signal: 9 (SIGKILL))"
        );
        assert_eq!(
            RestartCause::NotReady {
                waited: Duration::from_secs(60)
            }
            .to_string(),
            "containerd did not answer CRI within 60s"
        );
    }
}
