//! The black-box tests: each module starts the real `k3rs` binary (`K3RS_BIN`) on free ports with
//! a temporary data dir and drives it the way users do — kubectl (every carried release where it
//! matters), curl, the Python `kubernetes` client, kube-rs, and hollow nodes for workloads.
//!
//! One test binary for all of them: two dozen binaries each linking kube, k8s-openapi and the
//! test support cost minutes of linking and gigabytes of disk. Run one area with a module filter:
//! `cargo test -p k3rs-tests --test blackbox workloads::`.

mod auth_support;
mod kube_support;

mod api_semantics;
mod auth;
mod auth_kubectl;
mod cli;
mod crd;
mod daemonsets;
mod disruption;
mod eviction;
mod garbage_collection;
mod hollow_nodes;
mod jobs;
mod kube_client;
mod kubectl_api;
mod kubelet;
mod kubelet_logs;
mod metadata;
mod namespaces;
mod nodes;
mod openapi_protobuf;
mod panics;
mod python_client;
mod replication;
mod scheduler;
mod serialization;
mod server;
mod server_side_apply;
mod service_accounts;
mod service_allocation;
mod services;
mod statefulsets;
mod versions;
mod volumes;
mod watch_torture;
mod workloads;
