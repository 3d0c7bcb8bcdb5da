//! How a hollow node waits after a failed API call: the kubelet's back-off and call time limit.

pub(crate) use k3rs_kubelet::retry::{backoff, delay_after, is_transient, timed, CALL_TIMEOUT};
