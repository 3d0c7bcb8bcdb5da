//! The pod network inside throwaway network namespaces: masquerade rules, sysctls, a real CNI
//! ADD/DEL with Debian's plugins and our conflist, then teardown. Needs root, `ip`, `iptables`
//! and the plugins in /usr/lib/cni; skips with the reason otherwise. Never touches the host
//! namespace's interfaces or rules: every call runs on a thread that entered a test namespace.

// Test helpers unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k3rs_net::cni::NETWORK_NAME;
use k3rs_net::masquerade::{self, MasqueradeRanges, FORWARD_CHAIN};
use k3rs_net::teardown::TeardownReport;
use k3rs_net::{link, sysctl, NetworkConfig, NodeNetwork};
use nix::sched::CloneFlags;
use serde_json::Value;

const CNI_PATH: &str = "/usr/lib/cni";

/// Why this machine cannot run the tests, if it cannot.
fn missing_capability() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".to_owned());
    }
    for (program, version) in [
        ("ip", "-V"),
        ("iptables", "--version"),
        ("iptables-save", "--version"),
        ("iptables-restore", "--version"),
    ] {
        let found = Command::new(program)
            .arg(version)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            return Some(format!("{program} is not on PATH"));
        }
    }
    for plugin in ["bridge", "host-local", "portmap"] {
        if !Path::new(CNI_PATH).join(plugin).exists() {
            return Some(format!(
                "{CNI_PATH}/{plugin} is missing (containernetworking-plugins)"
            ));
        }
    }
    None
}

macro_rules! require_capabilities {
    () => {
        if let Some(reason) = missing_capability() {
            eprintln!("skipping: {reason}");
            return;
        }
    };
}

