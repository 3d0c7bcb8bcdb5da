//! The errors the PKI reports, each naming the file or value involved.

use std::path::PathBuf;

/// Everything creating, loading or writing cluster certificates and kubeconfigs can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading, writing, renaming or syncing a file or directory failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("reading", "writing", "creating directory", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file that is not a readable PEM X.509 certificate.
    #[error("{}: not a valid PEM certificate: {reason}", path.display())]
    InvalidCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file that is not a readable PEM private key.
    #[error("{}: not a valid PEM private key", path.display())]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// The parser's complaint (never contains key material).
        #[source]
        source: rcgen::Error,
    },
    /// The cluster CA key does not belong to the cluster CA certificate.
    #[error("cluster CA key {} does not match certificate {}", key.display(), cert.display())]
    CaKeyMismatch {
        /// The CA certificate file.
        cert: PathBuf,
        /// The CA key file.
        key: PathBuf,
    },
    /// The cluster CA certificate exists but its key is gone: issuing a new CA silently would
    /// lock out every client that trusts the old one, so this is left to the operator.
    #[error(
        "cluster CA certificate {} exists but its key {} is missing; restore the key, or remove the certificate to create a new cluster CA",
        cert.display(),
        key.display()
    )]
    CaKeyMissing {
        /// The CA certificate file.
        cert: PathBuf,
        /// The missing CA key file.
        key: PathBuf,
    },
    /// A service CIDR that cannot be parsed or has no first host address.
    #[error("invalid service CIDR {cidr:?}: {reason}")]
    InvalidServiceCidr {
        /// The CIDR as given.
        cidr: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A subject alternative name that is neither an IP address nor a valid DNS name.
    #[error("invalid subject alternative name {value:?}: {reason}")]
    InvalidSan {
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// rcgen refused to build a certificate or key.
    #[error("generating {what}")]
    Generate {
        /// Which certificate or key.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A kubeconfig could not be rendered.
    #[error("rendering kubeconfig {}", path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: serde_yaml_ng::Error,
    },
}
