//! containerd as a supervised child: start, CRI, `kill -9` and restart, two nodes side by side,
//! refusals, stop. Needs root and a `containerd` binary on PATH (else the test says why it skips).

// Test helpers unwrap: a failure there is the test failing.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k3rs_containerd::process::find_binary;
use k3rs_containerd::{
    Containerd, ContainerdConfig, ContainerdError, ContainerdPaths, ContainerdSettings, CriClient,
    HostFacts, RestartCause, RuntimeState,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

/// Why this machine cannot run containerd for the tests, if it cannot.
fn skip_reason() -> Option<&'static str> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("containerd needs root");
    }
    if find_binary(Path::new("containerd"), std::env::var_os("PATH").as_deref()).is_none() {
        return Some("no containerd binary on PATH");
    }
    None
}

macro_rules! require_containerd {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("skipping: {reason}");
            return;
        }
    };
}

/// A node's data dir in a temporary directory, and the settings of its containerd.
struct Node {
    /// Removed on drop; `None` in the stand-in k3rs, whose test owns the directory.
    _temporary: Option<TempDir>,
    root: PathBuf,
    paths: ContainerdPaths,
}

impl Node {
    fn at(root: PathBuf) -> Node {
        let paths = ContainerdPaths::for_data_dir(&root);
        Node {
            _temporary: None,
            root,
            paths,
        }
    }

    fn new() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("k3rs-ctrd")
            .tempdir()
            .unwrap();
        Node {
            _temporary: None,
            ..Node::at(dir.path().to_path_buf())
        }
        .owning(dir)
    }

    fn owning(mut self, dir: TempDir) -> Node {
        self._temporary = Some(dir);
        self
    }

    fn settings(&self, host: &HostFacts) -> ContainerdSettings {
        let cni_bin = if Path::new("/usr/lib/cni").is_dir() {
            PathBuf::from("/usr/lib/cni")
        } else {
            self.root.join("cni-bin")
        };
        let mut config = ContainerdConfig::new(
            &self.paths,
            "k3rs.test/pause:none",
            cni_bin,
            self.root.join("agent/etc/cni/net.d"),
        );
        config.stream_server_port = 0;
        config.restrict_oom_score_adj = host.restrict_oom_score_adj();
        config.cgroup_driver = host.cgroup_driver();
        let mut settings = ContainerdSettings::new(&self.paths, config);
        settings.ready_timeout = Duration::from_secs(60);
        settings
    }

    /// Pids of processes whose command line names this node's config file.
    fn containerd_pids(&self) -> Vec<i32> {
        let config = self.paths.config_file.to_str().unwrap().to_owned();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == config.as_bytes())
            {
                pids.push(pid);
            }
        }
        pids
    }
}

