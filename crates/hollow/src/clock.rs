//! Wall-clock instants as the API stores them: the kubelet's clock, which the hollow node shares.

pub(crate) use k3rs_kubelet::clock::*;
