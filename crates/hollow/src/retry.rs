//! How long a hollow node waits for one API call of its own: the kubelet's call time limit.

pub(crate) use k3rs_kubelet::retry::CALL_TIMEOUT;