async fn wait_for_state(
    state: &mut tokio::sync::watch::Receiver<RuntimeState>,
    what: &str,
    accept: impl Fn(&RuntimeState) -> bool,
) -> RuntimeState {
    let waited = tokio::time::timeout(Duration::from_secs(60), state.wait_for(|s| accept(s)))
        .await
        .map(|seen| seen.map(|seen| seen.clone()));
    match waited {
        Ok(Ok(seen)) => seen,
        Ok(Err(_)) => panic!("state channel closed while waiting for {what}"),
        Err(_) => panic!("no {what} within 60 s; state is {:?}", *state.borrow()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_answers_cri_restarts_after_kill_and_stops() {
    require_containerd!();
    let host = HostFacts::detect().unwrap();
    eprintln!("host: {host:?}");
    let node = Node::new();
    let containerd = Containerd::start(node.settings(&host)).await.unwrap();
    let config = fs::read_to_string(&node.paths.config_file).unwrap();
    assert!(config.contains("version = 2"));
    assert_eq!(
        fs::metadata(&node.paths.config_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let client = CriClient::connect(containerd.socket()).await.unwrap();
    let version = client.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");
    let conditions = client
        .wait_runtime_ready(Duration::from_secs(30), Duration::from_millis(100))
        .await
        .unwrap();
    eprintln!("conditions: {conditions}");
    assert!(conditions.runtime.ready);
    // No conflist in the CNI conf dir yet.
    assert!(!conditions.network.ready, "{conditions}");

    // kill -9: the supervisor restarts it.
    let first_pid = containerd.pid().unwrap();
    assert_eq!(node.containerd_pids(), [first_pid as i32]);
    let mut state = containerd.state();
    kill(Pid::from_raw(first_pid as i32), Signal::SIGKILL).unwrap();
    let restarting = wait_for_state(&mut state, "Restarting", |s| {
        matches!(s, RuntimeState::Restarting { .. })
    })
    .await;
    match restarting {
        RuntimeState::Restarting {
            cause: RestartCause::Exited(status),
            attempt,
            retry_in,
        } => {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9));
            assert_eq!(attempt, 1);
            assert_eq!(retry_in, Duration::from_secs(1));
        }
        other => panic!("unexpected state {other:?}"),
    }
    let running = wait_for_state(&mut state, "Running", |s| {
        matches!(s, RuntimeState::Running { .. })
    })
    .await;
    let RuntimeState::Running { pid: second_pid } = running else {
        unreachable!()
    };
    assert_ne!(second_pid, first_pid);
    assert_eq!(node.containerd_pids(), [second_pid as i32]);

    // The client made before the restart reconnects by itself.
    let mut answered = None;
    for _ in 0..50 {
        match client.version().await {
            Ok(version) => {
                answered = Some(version);
                break;
            }
            Err(error) => {
                eprintln!("old client after restart: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(answered.unwrap().runtime_name, "containerd");

    // stop: SIGTERM, and nothing of this node's containerd is left.
    let status = containerd.stop().await.unwrap().unwrap();
    eprintln!("containerd exited: {status}");
    assert!(status.success() || status.code().is_some(), "{status}");
    assert!(node.containerd_pids().is_empty());
    assert!(matches!(*state.borrow(), RuntimeState::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_run_side_by_side_and_a_busy_socket_is_refused() {
    require_containerd!();
    let host = HostFacts::detect().unwrap();
    let (a, b) = (Node::new(), Node::new());
    // A lazy client can be made before its runtime is up.
    let early = CriClient::connect_lazy(&b.paths.grpc_socket);
    assert!(early.version().await.is_err());
    let (first, second) = tokio::join!(
        Containerd::start(a.settings(&host)),
        Containerd::start(b.settings(&host))
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.socket(), second.socket());
    assert_ne!(first.pid(), second.pid());
    for containerd in [&first, &second] {
        let client = CriClient::connect(containerd.socket()).await.unwrap();
        assert_eq!(client.version().await.unwrap().runtime_name, "containerd");
    }
    assert_eq!(early.version().await.unwrap().runtime_name, "containerd");

    // A second containerd for node a would take its socket over: refused, and a's keeps running.
    let refused = Containerd::start(a.settings(&host)).await.unwrap_err();
    assert!(
        matches!(&refused, ContainerdError::SocketInUse { path } if path == first.socket()),
        "{refused}"
    );
    assert!(refused
        .to_string()
        .contains(&*first.socket().to_string_lossy()));
    assert_eq!(a.containerd_pids().len(), 1);

    first.stop().await.unwrap();
    second.stop().await.unwrap();
    assert!(a.containerd_pids().is_empty());
    assert!(b.containerd_pids().is_empty());
}

#[tokio::test]
async fn socket_paths_too_long_are_refused_by_name() {
    // Needs neither root nor containerd: the check comes before anything is created.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("d".repeat(90));
    let paths = ContainerdPaths::for_data_dir(&data_dir);
    let config = ContainerdConfig::new(&paths, "pause", "/usr/lib/cni", data_dir.join("cni"));
    let error = Containerd::start(ContainerdSettings::new(&paths, config))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ContainerdError::SocketPathTooLong { path, .. } if *path == paths.grpc_socket),
        "{error}"
    );
    assert!(error
        .to_string()
        .contains(&*paths.grpc_socket.to_string_lossy()));
    assert!(!data_dir.exists());
}

#[tokio::test]
async fn a_containerd_that_exits_during_start_is_reported_with_its_log() {
    // A stand-in binary that fails as a misconfigured containerd would.
    let node = Node::new();
    let binary = node.root.join("failing-containerd");
    fs::write(
        &binary,
        "#!/bin/sh\necho \"config: $2\"\necho 'containerd: failed to load plugin' >&2\nexit 3\n",
    )
    .unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
    let host = HostFacts {
        cgroup_layout: k3rs_containerd::CgroupLayout::V2,
        cgroup_controllers: Default::default(),
        started_by_systemd: false,
        in_user_namespace: false,
        can_lower_oom_score_adj: true,
    };
    let mut settings = node.settings(&host);
    settings.binary = binary;
    // Another thread forking while the script was open for writing makes exec fail with
    // ETXTBSY for that moment: try again.
    let mut result = Containerd::start(settings.clone()).await;
    for _ in 0..5 {
        match &result {
            Err(ContainerdError::Spawn { source, .. })
                if source.raw_os_error() == Some(nix::libc::ETXTBSY) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                result = Containerd::start(settings.clone()).await;
            }
            _ => break,
        }
    }
    let error = result.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, ContainerdError::ExitedDuringStart { status, .. } if status.code() == Some(3)),
        "{message}"
    );
    assert!(
        message.contains("containerd: failed to load plugin"),
        "{message}"
    );
    assert!(
        message.contains(&format!("config: {}", node.paths.config_file.display())),
        "{message}"
    );
    assert!(
        message.contains(&*node.paths.log_file.to_string_lossy()),
        "{message}"
    );
}

/// Set for the child process that plays k3rs in [`containerd_dies_with_its_parent`]: the node's
/// data dir.
const STAND_IN_DATA_DIR: &str = "K3RS_CONTAINERD_TEST_STAND_IN_DATA_DIR";

/// Not a test of its own: the body of the child process [`containerd_dies_with_its_parent`]
/// starts (this test binary again, with [`STAND_IN_DATA_DIR`] set). It starts containerd, prints
/// its pid and waits to be killed; without the variable it returns at once.
#[test]
fn stand_in_k3rs() {
    let Some(data_dir) = std::env::var_os(STAND_IN_DATA_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let host = HostFacts::detect().unwrap();
        let node = Node::at(PathBuf::from(data_dir));
        let containerd = Containerd::start(node.settings(&host)).await.unwrap();
        println!("containerd-pid={}", containerd.pid().unwrap());
        std::future::pending::<()>().await;
    });
}

/// Kills this node's containerd processes, whatever happens in the test.
struct KillLeftovers<'a>(&'a Node);

impl Drop for KillLeftovers<'_> {
    fn drop(&mut self) {
        for pid in self.0.containerd_pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[test]
fn containerd_dies_with_its_parent() {
    require_containerd!();
    use std::io::BufRead;
    let node = Node::new();
    let _leftovers = KillLeftovers(&node);
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stand_in_k3rs",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STAND_IN_DATA_DIR, &node.root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(parent.stdout.take().unwrap());
    // libtest prints "test stand_in_k3rs ... " before the line, without a newline.
    let pid = stdout.lines().map_while(Result::ok).find_map(|line| {
        line.split_once("containerd-pid=")
            .map(|(_, pid)| pid.trim().parse::<i32>().unwrap())
    });
    let Some(pid) = pid else {
        let _ = parent.kill();
        panic!(
            "the stand-in k3rs did not start containerd: {:?}",
            parent.wait()
        );
    };
    assert_eq!(node.containerd_pids(), [pid]);

    // k3rs is killed without a chance to stop containerd: the kernel kills containerd.
    parent.kill().unwrap();
    parent.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node.containerd_pids().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        node.containerd_pids(),
        Vec::<i32>::new(),
        "containerd outlived k3rs"
    );
}
