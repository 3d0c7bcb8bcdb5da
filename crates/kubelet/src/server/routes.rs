//! The kubelet server's request flow: authenticate, authorize on the node, then the endpoint.
//! Exec, attach and port-forward (`/exec`, `/attach`, `/portForward`, `/run`) are to come
//! beside these.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::authn::{bearer_token, User};
use super::authz;
use super::response::{json, text, Body};
use super::{container_logs, ServerState};

/// How long a request waits for the first list of the node's pods.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Who the request is from: the client certificate's user, else the bearer token's.
async fn authenticate(
    state: &ServerState,
    certificate_user: Option<User>,
    request: &Request<Incoming>,
) -> Option<User> {
    if certificate_user.is_some() {
        return certificate_user;
    }
    let token = bearer_token(request.headers().get(http::header::AUTHORIZATION))?;
    match state.tokens.authenticate(token).await {
        Ok(user) => user,
        Err(err) => {
            tracing::warn!("kubelet server: unable to authenticate the request: {err}");
            None
        }
    }
}

/// Answers one request; every failure is a text answer with its status.
pub(crate) async fn handle(
    state: &ServerState,
    certificate_user: Option<User>,
    request: Request<Incoming>,
) -> Response<Body> {
    let Some(user) = authenticate(state, certificate_user, &request).await else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let path = request.uri().path().to_owned();
    let attributes = authz::attributes(request.method(), &path);
    match state.authorizer.authorize(&user, &attributes).await {
        Ok(None) => {}
        Ok(Some(forbidden)) => {
            tracing::debug!("kubelet server: {forbidden}");
            return text(StatusCode::FORBIDDEN, forbidden);
        }
        Err(err) => {
            tracing::warn!("kubelet server: {err}");
            let subresource = attributes.subresources.first().copied().unwrap_or("proxy");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "Authorization error (user={}, verb={}, resource=nodes, subresource={subresource})",
                    user.name, attributes.verb
                ),
            );
        }
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["stats", "summary"] | ["stats", "summary", ""] => match state.stats.summary().await {
            Ok(summary) => match serde_json::to_value(&summary) {
                Ok(value) => json(StatusCode::OK, &value),
                Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
            },
            Err(err) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Error: failed to get node info: {}", err.message),
            ),
        },
        ["metrics", "resource"] => match state.stats.summary().await {
            Ok(summary) => {
                let mut response = text(StatusCode::OK, crate::stats::resource_metrics(&summary));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, err.message),
        },
        ["pods"] | ["pods", ""] => pods(state).await,
        ["containerLogs", namespace, pod, container] => {
            pods_synced(state).await;
            let found = state.pods.cache().get_named(namespace, pod);
            container_logs::serve(
                state.runtime.clone(),
                found.as_deref(),
                pod,
                container,
                request.uri().query(),
            )
            .await
        }
        ["logs"] => {
            // As Go's file server: the directory's canonical path ends with a slash.
            let mut response = text(StatusCode::MOVED_PERMANENTLY, "");
            response.headers_mut().insert(
                http::header::LOCATION,
                http::HeaderValue::from_static("logs/"),
            );
            response
        }
        ["logs", ..] => {
            let relative = path.trim_start_matches("/logs/");
            super::node_logs::serve(&state.node_logs_dir, relative).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// Waits a little for the first list of the node's pods (the server answers from what it has
/// after that, as upstream's kubelet answers from its pod manager).
async fn pods_synced(state: &ServerState) {
    if tokio::time::timeout(SYNC_WAIT, state.pods.wait_synced())
        .await
        .is_err()
    {
        tracing::warn!("kubelet server: the node's pods are not listed yet");
    }
}

/// `/pods`: the pods bound to the node, as a `PodList`.
async fn pods(state: &ServerState) -> Response<Body> {
    pods_synced(state).await;
    let mut items: Vec<_> = state.pods.cache().all();
    items.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let items: Vec<serde_json::Value> = items
        .iter()
        .filter_map(|pod| serde_json::to_value(pod.as_ref()).ok())
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {},
            "items": items,
        }),
    )
}
