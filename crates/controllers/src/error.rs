//! What can go wrong in a controller.

/// A controller's failure. Reconcile errors are retried with back-off and never stop the
/// controller; only [`Error::Config`] (a client that cannot be built) stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client settings are unusable (bad PEM, bad URL).
    #[error("building the API client: {0}")]
    Config(String),
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
    /// An object is not what the controller can act on (reported, retried later).
    #[error("{0}")]
    Invalid(String),
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
