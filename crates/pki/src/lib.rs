//! The k3rs cluster PKI: the cluster CA, the API server's serving certificate, the client
//! certificates of the admin (`system:masters`), the controllers
//! (`system:kube-controller-manager`), the scheduler (`system:kube-scheduler`) and the local
//! kubelet (`system:node:<node>`, with its serving certificate), the
//! service-account signing key, and admin kubeconfig files.
//!
//! [`ensure_server_pki`] is called at every server start. It reuses what is on disk and only
//! creates or re-issues what is missing, unreadable, about to expire, or (for the serving
//! certificate) missing a requested name, so that clients keep trusting the cluster across
//! restarts. Keys are ECDSA P-256, certificates are built with rcgen (ring).
//!
//! **Invariants**
//! - Every file is written atomically (temporary file, fsync, rename, fsync of the directory) and
//!   keys are never readable by anyone but the owner (mode 0600); a crash at any point leaves a
//!   state the next start repairs or reports.
//! - The cluster CA is created only when its certificate is missing; an existing CA is never
//!   replaced behind the operator's back (a CA certificate without its key is an error).
//! - Private key material is never logged, never put in an error message, and never shown by a
//!   `Debug` implementation ([`PrivateKeyPem`] redacts itself).
//!
//! This crate knows nothing about the API server or the store; it only reads and writes files.

#![forbid(unsafe_code)]

mod certs;
mod error;
mod files;
mod kubeconfig;
mod sans;
mod server;

pub use error::PkiError;
pub use kubeconfig::{
    render_admin_kubeconfig, write_admin_kubeconfig, DEFAULT_KUBECONFIG_MODE, KUBECONFIG_NAME,
};
pub use sans::{first_service_ip, SubjectAltName, KUBERNETES_SERVICE_NAMES};
pub use server::{
    ensure_server_pki, node_user, CertAction, CertifiedKeyPem, KubeletCerts, PrivateKeyPem,
    ServerPki, ServerPkiConfig, ServerTlsPaths, ADMIN_GROUP, ADMIN_USER, APISERVER_USER,
    CONTROLLER_USER, DEFAULT_CA_VALIDITY, DEFAULT_LEAF_VALIDITY, DEFAULT_RENEW_BEFORE,
    DEFAULT_SERVICE_CIDR, NODES_GROUP, SCHEDULER_USER,
};

#[cfg(test)]
mod tests;
