//! What can go wrong in a controller.

/// A controller's failure. Reconcile errors are retried with back-off and never stop the
/// controller; only [`Error::Client`] and [`Error::ClusterCidr`] stop start-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--cluster-cidr` is not an IPv4 CIDR.
    #[error("--cluster-cidr")]
    ClusterCidr(#[from] k3rs_api::cidr::CidrError),
    /// The client of a component could not be built.
    #[error(transparent)]
    Client(#[from] k3rs_runtime::client::ClientError),
    /// An API request failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// A status write failed.
    #[error(transparent)]
    Status(#[from] k3rs_runtime::status::StatusError),
    /// A status did not serialize.
    #[error("serializing a status")]
    Serialize(#[from] serde_json::Error),
    /// No API serves an owner reference's kind (discovery failed or does not know it).
    #[error("no matches for kind {kind:?} in version {api_version:?}")]
    NoKind {
        /// The kind.
        kind: String,
        /// Its `apiVersion`.
        api_version: String,
        /// Discovery's error.
        #[source]
        source: kube::Error,
    },
    /// A controller kind has no `scale` subresource.
    #[error("{resource} does not implement the scale subresource")]
    NoScale {
        /// The resource (`plural.group`).
        resource: String,
    },
    /// No node range is left in the cluster range.
    #[error("no /{prefix} left in {cluster} for node {node}")]
    NoPodRange {
        /// The prefix length of a node's range.
        prefix: u8,
        /// The cluster range.
        cluster: String,
        /// The node.
        node: String,
    },
    /// The ReplicaSet name a Deployment's template hashes to is taken by another template.
    #[error("hash collision for replica set {name}; retrying with a new collision count")]
    HashCollision {
        /// The ReplicaSet's name.
        name: String,
    },
    /// No API serves a kind that an owner reference names.
    #[error("no API serves {api_version} {kind}")]
    NotServed {
        /// The `apiVersion`.
        api_version: String,
        /// The kind.
        kind: String,
    },
}

impl Error {
    /// The HTTP status of an API error (`None` for anything else).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(kube::Error::Api(status)) => Some(status.code),
            Error::Status(err) => match err.api() {
                Some(kube::Error::Api(status)) => Some(status.code),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the API said the object is gone.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the API refused a write made against a stale copy (409).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
}

/// `result`'s value, `None` when the API said the object is gone (a delete or patch racing
/// with another deletion is done, not failed).
pub fn gone_ok<T>(result: Result<T, kube::Error>) -> Result<Option<T>, Error> {
    match result.map_err(Error::from) {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}
