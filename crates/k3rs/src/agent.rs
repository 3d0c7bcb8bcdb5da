//! The node side of `k3rs server` (unless `--disable-agent`): containerd as a supervised child
//! (or an existing CRI endpoint), the embedded pause image and the air-gap image archives
//! imported, the pod network for the node's pod CIDR, and the kubelet.

use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use async_trait::async_trait;
use k3rs_containerd::{
    ContainerdConfig, ContainerdPaths, ContainerdSettings, CriClient, HostFacts, ImageArchive,
    Importer, RuntimeState,
};
use k3rs_controllers::Identity;
use k3rs_kubelet::cgroups::CgroupDriver;
use k3rs_kubelet::cri_runtime::CriRuntime;
use k3rs_kubelet::logs::RotationPolicy;
use k3rs_kubelet::node::NodeConfig;
use k3rs_kubelet::pod_cgroups::{NodeLimits, PodCgroups};
use k3rs_kubelet::sandbox_config::{HostDns, NodeSettings};
use k3rs_kubelet::server::{KubeletServer, KubeletServerConfig};
use k3rs_kubelet::{Kubelet, KubeletConfig, PodNetwork};
use k8s_openapi::api::core::v1::NodeAddress;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::KubeletArg;
use crate::node_facts::{self, Resources};
use crate::settings::{AgentSettings, ServerSettings};

/// Where the CNI plugins are looked for: Debian's package, then the usual upstream place.
pub(crate) const CNI_BIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
/// How often the air-gap directory is looked at for new archives.
const IMAGES_EVERY: Duration = Duration::from_secs(10);

/// The running node side.
#[derive(Debug)]
pub(crate) struct Agent {
    kubelet: Kubelet,
    kubelet_server: KubeletServer,
    containerd: Option<k3rs_containerd::Containerd>,
    airgap: JoinHandle<()>,
}

/// The agent's directories under the data dir (k3s's layout).
#[derive(Clone, Debug)]
pub(crate) struct AgentPaths {
    pub(crate) containerd: ContainerdPaths,
    pub(crate) cni_conf_dir: PathBuf,
    pub(crate) ipam_dir: PathBuf,
    pub(crate) kubelet_root: PathBuf,
    pub(crate) images: PathBuf,
    pub(crate) pod_logs: PathBuf,
}

impl AgentPaths {
    pub(crate) fn new(data_dir: &Path) -> Self {
        let agent = data_dir.join("agent");
        // Only the default data dir writes pod logs where `kubectl logs` users look for them
        // on a host; any other (tests, side-by-side nodes) keeps them under the data dir.
        let pod_logs = if data_dir == Path::new(k3rs_containerd::paths::DEFAULT_DATA_DIR) {
            PathBuf::from("/var/log/pods")
        } else {
            agent.join("pod-logs")
        };
        AgentPaths {
            containerd: ContainerdPaths::for_data_dir(data_dir),
            cni_conf_dir: agent.join("etc").join("cni").join("net.d"),
            ipam_dir: agent.join("cni").join("networks"),
            kubelet_root: agent.join("kubelet"),
            images: agent.join("images"),
            pod_logs,
        }
    }
}

/// The CNI plugin directory: the first that has the plugins k3rs's conflist names.
fn cni_bin_dir() -> anyhow::Result<PathBuf> {
    for dir in CNI_BIN_DIRS {
        let dir = Path::new(dir);
        if ["bridge", "host-local", "loopback", "portmap"]
            .iter()
            .all(|plugin| dir.join(plugin).exists())
        {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "the CNI plugins (bridge, host-local, loopback, portmap) are not installed in {}: install Debian's containernetworking-plugins",
        CNI_BIN_DIRS.join(" or ")
    )
}

/// The kubelet's pod network: k3rs-net's bridge, IPAM and masquerade for the node's pod CIDR.
#[derive(Debug)]
struct NodePodNetwork {
    cluster_cidr: ipnet::Ipv4Net,
    paths: AgentPaths,
}

#[async_trait]
impl PodNetwork for NodePodNetwork {
    async fn set_pod_cidr(
        &self,
        pod_cidr: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let pod = k3rs_api::cidr::parse_ipv4(pod_cidr)?;
        let config = k3rs_net::NetworkConfig::new(
            self.cluster_cidr,
            pod,
            self.paths.cni_conf_dir.clone(),
            self.paths.ipam_dir.clone(),
        );
        k3rs_net::NodeNetwork::new(config)?.ensure().await?;
        Ok(())
    }
}

/// Imports every archive in the air-gap directory that is new or changed since it was last
/// imported (by size and modification time); returns what it saw.
async fn import_airgap(
    importer: &Importer,
    dir: &Path,
    seen: &mut HashMap<PathBuf, (u64, SystemTime)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
        })
        .collect();
    files.sort();
    for file in files {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        if seen.get(&file) == Some(&stamp) {
            continue;
        }
        match importer.import(&ImageArchive::file(&file)).await {
            Ok(images) => {
                for image in images {
                    tracing::info!(archive = %file.display(), image = %image.name, change = ?image.change, "imported image");
                }
                seen.insert(file, stamp);
            }
            Err(err) => {
                tracing::warn!(archive = %file.display(), "importing: {err}");
                // Tried again when the file changes (a copy still in progress, say).
                seen.insert(file, stamp);
            }
        }
    }
}

