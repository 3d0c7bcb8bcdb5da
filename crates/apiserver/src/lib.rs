//! The k3rs API server: the Kubernetes HTTP API over TLS, on top of the k3rs store.
//!
//! One port speaks HTTP/1.1 and HTTP/2 (ALPN `h2`, `http/1.1`) over rustls with the ring
//! provider. It serves the Kubernetes REST API (discovery, OpenAPI, CRUD with every patch type and
//! server-side apply, watch, subresources, CustomResourceDefinitions), `/healthz`, `/livez`,
//! `/readyz` (with `?verbose`, as kube-apiserver), `/version` and `/metrics`; any other path is a
//! 404 `Status`. Client certificates are requested but optional: one that is presented must chain
//! to the cluster CA, and the verified chain travels with every request in [`ConnectionInfo`] for
//! authentication to read. Every request is authenticated (client certificate, service-account
//! JWT, bootstrap token; anonymous only for health and version) and authorized by RBAC before any
//! handler runs.
//!
//! **Invariants**
//! - A client never sees a Rust error or panic text: every error is a `Status` object with the
//!   right HTTP code.
//! - A panic is contained: a panicking request handler answers upstream's 500 and the
//!   connection goes on; a background task that panics or ends is logged and restarted, and
//!   fails `/readyz` until it runs again ([`supervise`], [`Readiness`]).
//! - Shutdown is graceful: on the shutdown signal the listener closes, `/readyz` fails, open
//!   connections get a grace period, and only then are they cut.
//! - Private keys are never logged; [`TlsMaterial`]'s and [`ServiceAccountConfig`]'s `Debug`
//!   redact their keys.
//!
//! This crate never touches files: certificates come in as PEM from the caller (see `k3rs-pki`),
//! and all state lives in the [`k3rs_store::Store`] it is given.

#![forbid(unsafe_code)]

mod api;
mod auth;
mod config;
mod error;
mod health;
mod internal_error;
mod kubelet_client;
mod metrics;
mod recovery;
mod response;
mod retry;
mod routes;
mod server;
mod supervise;
mod tls;
mod version;

pub use api::ServiceCidrError;
pub use config::{
    ApiServerConfig, ServiceAccountConfig, TlsMaterial, DEFAULT_SERVICE_ACCOUNT_ISSUER,
};
pub use error::ApiServerError;
pub use kubelet_client::KubeletClientTls;
pub use response::{BoxError, ResponseBody};
pub use server::{ApiServer, ConnectionInfo};
pub use supervise::{supervise, Lifetime, Readiness};
pub use version::{git_version, info as version_info, KUBERNETES_MAJOR, KUBERNETES_MINOR};
