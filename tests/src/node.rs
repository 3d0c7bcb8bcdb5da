//! A real node for black-box tests: `k3rs server` with its agent (containerd, the pod network,
//! the kubelet) inside a network namespace of the test's own, reached over a veth pair as a
//! separate host would be. Dropping it removes every pod, process, network namespace, mount
//! and cgroup the node made.

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{k3rs_bin, kubectl_bin, run_ok};

/// How long a node may take to register and become Ready.
const NODE_READY: Duration = Duration::from_secs(90);
/// The API port inside the node's namespace (nothing else listens there).
const API_PORT: u16 = 6443;
/// Where the test images are (`cargo xtask images` writes them; CI sets this).
const IMAGES_ENV: &str = "K3RS_TEST_IMAGES";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Why this machine cannot run a node, if it cannot (the test then skips with the reason).
pub fn missing_capability() -> Option<String> {
    if let Some(missing) = missing_host_capability() {
        return Some(missing);
    }
    if image_archive("busybox").is_none() {
        return Some(format!(
            "no test images: run `cargo xtask images` (or set {IMAGES_ENV})"
        ));
    }
    None
}

/// Why this machine cannot run a node, images aside: root, the tools, the CNI plugins.
pub fn missing_host_capability() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for tool in ["ip", "nsenter", "containerd", "runc", "iptables", "ctr"] {
        if !crate::node::on_path(tool) {
            return Some(format!("{tool} is not installed (`cargo xtask deps`)"));
        }
    }
    if !Path::new("/usr/lib/cni/bridge").exists() && !Path::new("/opt/cni/bin/bridge").exists() {
        return Some("the CNI plugins are not installed (`cargo xtask deps`)".into());
    }
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// The archive of a test image built by `cargo xtask images`.
pub fn image_archive(name: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os(IMAGES_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/images"),
    };
    let archive = dir.join(format!("{name}.oci.tar"));
    archive.exists().then_some(archive)
}

/// A node: its namespace, addresses, data dir and `k3rs server` process.
#[derive(Debug)]
pub struct TestNode {
    /// The network namespace's name (`/var/run/netns/<netns>`).
    pub netns: String,
    host_veth: String,
    /// The node's address (its InternalIP), on the veth inside the namespace.
    pub node_ip: Ipv4Addr,
    /// The node's name.
    pub name: String,
    /// The test's temporary directory.
    pub root: PathBuf,
    pub data_dir: PathBuf,
    /// The admin kubeconfig, pointing at the node's address.
    pub kubeconfig: PathBuf,
    pub log: PathBuf,
    /// Flags `k3rs server` gets besides the harness's own.
    extra_args: Vec<String>,
    child: Option<Child>,
    options: NodeOptions,
}

/// How a node is made: the tests' defaults, or a benchmark's own binary, images, names and
/// addresses (so a benchmark and the tests run side by side).
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The `k3rs` binary (default: [`k3rs_bin`]).
    pub k3rs: Option<PathBuf>,
    /// Where the image archives are (default: `$K3RS_TEST_IMAGES`, else `target/images`).
    pub images_dir: Option<PathBuf>,
    /// A letter in the names of the namespace (`k3rs-<tag><pid>-<n>`) and veths
    /// (`k3<tag>…`): `t` for the tests.
    pub tag: char,
    /// The /16 of 198.18.0.0/15 the nodes' /30s come from: the tests take 198.18.0.0/16.
    pub block: Ipv4Addr,
    /// Start `k3rs server` in a process group of its own, so a Ctrl-C at the terminal reaches
    /// only the caller (which then cleans up) and not the node.
    pub own_process_group: bool,
    /// `RUST_LOG` of the server (default: the caller's, else `info`).
    pub log_filter: Option<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            k3rs: None,
            images_dir: None,
            tag: 't',
            block: Ipv4Addr::new(198, 18, 0, 0),
            own_process_group: false,
            log_filter: None,
        }
    }
}

impl TestNode {
    /// Creates the namespace and veth, puts the test images in the air-gap directory, starts
    /// `k3rs server` and waits until the node is Ready.
    pub fn start(root: &Path, images: &[&str]) -> Result<TestNode> {
        Self::start_with_args(root, images, &[])
    }

