//! What the node agent could not do, naming the object.

/// A failed step of the node agent. Only starting a node returns one to the caller;
/// the running agent logs the others and retries.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The configuration cannot describe a node.
    #[error("node {node:?}: invalid configuration: {reason}")]
    Config {
        /// The node's name.
        node: String,
        /// What is wrong.
        reason: String,
    },

    /// Creating or taking over the `Node` object failed.
    #[error("node {node}: registering: {source}")]
    Register {
        /// The node's name.
        node: String,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },

    /// Creating or renewing the Lease `kube-node-lease/<node>` failed.
    #[error("lease kube-node-lease/{node}: {action}: {source}")]
    Lease {
        /// The node's name.
        node: String,
        /// `reading`, `creating` or `renewing`.
        action: &'static str,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },

    /// Reading the node or writing its status failed.
    #[error("node {node}: {action}: {source}")]
    NodeStatus {
        /// The node's name.
        node: String,
        /// `reading` or `updating status`.
        action: &'static str,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },

    /// Writing a pod's status or deleting it failed.
    #[error("pod {pod}: {action}: {source}")]
    Pod {
        /// `<namespace>/<name>`.
        pod: String,
        /// `reading`, `updating status` or `deleting`.
        action: &'static str,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },

    /// The container runtime did not answer as the kubelet needs.
    #[error("node {node}: the container runtime: {source}")]
    Runtime {
        /// The node's name.
        node: String,
        /// The runtime's error.
        #[source]
        source: crate::runtime::RuntimeError,
    },

    /// An API call did not answer in time.
    #[error("{what}: no answer within {seconds} s")]
    Timeout {
        /// The call, naming its object.
        what: String,
        /// The time limit.
        seconds: u64,
    },
}

impl KubeletError {
    /// The HTTP status code of the API's answer, when the error is one.
    pub fn status_code(&self) -> Option<u16> {
        let source = match self {
            KubeletError::Register { source, .. }
            | KubeletError::Lease { source, .. }
            | KubeletError::NodeStatus { source, .. }
            | KubeletError::Pod { source, .. } => source,
            KubeletError::Config { .. }
            | KubeletError::Timeout { .. }
            | KubeletError::Runtime { .. } => return None,
        };
        match source {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}

/// An error and its causes on one line, `outer: inner: innermost`.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
