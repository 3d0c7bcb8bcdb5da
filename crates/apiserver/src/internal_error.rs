//! Errors of the API server's own work (bootstrap, the CRD controller, the RBAC policy), which
//! no client request caused: logged and retried, never sent to a client as they are.

use k3rs_store::StoreError;

use crate::api::ApiError;

/// A failure of the API server's own work, naming what it was doing; the cause is kept.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InternalError {
    /// The store failed or refused a write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A built-in resource the server needs is missing from the registry (a bug).
    #[error("the {resource} resource is not registered")]
    NotRegistered {
        /// The resource's plural name.
        resource: &'static str,
    },
    /// A stored object is not JSON.
    #[error("stored {key} is unreadable: {source}")]
    Unreadable {
        /// Its store key.
        key: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A step that goes through a request handler's code refused.
    #[error("{operation}: {source}")]
    Refused {
        /// What was being done.
        operation: String,
        /// The `Status` the handler's code answered.
        #[source]
        source: ApiError,
    },
}
