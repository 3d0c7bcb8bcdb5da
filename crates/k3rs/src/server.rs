//! `k3rs server`: open the store, ensure the PKI, write kubeconfigs, serve the API and run the
//! controllers until a signal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use k3rs_apiserver::{ApiServer, ApiServerConfig, ServiceAccountConfig, TlsMaterial};
use k3rs_controllers::{node_lifecycle, Controllers, ControllersConfig, Identity};
use k3rs_pki::{ensure_server_pki, write_admin_kubeconfig, ServerPkiConfig};
use k3rs_store::{RedbStore, RedbStoreConfig, SledStore, SledStoreConfig, Store};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ControllerManagerArg;
use crate::settings::ServerSettings;

/// The layout under `--data-dir`, as k3s has it under `/var/lib/rancher/k3s`.
#[derive(Debug)]
struct DataPaths {
    store: PathBuf,
    tls: PathBuf,
    admin_kubeconfig: PathBuf,
}

impl DataPaths {
    fn new(data_dir: &Path) -> Self {
        let server = data_dir.join("server");
        Self {
            store: server.join("db"),
            tls: server.join("tls"),
            admin_kubeconfig: server.join("cred").join("admin.kubeconfig"),
        }
    }
}

/// The URL written into the admin kubeconfig: loopback unless the API listens on one
/// specific non-loopback address only.
fn local_server_url(bind: IpAddr, port: u16) -> String {
    let host = match bind {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_loopback() => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    format!("https://{}", SocketAddr::new(host, port))
}

/// The store's settings: its directory and the compaction flags (an interval of zero turns
/// automatic compaction off).
struct StoreSettings {
    path: std::path::PathBuf,
    compaction_interval: Option<std::time::Duration>,
    compaction_retention: i64,
}

fn store_settings(paths: &DataPaths, settings: &ServerSettings) -> StoreSettings {
    let interval = settings.etcd_compaction_interval;
    StoreSettings {
        path: paths.store.clone(),
        compaction_interval: (!interval.is_zero()).then_some(interval),
        compaction_retention: i64::try_from(settings.store_compaction_retention)
            .unwrap_or(i64::MAX),
    }
}

/// Opens the store: a new one on redb, whose file and memory stay bounded under churn (sled's
/// grow with it; docs/benchmarks.md has both), and a directory that an earlier k3rs wrote with
/// sled on sled, so that an upgrade keeps its data.
fn open_store(settings: StoreSettings) -> Result<Arc<dyn Store>, k3rs_store::StoreError> {
    if k3rs_store::recorded_format(&settings.path)?.as_deref() == Some(k3rs_store::FORMAT_VERSION) {
        tracing::info!(path = %settings.path.display(), "the store was written by sled; opening it with sled");
        let store = SledStore::open(SledStoreConfig {
            path: settings.path,
            compaction_interval: settings.compaction_interval,
            compaction_retention: settings.compaction_retention,
            ..Default::default()
        })?;
        return Ok(store);
    }
    let store = RedbStore::open(RedbStoreConfig {
        path: settings.path,
        compaction_interval: settings.compaction_interval,
        compaction_retention: settings.compaction_retention,
        ..Default::default()
    })?;
    Ok(store)
}

/// The node lifecycle controller's periods: upstream's defaults, unless
/// `--kube-controller-manager-arg` sets them.
fn node_timing(args: &[ControllerManagerArg]) -> node_lifecycle::Timing {
    let mut timing = node_lifecycle::Timing::default();
    for arg in args {
        match *arg {
            ControllerManagerArg::NodeMonitorPeriod(period) => timing.monitor_period = period,
            ControllerManagerArg::NodeMonitorGracePeriod(grace) => timing.grace_period = grace,
        }
    }
    timing
}

/// How often free heap pages go back to the kernel (see `sys`).
const RELEASE_FREE_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Gives malloc's free pages back to the kernel every [`RELEASE_FREE_MEMORY_EVERY`], so that
/// the memory a burst of requests used is not kept at its peak while the server idles.
async fn release_free_memory_periodically() {
    let mut every = tokio::time::interval(RELEASE_FREE_MEMORY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(err) = tokio::task::spawn_blocking(crate::sys::release_free_memory).await {
            tracing::warn!(error = %err, "releasing free memory to the kernel failed");
        }
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub(crate) async fn run(settings: ServerSettings) -> anyhow::Result<()> {
    let paths = DataPaths::new(&settings.data_dir);

    // Listen for signals before doing anything slow, so an early Ctrl-C still stops cleanly.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    // The store comes first: if it cannot be opened, nothing else is created or changed.
    let store_settings = store_settings(&paths, &settings);
    tracing::debug!(
        compaction_interval = ?store_settings.compaction_interval,
        compaction_retention = store_settings.compaction_retention,
        "opening the store"
    );
    let store = tokio::task::spawn_blocking(move || open_store(store_settings))
        .await
        .context("opening the store")?
        .with_context(|| format!("opening the store at {}", paths.store.display()))?;
    tracing::debug!(path = %paths.store.display(), revision = store.current_revision(), "store open");

    let mut hostnames = vec![settings.node_name.clone()];
    let host = crate::host::hostname();
    if host != settings.node_name {
        hostnames.push(host);
    }
    let mut pki_config = ServerPkiConfig::new(&paths.tls)
        .with_service_cidr(&settings.service_cidr)
        .context("--service-cidr")?;
    pki_config.node_ips = settings.node_ips.clone();
    if !settings.bind_address.is_unspecified() {
        pki_config.node_ips.push(settings.bind_address);
    }
    pki_config.hostnames = hostnames;
    pki_config.extra_sans = settings.tls_sans.clone();
    if settings.agent.is_some() {
        pki_config.kubelet_node = Some(settings.node_name.clone());
    }
    let pki = tokio::task::spawn_blocking(move || ensure_server_pki(&pki_config))
        .await
        .context("preparing certificates")??;

    let bind = SocketAddr::new(settings.bind_address, settings.https_listen_port);
    let tls = TlsMaterial {
        cert_chain_pem: pki.serving.cert_pem.clone(),
        private_key_pem: pki.serving.key_pem.secret().clone(),
        client_ca_pem: pki.ca_cert_pem.clone(),
    };
    // Bind before writing kubeconfigs: if the port is taken (another k3rs?), its kubeconfig
    // stays untouched.
    let mut api_config = ApiServerConfig::new(bind, tls, store.clone());
    api_config.service_accounts = ServiceAccountConfig {
        signing_key_pem: Some(pki.service_account_key.secret().clone()),
        ..ServiceAccountConfig::default()
    };
    api_config.service_cidr = settings.service_cidr.clone();
    api_config.kubelet_client = Some(k3rs_apiserver::KubeletClientTls {
        ca_pem: pki.ca_cert_pem.clone(),
        cert_pem: pki.apiserver_kubelet_client.cert_pem.clone(),
        key_pem: pki.apiserver_kubelet_client.key_pem.secret().clone(),
    });
    let api = ApiServer::bind(api_config).await?;
    let url = local_server_url(settings.bind_address, api.local_addr().port());

    write_admin_kubeconfig(
        &pki,
        &url,
        &paths.admin_kubeconfig,
        k3rs_pki::DEFAULT_KUBECONFIG_MODE,
    )?;
    write_admin_kubeconfig(
        &pki,
        &url,
        &settings.write_kubeconfig,
        settings.write_kubeconfig_mode,
    )?;

    // The controllers connect like any client; their watches retry until the API serves.
    let controllers = Controllers::start(ControllersConfig {
        identity: Identity {
            server_url: url.clone(),
            ca_pem: pki.ca_cert_pem.clone(),
            cert_pem: pki.controller.cert_pem.clone(),
            key_pem: pki.controller.key_pem.secret().clone(),
            program: "kube-controller-manager",
        },
        scheduler_identity: Identity {
            server_url: url.clone(),
            ca_pem: pki.ca_cert_pem.clone(),
            cert_pem: pki.scheduler.cert_pem.clone(),
            key_pem: pki.scheduler.key_pem.secret().clone(),
            program: "kube-scheduler",
        },
        root_ca_pem: pki.ca_cert_pem.clone(),
        cluster_cidr: settings.cluster_cidr.clone(),
        node_timing: node_timing(&settings.controller_manager),
    })
    .await
    .context("starting the controllers")?;
    // A controller, informer or scheduler task that stopped is restarted by the runtime; until
    // it runs again, `/readyz` says so (`[-]controllers failed`).
    let health = controllers.health().clone();
    api.readiness()
        .register("controllers", move || health.check().is_ok());

    let releasing = tokio::spawn(release_free_memory_periodically());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(api.serve(async move {
        let _ = stopped.await;
    }));
    // The node side, connecting like any client once the API serves.
    let agent = match settings.agent.as_ref() {
        Some(agent_settings) => Some(
            crate::agent::start(&settings, agent_settings, &pki, &url)
                .await
                .context("starting the agent")?,
        ),
        None => None,
    };
    tracing::info!(
        server = %url,
        node = %settings.node_name,
        "k3rs server is ready; admin kubeconfig written to {}",
        settings.write_kubeconfig.display()
    );

    let signal_name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        result = &mut serving => {
            result.context("the API server task failed")??;
            anyhow::bail!("the API server stopped unexpectedly");
        }
    };
    tracing::info!(signal = signal_name, "shutting down");
    // The kubelet first (containers keep running), then every controller task, all before
    // the API server stops: no watch of theirs breaks.
    if let Some(agent) = agent {
        agent.stop().await;
    }
    controllers.stop().await;
    let _ = stop.send(());
    serving.await.context("the API server task failed")??;
    releasing.abort();
    drop(store);
    tracing::info!("k3rs server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_url_prefers_loopback() {
        assert_eq!(
            local_server_url("0.0.0.0".parse().unwrap(), 6443),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            local_server_url("::".parse().unwrap(), 6443),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            local_server_url("::1".parse().unwrap(), 6443),
            "https://[::1]:6443"
        );
        assert_eq!(
            local_server_url("10.0.0.5".parse().unwrap(), 7443),
            "https://10.0.0.5:7443"
        );
    }

    #[test]
    fn compaction_flags_reach_the_store() {
        let paths = DataPaths::new(Path::new("/var/lib/k3rs"));
        let mut settings = ServerSettings {
            data_dir: "/var/lib/k3rs".into(),
            https_listen_port: 6443,
            bind_address: "0.0.0.0".parse().unwrap(),
            node_ips: Vec::new(),
            node_name: "n".into(),
            tls_sans: Vec::new(),
            service_cidr: "10.43.0.0/16".into(),
            cluster_cidr: "10.42.0.0/16".into(),
            controller_manager: Vec::new(),
            write_kubeconfig: "/etc/k3rs/k3rs.yaml".into(),
            write_kubeconfig_mode: 0o600,
            etcd_compaction_interval: std::time::Duration::from_secs(90),
            store_compaction_retention: 20,
            agent: None,
        };
        let config = store_settings(&paths, &settings);
        assert_eq!(config.path, paths.store);
        assert_eq!(
            config.compaction_interval,
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(config.compaction_retention, 20);
        settings.etcd_compaction_interval = std::time::Duration::ZERO;
        settings.store_compaction_retention = u64::MAX;
        let config = store_settings(&paths, &settings);
        assert_eq!(config.compaction_interval, None, "0 disables");
        assert_eq!(config.compaction_retention, i64::MAX);
    }

    fn settings_at(path: &Path) -> StoreSettings {
        StoreSettings {
            path: path.to_owned(),
            compaction_interval: None,
            compaction_retention: 1000,
        }
    }

    #[tokio::test]
    async fn a_new_store_is_redb_and_a_sled_store_stays_sled() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        let store = open_store(settings_at(&fresh)).unwrap();
        store.create("/a", b"1".to_vec()).await.unwrap();
        drop(store);
        assert!(fresh.join(k3rs_store::REDB_FILE).exists());
        assert_eq!(
            k3rs_store::recorded_format(&fresh).unwrap().as_deref(),
            Some(k3rs_store::REDB_FORMAT_VERSION)
        );
        let reopened = open_store(settings_at(&fresh)).unwrap();
        assert!(reopened.get("/a").await.unwrap().is_some());
        drop(reopened);

        // A directory an earlier k3rs wrote with sled keeps its data after the upgrade.
        let old = dir.path().join("old");
        let sled = SledStore::open(SledStoreConfig {
            path: old.clone(),
            ..Default::default()
        })
        .unwrap();
        sled.create("/b", b"2".to_vec()).await.unwrap();
        drop(sled);
        let store = open_store(settings_at(&old)).unwrap();
        assert_eq!(store.get("/b").await.unwrap().unwrap().value, b"2".to_vec());
        assert!(!old.join(k3rs_store::REDB_FILE).exists());
    }

    #[test]
    fn data_layout() {
        let paths = DataPaths::new(Path::new("/var/lib/k3rs"));
        assert_eq!(paths.store, Path::new("/var/lib/k3rs/server/db"));
        assert_eq!(paths.tls, Path::new("/var/lib/k3rs/server/tls"));
        assert_eq!(
            paths.admin_kubeconfig,
            Path::new("/var/lib/k3rs/server/cred/admin.kubeconfig")
        );
    }
}
