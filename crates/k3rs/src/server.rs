//! `k3rs server`: open the store, ensure the PKI, write kubeconfigs, serve the API and run the
//! controllers until a signal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use k3rs_apiserver::{ApiServer, ApiServerConfig, ServiceAccountConfig, TlsMaterial};
use k3rs_controllers::{node_lifecycle, Controllers, ControllersConfig, Identity};
use k3rs_pki::{ensure_server_pki, write_admin_kubeconfig, ServerPkiConfig};
use k3rs_store::{SledStore, SledStoreConfig, Store};
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
fn store_config(paths: &DataPaths, settings: &ServerSettings) -> SledStoreConfig {
    let interval = settings.etcd_compaction_interval;
    SledStoreConfig {
        path: paths.store.clone(),
        compaction_interval: (!interval.is_zero()).then_some(interval),
        compaction_retention: i64::try_from(settings.store_compaction_retention)
            .unwrap_or(i64::MAX),
        ..Default::default()
    }
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

/// Runs the server until SIGTERM or SIGINT.
pub(crate) async fn run(settings: ServerSettings) -> anyhow::Result<()> {
    let paths = DataPaths::new(&settings.data_dir);

    // Listen for signals before doing anything slow, so an early Ctrl-C still stops cleanly.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    // The store comes first: if it cannot be opened, nothing else is created or changed.
    let store_config = store_config(&paths, &settings);
    tracing::debug!(
        compaction_interval = ?store_config.compaction_interval,
        compaction_retention = store_config.compaction_retention,
        "opening the store"
    );
    let store: Arc<dyn Store> = tokio::task::spawn_blocking(move || SledStore::open(store_config))
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

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(api.serve(async move {
        let _ = stopped.await;
    }));
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
    // Every controller task gone before the API server stops: no watch of theirs breaks.
    controllers.stop().await;
    let _ = stop.send(());
    serving.await.context("the API server task failed")??;
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
        };
        let config = store_config(&paths, &settings);
        assert_eq!(config.path, paths.store);
        assert_eq!(
            config.compaction_interval,
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(config.compaction_retention, 20);
        settings.etcd_compaction_interval = std::time::Duration::ZERO;
        settings.store_compaction_retention = u64::MAX;
        let config = store_config(&paths, &settings);
        assert_eq!(config.compaction_interval, None, "0 disables");
        assert_eq!(config.compaction_retention, i64::MAX);
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