    /// [`TestNode::start`], with more flags for `k3rs server` (`--kubelet-arg …`).
    pub fn start_with_args(root: &Path, images: &[&str], extra_args: &[&str]) -> Result<TestNode> {
        let mut node = TestNode::prepare(root, images, &NodeOptions::default())?;
        node.extra_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        node.spawn()?;
        node.wait_ready()?;
        Ok(node)
    }

    /// Creates the namespace and veth and puts the images in the air-gap directory, without
    /// starting `k3rs server` ([`TestNode::spawn`] does).
    pub fn prepare(root: &Path, images: &[&str], options: &NodeOptions) -> Result<TestNode> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let index = ((pid & 0x7ff) << 3) | (n & 7);
        // 198.18.0.0/15 (benchmarking, RFC 2544): a /30 per node in the options' /16, host .1,
        // node .2.
        let base = (u32::from(options.block) & 0xffff_0000) + index * 4;
        let host_ip = Ipv4Addr::from(base + 1);
        let node_ip = Ipv4Addr::from(base + 2);
        let tag = options.tag;
        let netns = format!("k3rs-{tag}{pid}-{n}");
        let host_veth = format!("k3{tag}{:x}h{n}", pid & 0xf_ffff);
        let node_veth = format!("k3{tag}{:x}n{n}", pid & 0xf_ffff);
        let node = TestNode {
            netns: netns.clone(),
            host_veth: host_veth.clone(),
            node_ip,
            name: format!("node-{pid}-{n}"),
            root: root.to_path_buf(),
            data_dir: root.join("data"),
            kubeconfig: root.join("kubeconfig.yaml"),
            log: root.join("k3rs.log"),
            extra_args: Vec::new(),
            child: None,
            options: options.clone(),
        };
        let ip = |args: &[&str]| run_ok(Command::new("ip").args(args));
        ip(&["netns", "add", &netns])?;
        ip(&[
            "link", "add", &host_veth, "type", "veth", "peer", "name", &node_veth,
        ])?;
        ip(&["link", "set", &node_veth, "netns", &netns])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_veth])?;
        ip(&["link", "set", &host_veth, "up"])?;
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", netns.as_str(), "ip"];
            full.extend_from_slice(args);
            run_ok(Command::new("ip").args(&full))
        };
        inside(&["addr", "add", &format!("{node_ip}/30"), "dev", &node_veth])?;
        inside(&["link", "set", &node_veth, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        inside(&["route", "add", "default", "via", &host_ip.to_string()])?;
        let images_dir = node.data_dir.join("agent").join("images");
        fs::create_dir_all(&images_dir)?;
        for image in images {
            let archive = match &options.images_dir {
                Some(dir) => Some(dir.join(format!("{image}.oci.tar"))).filter(|a| a.exists()),
                None => image_archive(image),
            };
            let archive = archive.with_context(|| format!("no archive of {image}"))?;
            fs::copy(&archive, images_dir.join(format!("{image}.oci.tar")))?;
        }
        fs::write(
            root.join("config.yaml"),
            "# written by the k3rs test harness\n",
        )?;
        Ok(node)
    }

    /// Starts `k3rs server` in the node's namespace (only its network namespace: the mounts,
    /// cgroups and `/proc` stay the host's, as on a real machine).
    pub fn spawn(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let binary = self.options.k3rs.clone().unwrap_or_else(k3rs_bin);
        let filter = self
            .options
            .log_filter
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| "info".into());
        let mut command = Command::new("nsenter");
        if self.options.own_process_group {
            command.process_group(0);
        }
        let child = command
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .arg(binary)
            .args(["server", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--node-ip", &self.node_ip.to_string()])
            .args(["--node-name", &self.name])
            .args(["--https-listen-port", &API_PORT.to_string()])
            .arg("--write-kubeconfig")
            .arg(self.root.join("local-kubeconfig.yaml"))
            .arg("--config")
            .arg(self.root.join("config.yaml"))
            .args(&self.extra_args)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting k3rs server in the node's namespace")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the kubeconfig exists (rewritten for the node's address) and the Node is
    /// Ready.
    pub fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + NODE_READY;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "k3rs server exited with {status} before the node was ready:\n{}",
                        self.log_text()
                    );
                }
            }
            if self.refresh_kubeconfig()? {
                let ready = self
                    .kubectl(&[
                        "get",
                        "node",
                        &self.name,
                        "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                    ])
                    .unwrap_or_default();
                if ready.trim() == "True" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the node was not Ready after {NODE_READY:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Copies the kubeconfig the server wrote to [`TestNode::kubeconfig`], rewritten for the
    /// node's address; false while the server has not written it yet.
    pub fn refresh_kubeconfig(&self) -> Result<bool> {
        let local = self.root.join("local-kubeconfig.yaml");
        if !local.exists() {
            return Ok(false);
        }
        let text = fs::read_to_string(&local)?;
        let rewritten = text.replace(
            &format!("https://127.0.0.1:{API_PORT}"),
            &format!("https://{}:{API_PORT}", self.node_ip),
        );
        fs::write(&self.kubeconfig, rewritten)?;
        Ok(true)
    }

    /// The id of the `k3rs server` process (nsenter execs it), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether `k3rs server` has exited (and with what), without waiting.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => Ok(None),
        }
    }

    /// Stops `k3rs server` as an init system would (SIGTERM, SIGKILL after `timeout`), leaving
    /// its pods to the next [`TestNode::spawn`].
    pub fn stop(&mut self, timeout: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        kill(Pid::from_raw(i32::try_from(child.id())?), Signal::SIGTERM)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Replaces the server's config file (read at the next [`TestNode::spawn`]), e.g.
    /// `disable-agent: true` to run the API without the node's kubelet.
    pub fn write_config(&self, yaml: &str) -> Result<()> {
        fs::write(
            self.root.join("config.yaml"),
            format!("# written by the k3rs test harness\n{yaml}"),
        )?;
        Ok(())
    }

    /// Waits until the API server answers `/readyz` (the Node's state does not matter).
    pub fn wait_api(&mut self) -> Result<()> {
        let deadline = Instant::now() + NODE_READY;
        while self.kubectl(&["get", "--raw", "/readyz"]).is_err() {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("k3rs server exited with {status}:\n{}", self.log_text());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the API was not ready after {NODE_READY:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    /// Runs kubectl (the machine's default) against the node; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new(kubectl_bin())
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args),
        )
    }

    /// Applies a manifest given as text.
    pub fn apply(&self, manifest: &str) -> Result<String> {
        let file = self.root.join(format!(
            "manifest-{}.yaml",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::write(&file, manifest)?;
        self.kubectl(&["apply", "-f", &file.display().to_string()])
    }

    /// Polls `check` until it returns `Some`, or fails after `timeout` with the node's log.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match check() {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(err) => last = format!("{err:#}"),
            }
            if Instant::now() > deadline {
                bail!(
                    "{what}: not after {timeout:?} ({last})\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills `k3rs server` with SIGKILL (containerd goes with it; shims and containers stay).
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// The node's containerd socket (`<data-dir>/run/containerd/containerd.sock`).
    pub fn containerd_socket(&self) -> PathBuf {
        self.data_dir
            .join("run")
            .join("containerd")
            .join("containerd.sock")
    }

    /// Kills the node's containerd with SIGKILL (k3rs restarts it; shims and containers
    /// stay); its pid.
    pub fn kill_containerd(&self) -> Result<i32> {
        let data_dir = self.data_dir.display().to_string();
        let found = processes().into_iter().find(|p| {
            p.cmdline
                .split_whitespace()
                .next()
                .is_some_and(|argv0| argv0 == "containerd" || argv0.ends_with("/containerd"))
                && p.cmdline.contains(&data_dir)
        });
        let process = found.context("the node's containerd is not running")?;
        kill(Pid::from_raw(process.pid), Signal::SIGKILL)?;
        Ok(process.pid)
    }

    /// Containers containerd holds for the node's pods (`ctr -n k8s.io containers ls -q`).
    pub fn runtime_containers(&self) -> Result<Vec<String>> {
        let out = run_ok(
            Command::new("ctr")
                .arg("--address")
                .arg(self.containerd_socket())
                .args(["-n", "k8s.io", "containers", "ls", "-q"]),
        )?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// The uids of every pod the API has.
    fn pod_uids(&self) -> BTreeSet<String> {
        self.kubectl(&[
            "get",
            "pods",
            "-A",
            "-o",
            "jsonpath={.items[*].metadata.uid}",
        ])
        .map(|out| out.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
    }

    /// Stops the node's pods through the kubelet (so the runtime tears down their networks),
    /// then the server.
    fn stop_gracefully(&mut self) -> BTreeSet<String> {
        let mut uids = self.pod_uids();
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running {
            let _ = self.kubectl(&[
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=1",
                "--wait=false",
            ]);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                uids.extend(self.pod_uids());
                if self.runtime_containers().is_ok_and(|c| c.is_empty())
                    && self.pod_uids().is_empty()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            if let Some(mut child) = self.child.take() {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                }
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if !matches!(child.try_wait(), Ok(None)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        uids
    }

    /// Kills what is left of the node's containers: every descendant of its containerd's
    /// shims, then the shims and anything else in its namespace; returns the network namespaces
    /// the pods had.
    fn kill_leftovers(&mut self) -> BTreeSet<(u64, u64)> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let socket = self.containerd_socket().display().to_string();
        let processes = processes();
        let shims: Vec<i32> = processes
            .iter()
            .filter(|p| p.cmdline.contains("containerd-shim") && p.cmdline.contains(&socket))
            .map(|p| p.pid)
            .collect();
        let mut doomed: BTreeSet<i32> = shims.iter().copied().collect();
        loop {
            let before = doomed.len();
            for p in &processes {
                if doomed.contains(&p.ppid) {
                    doomed.insert(p.pid);
                }
            }
            if doomed.len() == before {
                break;
            }
        }
        // The pods' namespaces, not the node's own (the shims run in that one).
        let own = fs::metadata(format!("/var/run/netns/{}", self.netns))
            .map(|meta| (meta.dev(), meta.ino()))
            .ok();
        let mut namespaces = BTreeSet::new();
        for pid in &doomed {
            if let Ok(meta) = fs::metadata(format!("/proc/{pid}/ns/net")) {
                if Some((meta.dev(), meta.ino())) != own {
                    namespaces.insert((meta.dev(), meta.ino()));
                }
            }
        }
        if let Ok(out) = run_ok(Command::new("ip").args(["netns", "pids", &self.netns])) {
            doomed.extend(out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
        for pid in &doomed {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        namespaces
    }
}

/// A process of the machine: its id, its parent's, and its command line (arguments joined by
/// spaces).
#[derive(Clone, Debug)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub cmdline: String,
}

/// Every process of the machine (those that vanish while read are left out).
pub fn processes() -> Vec<Process> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The fields after the command name (which may hold spaces) in parentheses.
            let after = stat.rsplit_once(')')?.1;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            Some(Process { pid, ppid, cmdline })
        })
        .collect()
}

/// The cgroup hierarchies' mount points.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fs_type = after.split_whitespace().next()?;
            (fs_type == "cgroup" || fs_type == "cgroup2")
                .then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .collect()
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let uids = self.stop_gracefully();
        let namespaces = self.kill_leftovers();
        // Pod network namespaces the runtime did not get to remove.
        if let Ok(entries) = fs::read_dir("/var/run/netns") {
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                if namespaces.contains(&(meta.dev(), meta.ino())) {
                    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
                    let _ = fs::remove_file(&path);
                }
            }
        }
        // Pod cgroups, then the QoS tiers and `kubepods` when nothing else uses them.
        std::thread::sleep(Duration::from_millis(200));
        for mount in cgroup_mounts() {
            let kubepods = mount.join("kubepods");
            for tier in ["", "burstable", "besteffort"] {
                for uid in &uids {
                    let dir = kubepods.join(tier).join(format!("pod{uid}"));
                    if let Ok(children) = fs::read_dir(&dir) {
                        for child in children.filter_map(Result::ok) {
                            if child.path().is_dir() {
                                let _ = fs::remove_dir(child.path());
                            }
                        }
                    }
                    let _ = fs::remove_dir(&dir);
                }
            }
            let _ = fs::remove_dir(kubepods.join("burstable"));
            let _ = fs::remove_dir(kubepods.join("besteffort"));
            let _ = fs::remove_dir(&kubepods);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .stderr(Stdio::null())
            .status();
        // containerd's mounts under the data dir (snapshots), before the directory goes.
        let data = self.data_dir.display().to_string();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split_whitespace().nth(4))
            .filter(|point| point.starts_with(&data))
            .collect();
        ours.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in ours {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