/// The container log rotation `--kubelet-arg` asks for (upstream's defaults otherwise).
fn log_rotation(args: &[KubeletArg]) -> RotationPolicy {
    let mut policy = RotationPolicy::default();
    for arg in args {
        match *arg {
            KubeletArg::ContainerLogMaxSize(bytes) => policy.max_size = bytes,
            KubeletArg::ContainerLogMaxFiles(files) => policy.max_files = files,
        }
    }
    policy
}

/// Starts the node side.
pub(crate) async fn start(
    settings: &ServerSettings,
    agent: &AgentSettings,
    pki: &k3rs_pki::ServerPki,
    server_url: &str,
) -> anyhow::Result<Agent> {
    let paths = AgentPaths::new(&settings.data_dir);
    for dir in [
        &paths.cni_conf_dir,
        &paths.ipam_dir,
        &paths.kubelet_root,
        &paths.images,
        &paths.pod_logs,
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let host = HostFacts::detect().context("reading the host's cgroups")?;
    let driver = match host.cgroup_driver() {
        k3rs_containerd::CgroupDriver::Systemd => CgroupDriver::Systemd,
        k3rs_containerd::CgroupDriver::Cgroupfs => CgroupDriver::Cgroupfs,
    };
    let cluster_cidr = k3rs_api::cidr::parse_ipv4(
        settings
            .cluster_cidr
            .split(',')
            .next()
            .unwrap_or_default()
            .trim(),
    )
    .context("--cluster-cidr")?;

    // containerd: k3rs's own, or the one given.
    let (containerd, socket) = match agent.container_runtime_endpoint.as_deref() {
        Some(endpoint) => (None, PathBuf::from(endpoint.trim_start_matches("unix://"))),
        None => {
            let mut config = ContainerdConfig::new(
                &paths.containerd,
                k3rs_containerd::PAUSE_IMAGE,
                cni_bin_dir()?,
                paths.cni_conf_dir.clone(),
            );
            config.restrict_oom_score_adj = host.restrict_oom_score_adj();
            config.cgroup_driver = host.cgroup_driver();
            let containerd = k3rs_containerd::Containerd::start(ContainerdSettings::new(
                &paths.containerd,
                config,
            ))
            .await
            .context("starting containerd")?;
            let socket = containerd.socket().to_path_buf();
            (Some(containerd), socket)
        }
    };
    let cri = CriClient::connect(&socket)
        .await
        .with_context(|| format!("connecting to the CRI endpoint {}", socket.display()))?;
    let importer = Importer::connect(&socket)
        .await
        .with_context(|| format!("connecting to containerd at {}", socket.display()))?;
    k3rs_containerd::pause::import(&importer)
        .await
        .context("importing the pause image")?;
    let mut seen = HashMap::new();
    import_airgap(&importer, &paths.images, &mut seen).await;
    let images_dir = paths.images.clone();
    let airgap = tokio::spawn(async move {
        loop {
            tokio::time::sleep(IMAGES_EVERY).await;
            import_airgap(&importer, &images_dir, &mut seen).await;
        }
    });

    let resources = Resources::read(&settings.data_dir);
    let mut node = NodeConfig::new(settings.node_name.clone());
    node.capacity = resources.capacity();
    node.allocatable = resources.allocatable();
    node.node_info = node_facts::node_info(&settings.node_name);
    node.addresses = settings
        .node_ips
        .iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        })
        .chain(std::iter::once(NodeAddress {
            type_: "Hostname".into(),
            address: settings.node_name.clone(),
        }))
        .collect();
    let host_dns = std::fs::read_to_string(&agent.resolv_conf)
        .map(|text| HostDns::parse(&text))
        .unwrap_or_default();
    let kubelet_certs = pki
        .kubelet
        .as_ref()
        .context("the kubelet's certificates were not issued")?;
    let client = k3rs_runtime::client::connect(&Identity {
        server_url: server_url.to_owned(),
        ca_pem: pki.ca_cert_pem.clone(),
        cert_pem: kubelet_certs.client.cert_pem.clone(),
        key_pem: kubelet_certs.client.key_pem.secret().clone(),
        program: "kubelet",
    })
    .await
    .context("building the kubelet's client")?;
    // `kubepods` holds the node's capacity less what is reserved (nothing yet), as upstream
    // enforces node allocatable (eviction thresholds are not subtracted).
    // A host where they cannot be made (a cgroup tree this process may not write, as in some
    // containers) still runs pods, each container held to its own limits.
    let pod_cgroups = match PodCgroups::new(
        driver,
        NodeLimits {
            cpu_milli: resources.milli_cpu,
            memory: resources.memory,
        },
    ) {
        Ok(cgroups) => cgroups,
        Err(err) => {
            tracing::warn!(
                "cannot make the kubepods cgroups ({:#}); pods run without pod-level limits",
                anyhow::Error::new(err)
            );
            PodCgroups::none()
        }
    };
    let config = KubeletConfig {
        node,
        settings: NodeSettings {
            node_name: settings.node_name.clone(),
            cluster_dns: agent.cluster_dns.clone(),
            cluster_domain: agent.cluster_domain.clone(),
            host_dns,
            pod_logs_dir: paths.pod_logs.clone(),
            cgroup_driver: driver,
        },
        root_dir: paths.kubelet_root.clone(),
        host_ips: settings.node_ips.clone(),
        allocatable_memory: resources.allocatable_memory(),
        pod_cgroups: Arc::new(pod_cgroups),
        runtime_down: containerd.as_ref().map(|c| runtime_down(c.state())),
    };
    let runtime = Arc::new(CriRuntime::new(cri.runtime(), cri.images()));
    let network = Arc::new(NodePodNetwork {
        cluster_cidr,
        paths: paths.clone(),
    });
    let kubelet_server = KubeletServer::start(
        KubeletServerConfig {
            bind_address: std::net::SocketAddr::from((
                std::net::Ipv4Addr::UNSPECIFIED,
                k3rs_kubelet::server::DEFAULT_PORT,
            )),
            node_name: settings.node_name.clone(),
            serving_cert_pem: kubelet_certs.serving.cert_pem.clone(),
            serving_key_pem: kubelet_certs.serving.key_pem.expose().to_owned(),
            client_ca_pem: pki.ca_cert_pem.clone(),
            log_rotation: log_rotation(&agent.kubelet),
            node_logs_dir: PathBuf::from("/var/log"),
            kubelet_root: paths.kubelet_root.clone(),
        },
        client.clone(),
        runtime.clone(),
    )
    .await
    .context("starting the kubelet's server")?;
    let kubelet = Kubelet::start(client, config, runtime, network)
        .await
        .context("starting the kubelet")?;
    Ok(Agent {
        kubelet,
        kubelet_server,
        containerd,
        airgap,
    })
}

/// Why the supervised containerd is not running, as the kubelet's readiness reads it.
fn runtime_down(mut state: watch::Receiver<RuntimeState>) -> watch::Receiver<Option<String>> {
    let describe = |state: &RuntimeState| match state {
        RuntimeState::Running { .. } => None,
        RuntimeState::Restarting {
            cause,
            attempt,
            retry_in,
        } => Some(format!(
            "{cause}; restarting it (attempt {attempt}) in {retry_in:?}"
        )),
        RuntimeState::Stopped => Some("containerd stopped".to_owned()),
    };
    let (sender, receiver) = watch::channel(describe(&state.borrow_and_update()));
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let now = describe(&state.borrow_and_update());
            sender.send_if_modified(|current| {
                let changed = *current != now;
                *current = now;
                changed
            });
            if sender.is_closed() {
                return;
            }
        }
    });
    receiver
}

impl Agent {
    /// Stops the kubelet and containerd; containers keep running.
    pub(crate) async fn stop(self) {
        self.airgap.abort();
        self.kubelet_server.stop().await;
        self.kubelet.stop().await;
        if let Some(containerd) = self.containerd {
            if let Err(err) = containerd.stop().await {
                tracing::warn!("stopping containerd: {err}");
            }
        }
    }
}
