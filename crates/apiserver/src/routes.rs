//! Request routing: every request is admitted by `auth` first, then goes to health, version,
//! `/metrics`, or the Kubernetes API (`/api`, `/apis`, `/openapi`); any other path is a 404
//! `Status`.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::{Method, Request, Response};

use crate::health::{self, Endpoint};
use crate::recovery::RequestLabel;
use crate::response::{method_not_allowed, not_found, ResponseBody};
use crate::version;

/// State shared by every request.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn k3rs_store::Store>,
    /// The resources the API serves.
    pub(crate) registry: crate::api::Registry,
    /// Authentication and authorization.
    pub(crate) auth: crate::auth::Auth,
    /// Request counts and latencies for `/metrics`.
    pub(crate) metrics: crate::metrics::Metrics,
    /// The OpenAPI documents of what the API serves.
    pub(crate) openapi: crate::api::OpenApi,
    /// Watch events decoded and written once for all their watchers.
    pub(crate) watch_events: Arc<crate::api::SharedEvents>,
    /// Where Service ClusterIPs come from.
    pub(crate) service_cidr: crate::api::ServiceCidr,
    /// The API's port (the `default/kubernetes` Service's target port).
    pub(crate) api_port: u16,
    /// The client toward kubelets (`pods/log`), when the server has a certificate for it.
    pub(crate) kubelet_client: Option<crate::kubelet_client::KubeletClient>,
    /// Set once the system namespaces exist.
    pub(crate) bootstrapped: AtomicBool,
    /// Set once the CRD controller has served the CRDs in the store (its first pass).
    pub(crate) crds_synced: AtomicBool,
    /// The readiness checks of supervised tasks and of components outside this crate.
    pub(crate) readiness: crate::supervise::Readiness,
    /// Set once shutdown starts, so that `/readyz` tells load balancers to go elsewhere.
    pub(crate) shutting_down: AtomicBool,
    /// Turns `true` once shutdown starts: watches end and TLS handshakes in progress are
    /// dropped, so that only requests in flight keep the server up.
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    pub(crate) fn new(
        store: Arc<dyn k3rs_store::Store>,
        service_cidr: crate::api::ServiceCidr,
        api_port: u16,
        auth: crate::auth::Auth,
    ) -> Self {
        Self {
            store,
            service_cidr,
            api_port,
            registry: crate::api::Registry::builtin(),
            auth,
            openapi: crate::api::OpenApi::default(),
            watch_events: Arc::default(),
            metrics: crate::metrics::Metrics::default(),
            kubelet_client: None,
            bootstrapped: AtomicBool::new(false),
            crds_synced: AtomicBool::new(false),
            readiness: crate::supervise::Readiness::default(),
            shutting_down: AtomicBool::new(false),
            shutdown: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// Answers one request. Never fails: every error is a `Status` response, and a panic anywhere
/// in serving it is upstream's 500 (`recovery.rs`). Nothing is served before
/// [`crate::auth::admit`] has authenticated and authorized the request.
pub(crate) async fn handle<B>(state: &AppState, mut request: Request<B>) -> Response<ResponseBody>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
    B::Error: Into<crate::response::BoxError>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_owned);
    let user = OnceLock::new();
    let serve = async {
        if let Err(err) = crate::auth::admit(state, &mut request).await {
            return err.into_response();
        }
        if let Some(admitted) = request.extensions().get::<crate::auth::UserInfo>() {
            let _ = user.set(admitted.name.clone());
        }
        crate::recovery::test_hook(&path);
        if crate::api::is_api_path(&path) {
            crate::api::handle(state, request).await
        } else {
            route(state, &method, &path, query.as_deref()).await
        }
    };
    let label = RequestLabel {
        method: &method,
        path: &path,
        user: &user,
    };
    let response = crate::recovery::contain(serve, label).await;
    state.metrics.observe(
        &method,
        &path,
        query.as_deref(),
        response.status().as_u16(),
        started.elapsed(),
    );
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn route(
    state: &AppState,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<ResponseBody> {
    let trimmed = path.trim_end_matches('/');
    let mut segments = trimmed.trim_start_matches('/').splitn(2, '/');
    let first = segments.next().unwrap_or("");
    let rest = segments.next();
    let read_only = *method == Method::GET || *method == Method::HEAD;

    let endpoint = match first {
        "healthz" => Some(Endpoint::Healthz),
        "livez" => Some(Endpoint::Livez),
        "readyz" => Some(Endpoint::Readyz),
        _ => None,
    };
    if let Some(endpoint) = endpoint {
        if !read_only {
            return method_not_allowed(method);
        }
        // A check name has no further slashes.
        if rest.is_some_and(|r| r.contains('/')) {
            return not_found();
        }
        return health::handle(state, endpoint, rest, query).await;
    }
    if first == "metrics" && rest.is_none() {
        if !read_only {
            return method_not_allowed(method);
        }
        return crate::response::text(http::StatusCode::OK, state.metrics.render());
    }
    if first == "version" && rest.is_none() {
        if !read_only {
            return method_not_allowed(method);
        }
        return crate::response::json_of_type(
            http::StatusCode::OK,
            &version::info(),
            "io.k8s.apimachinery.pkg.version.Info",
        );
    }
    not_found()
}