/// A named network namespace, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(role: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "k3rs-net-test-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        Self { name }
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `program args` inside the namespace (`ip netns exec`).
    fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap()
    }

    fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        let output = self.exec(program, args);
        assert!(
            output.status.success(),
            "{program} {args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs `f` on a thread that entered this namespace; its children are born in it too.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(self.path()).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    /// Runs a future on a current-thread runtime on a thread in this namespace.
    fn block_on<F: std::future::Future>(&self, make: impl FnOnce() -> F + Send) -> F::Output
    where
        F::Output: Send,
    {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(make())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The `-A` lines and chain declarations of ours in `iptables-save` of the namespace.
fn our_rules(ns: &Netns) -> Vec<String> {
    let mut lines = Vec::new();
    for table in ["nat", "filter"] {
        for line in ns.exec_ok("iptables-save", &["-t", table]).lines() {
            if line.contains("K3RS") {
                lines.push(format!("{table}: {line}"));
            }
        }
    }
    lines
}

fn ranges() -> MasqueradeRanges {
    MasqueradeRanges {
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        pod_cidr: "10.244.7.0/24".parse().unwrap(),
    }
}

#[test]
fn masquerade_rules_apply_once_and_remove_cleanly() {
    require_capabilities!();
    let ns = Netns::new("masq");
    let ranges = ranges();
    ns.block_on(|| async move { masquerade::apply(&ranges).await.unwrap() });
    let expected = [
        "nat: :K3RS-POSTROUTING - [0:0]",
        "nat: -A POSTROUTING -j K3RS-POSTROUTING",
        "nat: -A K3RS-POSTROUTING -s 10.244.7.0/24 -d 10.244.0.0/16 -j RETURN",
        "nat: -A K3RS-POSTROUTING -s 10.244.0.0/16 -d 10.244.7.0/24 -j RETURN",
        "nat: -A K3RS-POSTROUTING ! -s 10.244.0.0/16 -d 10.244.7.0/24 -j RETURN",
        "nat: -A K3RS-POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully",
        "nat: -A K3RS-POSTROUTING ! -s 10.244.0.0/16 -d 10.244.0.0/16 -j MASQUERADE --random-fully",
        "filter: :K3RS-FORWARD - [0:0]",
        "filter: -A FORWARD -j K3RS-FORWARD",
        "filter: -A K3RS-FORWARD -s 10.244.0.0/16 -j ACCEPT",
        "filter: -A K3RS-FORWARD -d 10.244.0.0/16 -j ACCEPT",
    ];
    assert_eq!(our_rules(&ns), expected);

    // Again, after someone appended a rule of theirs to FORWARD, one to our chain and a second
    // jump to our nat chain.
    ns.exec_ok(
        "iptables",
        &["-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "DROP"],
    );
    ns.exec_ok(
        "iptables",
        &["-A", FORWARD_CHAIN, "-s", "198.51.100.0/24", "-j", "DROP"],
    );
    ns.exec_ok(
        "iptables",
        &["-t", "nat", "-A", "POSTROUTING", "-j", "K3RS-POSTROUTING"],
    );
    ns.block_on(|| async move { masquerade::apply(&ranges).await.unwrap() });
    assert_eq!(our_rules(&ns), expected, "applying twice changes nothing");
    let forward = ns.exec_ok("iptables-save", &["-t", "filter"]);
    let first_forward = forward
        .lines()
        .find(|l| l.starts_with("-A FORWARD"))
        .unwrap();
    assert_eq!(
        first_forward, "-A FORWARD -j K3RS-FORWARD",
        "our jump comes first"
    );
    assert!(
        forward.contains("-A FORWARD -s 192.0.2.0/24 -j DROP"),
        "theirs stays"
    );

    // A podCIDR change replaces the chain's rules.
    let moved = MasqueradeRanges {
        pod_cidr: "10.244.9.0/24".parse().unwrap(),
        ..ranges
    };
    ns.block_on(|| async move { masquerade::apply(&moved).await.unwrap() });
    let rules = our_rules(&ns);
    assert!(
        rules.iter().any(|l| l.contains("-d 10.244.9.0/24")),
        "{rules:?}"
    );
    assert!(
        !rules.iter().any(|l| l.contains("10.244.7.0/24")),
        "{rules:?}"
    );

    ns.block_on(|| async move { masquerade::remove().await.unwrap() });
    assert_eq!(our_rules(&ns), Vec::<String>::new());
    ns.block_on(|| async move { masquerade::remove().await.unwrap() });
    assert!(
        ns.exec_ok("iptables-save", &["-t", "filter"])
            .contains("-A FORWARD -s 192.0.2.0/24 -j DROP"),
        "removal leaves others' rules"
    );
}

#[test]
fn sysctls_change_only_the_namespace() {
    require_capabilities!();
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let ns = Netns::new("sysctl");
    let (changed, inside) = ns.run(|| {
        let changed = sysctl::enable().unwrap();
        let inside = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        let again = sysctl::enable().unwrap();
        assert!(again.is_empty(), "second enable changes nothing: {again:?}");
        (changed, inside)
    });
    assert!(
        changed.iter().any(|s| s.key == sysctl::IP_FORWARD),
        "{changed:?}"
    );
    assert_eq!(inside.trim(), "1");
    assert_eq!(
        ns.exec_ok("cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );
    if Path::new("/proc/sys/net/bridge").is_dir() {
        assert_eq!(
            ns.exec_ok("cat", &["/proc/sys/net/bridge/bridge-nf-call-iptables"])
                .trim(),
            "1"
        );
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before,
        "the host's forwarding is untouched"
    );
}

#[test]
fn teardown_refuses_a_link_that_is_not_a_bridge() {
    require_capabilities!();
    let ns = Netns::new("notbridge");
    // A veth, as this kernel may have no dummy driver.
    ns.exec_ok(
        "ip",
        &[
            "link",
            "add",
            "k3rs-test0",
            "type",
            "veth",
            "peer",
            "name",
            "k3rs-test1",
        ],
    );
    let error = ns.block_on(|| async move { link::delete_bridge("k3rs-test0").await.unwrap_err() });
    assert_eq!(
        error.to_string(),
        "link k3rs-test0 is a veth, not a bridge: left alone"
    );
    assert!(ns.block_on(|| async move { link::exists("k3rs-test0").await.unwrap() }));
}

/// The hostPort every test pod asks for: 8080 on the node to 80 in the pod.
fn port_mappings() -> Value {
    serde_json::json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
}

/// One plugin of the list the way libcni runs it: its entry plus the list's name and version,
/// the runtime's values for the capabilities it asks for, and the previous plugin's result;
/// returns what the plugin printed.
fn run_plugin(
    list: &Value,
    index: usize,
    command: &str,
    pod: &Netns,
    prev: Option<&Value>,
) -> Value {
    let mut config = list["plugins"][index].clone();
    config["name"] = list["name"].clone();
    config["cniVersion"] = list["cniVersion"].clone();
    if config["capabilities"]["portMappings"] == true {
        config["runtimeConfig"] = port_mappings();
    }
    if let Some(prev) = prev {
        config["prevResult"] = prev.clone();
    }
    let plugin = config["type"].as_str().unwrap().to_owned();
    let mut child = Command::new(Path::new(CNI_PATH).join(&plugin))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "k3rs-net-test-sandbox")
        .env("CNI_NETNS", pod.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{plugin} {command}: {} {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn connect(to: SocketAddr) -> std::io::Result<SocketAddr> {
    let stream = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
    stream.local_addr()
}

/// Accepts one connection on `listener` within a few seconds, returns the peer's address (`None`
/// when nobody came, so a failed connect elsewhere cannot leave this thread waiting forever).
fn accept_one(listener: &TcpListener) -> Option<SocketAddr> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((_, peer)) => return Some(peer),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// Connects from `client` to `listener` (bound in some other namespace); returns the address
/// the listener saw, or why the connection failed.
fn connection(client: &Netns, listener: &TcpListener) -> Result<SocketAddr, String> {
    let target = listener.local_addr().unwrap();
    std::thread::scope(|scope| {
        let accepted = scope.spawn(|| accept_one(listener));
        let connected = client.run(|| connect(target).map_err(|e| e.to_string()));
        let accepted = accepted.join().unwrap();
        connected.and_then(|_| accepted.ok_or_else(|| "nothing accepted".to_owned()))
    })
}

/// A node namespace with an uplink to a "world" namespace that has no route to the pods (so only
/// masqueraded traffic gets an answer there), our network ensured on the node, and one pod
/// namespace added through the plugin chain with a hostPort.
struct PodOnNode {
    node: Netns,
    pod: Netns,
    world: Netns,
    _dirs: tempfile::TempDir,
    config: NetworkConfig,
    network: NodeNetwork,
    list: Value,
    result: Value,
    address: Ipv4Net,
}

const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WORLD_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

impl PodOnNode {
    fn start() -> Self {
        let node = Netns::new("node");
        let pod = Netns::new("pod");
        let world = Netns::new("world");
        let dirs = tempfile::tempdir().unwrap();
        let mut config = NetworkConfig::new(
            "10.244.0.0/16".parse().unwrap(),
            "10.244.7.0/24".parse().unwrap(),
            dirs.path().join("etc/cni/net.d"),
            dirs.path().join("agent/cni/networks"),
        );
        config.bridge = "k3rs-test0".to_owned();
        let network = NodeNetwork::new(config.clone()).unwrap();

        node.exec_ok(
            "ip",
            &[
                "link",
                "add",
                "up0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &world.name,
            ],
        );
        node.exec_ok("ip", &["addr", "add", "192.0.2.1/24", "dev", "up0"]);
        node.exec_ok("ip", &["link", "set", "up0", "up"]);
        world.exec_ok("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        world.exec_ok("ip", &["link", "set", "eth0", "up"]);

        let network_ref = &network;
        let written = node.block_on(|| async move { network_ref.ensure().await.unwrap() });
        assert!(written.changed);
        let again = node.block_on(|| async move { network_ref.ensure().await.unwrap() });
        assert!(!again.changed, "ensure twice rewrites nothing");
        let list: Value =
            serde_json::from_str(&std::fs::read_to_string(&written.path).unwrap()).unwrap();
        assert_eq!(list["name"], NETWORK_NAME);
        assert_eq!(list["plugins"].as_array().unwrap().len(), 2);

        // ADD through the chain, as containerd would.
        let result = node.run(|| {
            let bridge = run_plugin(&list, 0, "ADD", &pod, None);
            run_plugin(&list, 1, "ADD", &pod, Some(&bridge))
        });
        let address: Ipv4Net = result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        Self {
            node,
            pod,
            world,
            _dirs: dirs,
            config,
            network,
            list,
            result,
            address,
        }
    }

    fn allocation(&self) -> PathBuf {
        self.config
            .ipam_data_dir
            .join(NETWORK_NAME)
            .join(self.address.addr().to_string())
    }

    fn teardown(&self) -> TeardownReport {
        let network = &self.network;
        self.node
            .block_on(|| async move { network.teardown().await.unwrap() })
    }

    /// Nothing of ours is left on the node: bridge, rules, portmap's pod rules, IPAM directory.
    fn assert_node_clean(&self) {
        let links = self.node.exec_ok("ip", &["-o", "link"]);
        assert!(!links.contains("k3rs-test0"), "{links}");
        let rules = self.node.exec_ok("iptables-save", &[]);
        assert!(!rules.contains("K3RS"), "{rules}");
        // portmap's shared CNI-HOSTPORT-* chains stay (its own DEL leaves them too); nothing
        // of the pod may.
        assert!(!rules.contains("CNI-DN-"), "{rules}");
        assert!(!rules.contains(&self.address.addr().to_string()), "{rules}");
        assert!(!self.config.ipam_data_dir.exists());
    }
}

#[test]
fn cni_chain_with_our_conflist_then_del_and_teardown() {
    require_capabilities!();
    let setup = PodOnNode::start();
    let PodOnNode {
        node, pod, world, ..
    } = &setup;
    let address = setup.address;
    assert!(setup.config.pod_cidr.contains(&address.addr()), "{address}");
    assert_eq!(setup.result["ips"][0]["gateway"], "10.244.7.1");
    let pod_addresses = pod.exec_ok("ip", &["-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(
        pod_addresses.contains(&address.to_string()),
        "{pod_addresses}"
    );
    let bridge_addresses = node.exec_ok("ip", &["-4", "-o", "addr", "show", "dev", "k3rs-test0"]);
    assert!(
        bridge_addresses.contains("10.244.7.1/24"),
        "{bridge_addresses}"
    );
    let pod_routes = pod.exec_ok("ip", &["-4", "route"]);
    assert!(
        pod_routes.contains("default via 10.244.7.1 dev eth0"),
        "{pod_routes}"
    );
    assert!(
        setup.allocation().exists(),
        "{}",
        setup.allocation().display()
    );

    // The pod reaches its gateway on the node.
    let listener = node.run(|| TcpListener::bind("10.244.7.1:0").unwrap());
    let seen = connection(pod, &listener).unwrap();
    assert_eq!(seen.ip(), address.addr());

    // The pod reaches the world through the node, masqueraded to the node's address.
    let listener = world.run(|| TcpListener::bind((WORLD_ADDRESS, 0)).unwrap());
    assert_eq!(
        connection(pod, &listener).map(|peer| peer.ip()),
        Ok(NODE_ADDRESS.into()),
        "pod to world, masqueraded"
    );

    // The world reaches the pod through its hostPort and keeps its own address.
    let listener = pod.run(|| TcpListener::bind("0.0.0.0:80").unwrap());
    let host_port = SocketAddr::from((NODE_ADDRESS, 8080));
    let (connected, accepted) = std::thread::scope(|scope| {
        let accepted = scope.spawn(|| accept_one(&listener));
        let connected = world.run(|| connect(host_port).map_err(|e| e.to_string()));
        (connected, accepted.join().unwrap())
    });
    assert!(connected.is_ok(), "world to hostPort: {connected:?}");
    assert_eq!(
        accepted.map(|peer| peer.ip()),
        Some(WORLD_ADDRESS.into()),
        "the client's address is kept"
    );

    // DEL in reverse order with the chain's result, as libcni does.
    node.run(|| {
        run_plugin(&setup.list, 1, "DEL", pod, Some(&setup.result));
        run_plugin(&setup.list, 0, "DEL", pod, Some(&setup.result));
    });
    assert!(
        !pod.exec("ip", &["link", "show", "eth0"]).status.success(),
        "eth0 gone"
    );
    assert!(!setup.allocation().exists(), "address released");
    let links = node.exec_ok("ip", &["-o", "link"]);
    assert!(!links.contains("veth"), "{links}");

    let report = setup.teardown();
    assert_eq!(report.bridge, link::BridgeDeletion::Deleted);
    assert!(!report.hostport_rules_removed, "DEL removed them");
    assert!(report.ipam_data_dir_removed);
    setup.assert_node_clean();

    let again = setup.teardown();
    assert_eq!(again.bridge, link::BridgeDeletion::Absent);
    assert!(!again.hostport_rules_removed && !again.ipam_data_dir_removed);
}

/// What `k3rs-killall` meets: pods killed without a CNI DEL. Teardown alone must leave the node
/// clean.
#[test]
fn teardown_without_del_removes_what_the_pod_left() {
    require_capabilities!();
    let setup = PodOnNode::start();
    let rules = setup.node.exec_ok("iptables-save", &["-t", "nat"]);
    assert!(
        rules.contains("CNI-DN-"),
        "portmap made the pod's chain: {rules}"
    );
    assert!(setup.allocation().exists());

    let report = setup.teardown();
    assert_eq!(report.bridge, link::BridgeDeletion::Deleted);
    assert!(report.hostport_rules_removed);
    assert!(report.ipam_data_dir_removed);
    setup.assert_node_clean();
}
