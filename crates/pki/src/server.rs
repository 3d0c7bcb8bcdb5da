//! The server's certificate set: load what is on disk, keep what is still good, re-issue the rest.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use secrecy::{ExposeSecret as _, SecretString};

use crate::certs::{self, Issued, LeafKind, ParsedCert};
use crate::files::{create_dir_all, read_if_exists, write_atomic};
use crate::sans::KUBERNETES_SERVICE_NAMES;
use crate::{first_service_ip, PkiError, SubjectAltName};

const DAY: u64 = 24 * 60 * 60;

/// The default service CIDR, whose first address is the `kubernetes` Service's ClusterIP.
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";
/// How long a new cluster CA is valid: 10 years.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(3650 * DAY);
/// How long a new leaf certificate is valid: 1 year.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// A leaf with less than this left is re-issued at start: 90 days.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(90 * DAY);

/// The Kubernetes user of the admin client certificate.
pub const ADMIN_USER: &str = "system:admin";
/// The group of the admin client certificate, bound to `cluster-admin` in every cluster.
pub const ADMIN_GROUP: &str = "system:masters";
/// The Kubernetes user the in-process controllers authenticate as (upstream's
/// kube-controller-manager identity, bound to its bootstrap roles).
pub const CONTROLLER_USER: &str = "system:kube-controller-manager";
/// The Kubernetes user the in-process scheduler authenticates as.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
/// The API server's user toward kubelets (k3s's `client-kube-apiserver.crt`), in
/// [`ADMIN_GROUP`] so that kubelets allow it everything, as k3s does.
pub const APISERVER_USER: &str = "system:apiserver";
/// The group every kubelet's user (`system:node:<node>`) is in.
pub const NODES_GROUP: &str = "system:nodes";

/// The Kubernetes user of the kubelet of `node`.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// Where the server's TLS files live, k3s names (`<data-dir>/server/tls/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsPaths {
    /// The directory holding all of them.
    pub dir: PathBuf,
    /// The cluster CA certificate.
    pub ca_cert: PathBuf,
    /// The cluster CA private key.
    pub ca_key: PathBuf,
    /// The API server's serving certificate.
    pub serving_cert: PathBuf,
    /// The API server's serving key.
    pub serving_key: PathBuf,
    /// The admin client certificate (`system:admin`, group `system:masters`).
    pub admin_cert: PathBuf,
    /// The admin client key.
    pub admin_key: PathBuf,
    /// The controllers' client certificate (`system:kube-controller-manager`).
    pub controller_cert: PathBuf,
    /// The controllers' client key.
    pub controller_key: PathBuf,
    /// The scheduler's client certificate (`system:kube-scheduler`).
    pub scheduler_cert: PathBuf,
    /// The scheduler's client key.
    pub scheduler_key: PathBuf,
    /// The key service-account tokens are signed with (`service.key`, as k3s names it).
    pub service_key: PathBuf,
    /// The API server's client certificate toward kubelets (`system:apiserver`, group
    /// `system:masters`): `pods/log`, and exec, attach and port-forward later.
    pub apiserver_kubelet_client_cert: PathBuf,
    /// Its key.
    pub apiserver_kubelet_client_key: PathBuf,
    /// The local kubelet's client certificate (`system:node:<node>`, group `system:nodes`).
    pub kubelet_client_cert: PathBuf,
    /// The local kubelet's client key.
    pub kubelet_client_key: PathBuf,
    /// The local kubelet's serving certificate (its `:10250` server).
    pub kubelet_serving_cert: PathBuf,
    /// The local kubelet's serving key.
    pub kubelet_serving_key: PathBuf,
}

impl ServerTlsPaths {
    /// The file names inside `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            ca_cert: dir.join("server-ca.crt"),
            ca_key: dir.join("server-ca.key"),
            serving_cert: dir.join("serving-kube-apiserver.crt"),
            serving_key: dir.join("serving-kube-apiserver.key"),
            admin_cert: dir.join("client-admin.crt"),
            admin_key: dir.join("client-admin.key"),
            controller_cert: dir.join("client-controller.crt"),
            controller_key: dir.join("client-controller.key"),
            scheduler_cert: dir.join("client-scheduler.crt"),
            scheduler_key: dir.join("client-scheduler.key"),
            service_key: dir.join("service.key"),
            apiserver_kubelet_client_cert: dir.join("client-kube-apiserver.crt"),
            apiserver_kubelet_client_key: dir.join("client-kube-apiserver.key"),
            kubelet_client_cert: dir.join("client-kubelet.crt"),
            kubelet_client_key: dir.join("client-kubelet.key"),
            kubelet_serving_cert: dir.join("serving-kubelet.crt"),
            kubelet_serving_key: dir.join("serving-kubelet.key"),
            dir,
        }
    }
}

/// What [`ensure_server_pki`] should produce.
#[derive(Clone, Debug)]
pub struct ServerPkiConfig {
    /// The directory for the files, normally `<data-dir>/server/tls`.
    pub tls_dir: PathBuf,
    /// The node's addresses; each becomes an IP SAN.
    pub node_ips: Vec<IpAddr>,
    /// The node's host names; each becomes a DNS SAN.
    pub hostnames: Vec<String>,
    /// ClusterIPs of the `kubernetes` Service (see [`first_service_ip`]); each becomes an IP SAN.
    pub service_ips: Vec<IpAddr>,
    /// Extra names (`--tls-san`): IP addresses or DNS names.
    pub extra_sans: Vec<String>,
    /// Validity of a newly created cluster CA.
    pub ca_validity: Duration,
    /// Validity of a newly issued leaf certificate.
    pub leaf_validity: Duration,
    /// Leaves with less than this left are re-issued.
    pub renew_before: Duration,
    /// The node of the local kubelet (`k3rs server` without `--disable-agent`): its client and
    /// serving certificates are issued too.
    pub kubelet_node: Option<String>,
}

impl ServerPkiConfig {
    /// A configuration with the default service CIDR and validities, and no node names yet.
    pub fn new(tls_dir: impl Into<PathBuf>) -> Self {
        Self {
            tls_dir: tls_dir.into(),
            node_ips: Vec::new(),
            hostnames: Vec::new(),
            service_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 43, 0, 1))],
            extra_sans: Vec::new(),
            ca_validity: DEFAULT_CA_VALIDITY,
            leaf_validity: DEFAULT_LEAF_VALIDITY,
            renew_before: DEFAULT_RENEW_BEFORE,
            kubelet_node: None,
        }
    }

    /// Replaces the service IPs with the first address of each comma-separated CIDR (k3s
    /// accepts `10.43.0.0/16,fd00:43::/112` for dual stack).
    pub fn with_service_cidr(mut self, cidrs: &str) -> Result<Self, PkiError> {
        self.service_ips = cidrs
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(first_service_ip)
            .collect::<Result<_, _>>()?;
        if self.service_ips.is_empty() {
            return Err(PkiError::InvalidServiceCidr {
                cidr: cidrs.to_string(),
                reason: "no CIDR given",
            });
        }
        Ok(self)
    }

    /// Every name the serving certificate must carry, sorted and without duplicates: loopback,
    /// `localhost`, the in-cluster `kubernetes…` names, the node's IPs and host names, the
    /// service IPs and the extra SANs.
    pub fn serving_sans(&self) -> Result<Vec<SubjectAltName>, PkiError> {
        let mut sans = BTreeSet::new();
        sans.insert(SubjectAltName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        sans.insert(SubjectAltName::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        sans.insert(SubjectAltName::Dns("localhost".into()));
        for name in KUBERNETES_SERVICE_NAMES {
            sans.insert(SubjectAltName::Dns(name.into()));
        }
        sans.extend(self.node_ips.iter().copied().map(SubjectAltName::Ip));
        sans.extend(self.service_ips.iter().copied().map(SubjectAltName::Ip));
        for host in &self.hostnames {
            sans.insert(SubjectAltName::dns(host)?);
        }
        for extra in &self.extra_sans {
            sans.insert(SubjectAltName::parse(extra)?);
        }
        Ok(sans.into_iter().collect())
    }
}

/// A PEM private key, held as a [`SecretString`]: its `Debug` never shows the key, so it can sit
/// in structs that get logged, and the memory is zeroed when it is dropped.
#[derive(Clone)]
pub struct PrivateKeyPem(SecretString);

impl PrivateKeyPem {
    fn new(pem: String) -> Self {
        Self(SecretString::from(pem))
    }

    /// The PEM text. Handle with care: it is the secret.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The key as a secret, for a consumer that keeps it (the API server's TLS material).
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl PartialEq for PrivateKeyPem {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for PrivateKeyPem {}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// A certificate and its key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedKeyPem {
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: PrivateKeyPem,
}

/// What [`ensure_server_pki`] did with one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertAction {
    /// The file on disk was still good and was kept as it is.
    Reused,
    /// There was none; a new one was made.
    Created,
    /// The one on disk was replaced, for the reason given.
    Reissued(String),
}

/// The server's certificates, as on disk after [`ensure_server_pki`].
#[derive(Clone, Debug)]
pub struct ServerPki {
    /// Where the files are.
    pub paths: ServerTlsPaths,
    /// The cluster CA certificate (PEM); its key stays on disk.
    pub ca_cert_pem: String,
    /// The API server's serving certificate and key.
    pub serving: CertifiedKeyPem,
    /// The admin client certificate and key.
    pub admin: CertifiedKeyPem,
    /// The controllers' client certificate and key ([`CONTROLLER_USER`]).
    pub controller: CertifiedKeyPem,
    /// The scheduler's client certificate and key ([`SCHEDULER_USER`]).
    pub scheduler: CertifiedKeyPem,
    /// The service-account token signing key (ECDSA P-256, PKCS#8 PEM).
    pub service_account_key: PrivateKeyPem,
    /// The API server's client certificate and key toward kubelets ([`APISERVER_USER`]).
    pub apiserver_kubelet_client: CertifiedKeyPem,
    /// What happened to the CA, the serving, the admin, the controller and the scheduler
    /// certificate, in that order.
    pub actions: [CertAction; 5],
    /// The local kubelet's certificates, when [`ServerPkiConfig::kubelet_node`] names one.
    pub kubelet: Option<KubeletCerts>,
}

/// A kubelet's certificates, signed by the cluster CA.
#[derive(Clone, Debug)]
pub struct KubeletCerts {
    /// Its client certificate and key (`system:node:<node>`, group `system:nodes`).
    pub client: CertifiedKeyPem,
    /// Its serving certificate and key (the node's names and addresses).
    pub serving: CertifiedKeyPem,
}

/// Makes sure the cluster CA, the serving certificate and the admin client certificate exist and
/// are good, reusing what is on disk.
///
/// The CA is created only when its certificate is missing (and then every leaf is re-issued); a
/// CA certificate without its key is an error. A leaf is re-issued when it or its key is missing
/// or unreadable, when they do not match, when the leaf was not signed by the current CA, when
/// it has less than `renew_before` left, or (serving only) when it lacks a requested SAN.
pub fn ensure_server_pki(config: &ServerPkiConfig) -> Result<ServerPki, PkiError> {
    let paths = ServerTlsPaths::new(&config.tls_dir);
    create_dir_all(&paths.dir, 0o700)?;
    let sans = config.serving_sans()?;

    let (ca, ca_key, ca_action) = ensure_ca(&paths, config)?;
    let ca_regenerated = ca_action != CertAction::Reused;
    let ctx = LeafContext {
        ca: &ca,
        ca_key: &ca_key,
        ca_regenerated,
        config,
    };

    let (serving, serving_action) = ensure_leaf(
        &ctx,
        "serving certificate",
        &LeafKind::Serving {
            common_name: "kube-apiserver",
            sans: &sans,
        },
        &paths.serving_cert,
        &paths.serving_key,
    )?;
    let (admin, admin_action) = ensure_leaf(
        &ctx,
        "admin client certificate",
        &LeafKind::Client {
            common_name: ADMIN_USER,
            organizations: &[ADMIN_GROUP],
        },
        &paths.admin_cert,
        &paths.admin_key,
    )?;
    let (controller, controller_action) = ensure_leaf(
        &ctx,
        "controller client certificate",
        &LeafKind::Client {
            common_name: CONTROLLER_USER,
            organizations: &[],
        },
        &paths.controller_cert,
        &paths.controller_key,
    )?;
    let (scheduler, scheduler_action) = ensure_leaf(
        &ctx,
        "scheduler client certificate",
        &LeafKind::Client {
            common_name: SCHEDULER_USER,
            organizations: &[],
        },
        &paths.scheduler_cert,
        &paths.scheduler_key,
    )?;

    let (apiserver_kubelet_client, _) = ensure_leaf(
        &ctx,
        "API server's kubelet client certificate",
        &LeafKind::Client {
            common_name: APISERVER_USER,
            organizations: &[ADMIN_GROUP],
        },
        &paths.apiserver_kubelet_client_cert,
        &paths.apiserver_kubelet_client_key,
    )?;

    let service_account_key = ensure_service_account_key(&paths.service_key)?;
    let kubelet = match config.kubelet_node.as_deref() {
        Some(node) => {
            let user = node_user(node);
            let (client, _) = ensure_leaf(
                &ctx,
                "kubelet client certificate",
                &LeafKind::Client {
                    common_name: &user,
                    organizations: &[NODES_GROUP],
                },
                &paths.kubelet_client_cert,
                &paths.kubelet_client_key,
            )?;
            let mut node_sans = vec![SubjectAltName::dns(node)?];
            node_sans.extend(config.node_ips.iter().copied().map(SubjectAltName::Ip));
            node_sans.extend(
                config
                    .hostnames
                    .iter()
                    .filter(|h| h.as_str() != node)
                    .map(|h| SubjectAltName::dns(h))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            node_sans.push(SubjectAltName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            let (serving, _) = ensure_leaf(
                &ctx,
                "kubelet serving certificate",
                &LeafKind::Serving {
                    common_name: node,
                    sans: &node_sans,
                },
                &paths.kubelet_serving_cert,
                &paths.kubelet_serving_key,
            )?;
            Some(KubeletCerts { client, serving })
        }
        None => None,
    };

    Ok(ServerPki {
        ca_cert_pem: ca.pem.clone(),
        paths,
        serving,
        admin,
        controller,
        scheduler,
        service_account_key,
        apiserver_kubelet_client,
        actions: [
            ca_action,
            serving_action,
            admin_action,
            controller_action,
            scheduler_action,
        ],
        kubelet,
    })
}

/// Loads the service-account signing key, creating it when missing. An unreadable key is an
/// error rather than replaced: a new key would silently invalidate every issued token.
fn ensure_service_account_key(path: &Path) -> Result<PrivateKeyPem, PkiError> {
    if let Some(pem) = read_if_exists(path)? {
        certs::parse_key(&pem, path)?;
        tracing::debug!(key = %path.display(), "reusing service-account key");
        return Ok(PrivateKeyPem::new(pem));
    }
    let pem = certs::new_key("service-account")?.serialize_pem();
    write_atomic(path, pem.as_bytes(), 0o600)?;
    tracing::info!(key = %path.display(), "created service-account signing key");
    Ok(PrivateKeyPem::new(pem))
}

struct LoadedCa {
    pem: String,
    parsed: ParsedCert,
}

fn ensure_ca(
    paths: &ServerTlsPaths,
    config: &ServerPkiConfig,
) -> Result<(LoadedCa, KeyPair, CertAction), PkiError> {
    let cert_pem = read_if_exists(&paths.ca_cert)?;
    let Some(cert_pem) = cert_pem else {
        // No CA certificate means no client can trust the old CA yet (the certificate is
        // written last), so an orphaned key from an interrupted first start is replaced.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let issued = certs::generate_ca(&format!("k3rs-server-ca@{now}"), config.ca_validity)?;
        write_pair(&issued, &paths.ca_cert, &paths.ca_key)?;
        tracing::info!(cert = %paths.ca_cert.display(), "created cluster CA");
        let parsed = certs::parse_cert(&issued.cert_pem, &paths.ca_cert)?;
        let key = certs::parse_key(&issued.key_pem, &paths.ca_key)?;
        return Ok((
            LoadedCa {
                pem: issued.cert_pem,
                parsed,
            },
            key,
            CertAction::Created,
        ));
    };
    let Some(key_pem) = read_if_exists(&paths.ca_key)? else {
        return Err(PkiError::CaKeyMissing {
            cert: paths.ca_cert.clone(),
            key: paths.ca_key.clone(),
        });
    };
    let parsed = certs::parse_cert(&cert_pem, &paths.ca_cert)?;
    let key = certs::parse_key(&key_pem, &paths.ca_key)?;
    if key.public_key_raw() != parsed.public_key.as_slice() {
        return Err(PkiError::CaKeyMismatch {
            cert: paths.ca_cert.clone(),
            key: paths.ca_key.clone(),
        });
    }
    let left = seconds_left(&parsed);
    if left < duration_secs(config.renew_before) {
        tracing::warn!(
            cert = %paths.ca_cert.display(),
            days_left = left / DAY as i64,
            "cluster CA expires soon; k3rs does not rotate the CA by itself"
        );
    }
    tracing::debug!(cert = %paths.ca_cert.display(), "reusing cluster CA");
    Ok((
        LoadedCa {
            pem: cert_pem,
            parsed,
        },
        key,
        CertAction::Reused,
    ))
}

struct LeafContext<'a> {
    ca: &'a LoadedCa,
    ca_key: &'a KeyPair,
    ca_regenerated: bool,
    config: &'a ServerPkiConfig,
}

fn ensure_leaf(
    ctx: &LeafContext<'_>,
    what: &str,
    kind: &LeafKind<'_>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(CertifiedKeyPem, CertAction), PkiError> {
    let existing = (read_if_exists(cert_path)?, read_if_exists(key_path)?);
    let action = match &existing {
        (Some(cert_pem), Some(key_pem)) => {
            match reissue_reason(ctx, kind, cert_pem, key_pem, cert_path, key_path) {
                None => CertAction::Reused,
                Some(reason) => CertAction::Reissued(reason),
            }
        }
        _ => CertAction::Created,
    };
    if let (CertAction::Reused, (Some(cert_pem), Some(key_pem))) = (&action, existing) {
        tracing::debug!(cert = %cert_path.display(), "reusing {what}");
        return Ok((
            CertifiedKeyPem {
                cert_pem,
                key_pem: PrivateKeyPem::new(key_pem),
            },
            action,
        ));
    }
    let issued = certs::issue_leaf(
        what,
        kind,
        ctx.config.leaf_validity,
        &ctx.ca.parsed.der,
        ctx.ca_key,
    )?;
    write_pair(&issued, cert_path, key_path)?;
    match &action {
        CertAction::Reissued(reason) => {
            tracing::info!(cert = %cert_path.display(), %reason, "re-issued {what}");
        }
        _ => tracing::info!(cert = %cert_path.display(), "created {what}"),
    }
    Ok((
        CertifiedKeyPem {
            cert_pem: issued.cert_pem,
            key_pem: PrivateKeyPem::new(issued.key_pem),
        },
        action,
    ))
}

/// Why the leaf on disk cannot be kept, or `None` when it can.
fn reissue_reason(
    ctx: &LeafContext<'_>,
    kind: &LeafKind<'_>,
    cert_pem: &str,
    key_pem: &str,
    cert_path: &Path,
    key_path: &Path,
) -> Option<String> {
    if ctx.ca_regenerated {
        return Some("the cluster CA was created anew".into());
    }
    let cert = match certs::parse_cert(cert_pem, cert_path) {
        Ok(cert) => cert,
        Err(err) => return Some(err.to_string()),
    };
    let key = match certs::parse_key(key_pem, key_path) {
        Ok(key) => key,
        Err(err) => return Some(err.to_string()),
    };
    if key.public_key_raw() != cert.public_key.as_slice() {
        return Some("its key does not match it".into());
    }
    let wanted_name = match kind {
        LeafKind::Serving { common_name, .. } | LeafKind::Client { common_name, .. } => {
            *common_name
        }
    };
    if cert.common_name.as_deref() != Some(wanted_name) {
        return Some(format!("it is not for {wanted_name}"));
    }
    if !certs::is_signed_by(&cert, &ctx.ca.parsed) {
        return Some("it was not signed by the current cluster CA".into());
    }
    let left = seconds_left(&cert);
    if left < duration_secs(ctx.config.renew_before) {
        return Some(format!("it expires in {} days", left.max(0) / DAY as i64));
    }
    if let LeafKind::Serving { sans, .. } = kind {
        let missing: Vec<String> = sans
            .iter()
            .filter(|san| !cert.sans.contains(san))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            return Some(format!("it lacks the names {}", missing.join(", ")));
        }
    }
    None
}

/// Writes the key first and the certificate last, each atomically: after a crash in between, the
/// new key and the old certificate do not match, which the next start detects and repairs.
fn write_pair(issued: &Issued, cert_path: &Path, key_path: &Path) -> Result<(), PkiError> {
    write_atomic(key_path, issued.key_pem.as_bytes(), 0o600)?;
    write_atomic(cert_path, issued.cert_pem.as_bytes(), 0o600)
}

fn seconds_left(cert: &ParsedCert) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    cert.not_after - now
}

fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
