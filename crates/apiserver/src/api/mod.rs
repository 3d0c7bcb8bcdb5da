//! The Kubernetes REST API: discovery, and create/read/update/delete/patch/watch of every served
//! resource over the store.
//!
//! A request flows: [`target::parse`] the path → look the resource up in the [`registry`] →
//! negotiate the response type → the verb's handler in [`crud`], [`list`] or [`watch`], which
//! reads and writes the store through [`objects`]' key layout. Every error is an [`ApiError`]
//! turned into a `Status` response here, so no handler builds responses for failures itself.

mod admission;
mod allocate;
mod binding;
pub(crate) mod crd;
pub(crate) mod crud;
mod discovery;
pub(crate) mod error;
mod eviction;
mod list;
mod managed;
mod namespaces;
pub(crate) mod objects;
mod openapi;
mod partial;
mod patching;
mod pod_log;
pub(crate) mod query;
mod registry;
mod scale;
mod selection;
mod shared_events;
mod strategy;
mod table;
pub(crate) mod target;
mod watch;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use k3rs_api::{ResourceInfo, Verb};

pub use allocate::ServiceCidrError;
pub(crate) use allocate::{
    bootstrap_kubernetes_service, repair as repair_allocations, ServiceCidr,
};
pub(crate) use error::ApiError;
pub(crate) use namespaces::bootstrap;
pub(crate) use openapi::OpenApi;
pub(crate) use registry::Registry;
pub(crate) use shared_events::SharedEvents;

use crate::response::{json, json_with_type, ResponseBody};
use crate::routes::AppState;
use partial::MetaVersion;
use query::Query;
use target::{ResourcePath, Target};

/// Request bodies above this size are refused with 413, as upstream (3 MiB).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How the client wants the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`.
    Table,
    /// `application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (or `v1beta1`): one
    /// object's metadata only; for a watch, each event's object.
    Metadata(MetaVersion),
    /// `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (or `v1beta1`): a
    /// list of the objects' metadata only.
    MetadataList(MetaVersion),
}

impl Format {
    /// The `Content-Type` of an answer in this format: plain JSON for all of them, as
    /// kube-apiserver writes transformed objects (Table, `PartialObjectMetadata`) without
    /// naming the transformation; clients decode by the body's `kind`.
    pub(crate) fn content_type(self) -> &'static str {
        "application/json"
    }

    /// Refuses a metadata-only format of the wrong shape for the answer — one
    /// `PartialObjectMetadata` for a list, a `PartialObjectMetadataList` for one object (a watch
    /// event holds one object) — with upstream's 406.
    pub(crate) fn check_shape(
        self,
        resource: &ResourceInfo,
        answer_is_list: bool,
    ) -> Result<(), ApiError> {
        match self {
            Format::Metadata(_) if answer_is_list => {
                Err(ApiError::partial_of_list(resource.list_kind))
            }
            Format::MetadataList(_) if !answer_is_list => {
                Err(ApiError::partial_list_of_object(resource.kind))
            }
            _ => Ok(()),
        }
    }
}

/// Everything a resource handler needs about the request.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) resource: Arc<ResourceInfo>,
    pub(crate) path: ResourcePath,
    pub(crate) query: Query,
    pub(crate) format: Format,
    pub(crate) headers: &'a HeaderMap,
    /// Warnings for the client (`Warning: 299` headers), e.g. unknown fields under `Warn`.
    pub(crate) warnings: std::sync::Mutex<Vec<String>>,
}

impl Call<'_> {
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.path.namespace.as_deref()
    }

    /// Adds warnings for the client.
    pub(crate) fn warn(&self, warnings: Vec<String>) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(warnings);
    }

    /// The warnings so far.
    pub(crate) fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn subject<'b>(&'b self, name: &'b str) -> error::Subject<'b> {
        error::Subject {
            group: self.resource.group,
            resource: self.resource.plural,
            name,
        }
    }
}

/// Whether `path` belongs to the API (as opposed to health and version endpoints).
pub(crate) fn is_api_path(path: &str) -> bool {
    path == "/api"
        || path == "/apis"
        || path.starts_with("/api/")
        || path.starts_with("/apis/")
        || path.starts_with("/openapi/")
}

/// Answers one API request. Never fails: errors become `Status` responses.
pub(crate) async fn handle<B>(state: &AppState, request: http::Request<B>) -> Response<ResponseBody>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
    B::Error: Into<crate::response::BoxError>,
{
    let (parts, body) = request.into_parts();
    match serve(state, &parts, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn serve<B>(
    state: &AppState,
    parts: &http::request::Parts,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
    B::Error: Into<crate::response::BoxError>,
{
    let accept = header(&parts.headers, http::header::ACCEPT);
    if parts.uri.path().starts_with("/openapi/") {
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            return Err(ApiError::method_not_allowed(&parts.method));
        }
        return state.openapi.serve(&state.registry, parts);
    }
    let target = target::parse(parts.uri.path()).ok_or_else(ApiError::no_route)?;
    let registry = &state.registry;
    let read_only = parts.method == Method::GET || parts.method == Method::HEAD;
    let discovery_only = !matches!(target, Target::Resource(_));
    if discovery_only && !read_only {
        return Err(ApiError::method_not_allowed(&parts.method));
    }
    match target {
        Target::CoreVersions => Ok(match aggregated_discovery(accept) {
            Some(version) => aggregated(discovery::aggregated(registry, true, version), version),
            None => crate::response::json_of_type(
                StatusCode::OK,
                &discovery::core_versions(),
                discovery::CORE_VERSIONS_TYPE,
            ),
        }),
        Target::Groups => Ok(match aggregated_discovery(accept) {
            Some(version) => aggregated(discovery::aggregated(registry, false, version), version),
            None => json(StatusCode::OK, &discovery::groups(registry)),
        }),
        Target::Group { group } => discovery::group(registry, &group)
            .map(|doc| json(StatusCode::OK, &doc))
            .ok_or_else(ApiError::no_route),
        Target::GroupVersion { group, version } => {
            if group.is_empty() && version != "v1" {
                return Err(ApiError::no_route());
            }
            discovery::resource_list(registry, &group, &version)
                .map(|doc| json(StatusCode::OK, &doc))
                .ok_or_else(ApiError::no_route)
        }
        Target::Resource(path) => {
            if path.group.is_empty() && parts.uri.path().starts_with("/apis/") {
                return Err(ApiError::no_route());
            }
            let resource = registry
                .find(&path.group, &path.version, &path.resource)
                .ok_or_else(ApiError::no_route)?;
            // A namespace in the path of a cluster-scoped resource addresses nothing.
            if path.namespace.is_some() && !resource.namespaced {
                return Err(ApiError::no_route());
            }
            let format = negotiate(accept)?;
            let call = Call {
                state,
                resource,
                path,
                query: Query::parse(parts.uri.query()),
                format,
                headers: &parts.headers,
                warnings: Default::default(),
            };
            // Reviews and TokenRequest are answered by the auth module, never stored.
            if crate::auth::reviews::serves(&call) {
                let body = read_body(&call, body).await?;
                return crate::auth::reviews::serve(&call, &parts.method, &parts.extensions, &body)
                    .await;
            }
            // Bindings write a pod's node; nothing of their own is stored.
            if binding::serves(&call) {
                let body = read_body(&call, body).await?;
                return binding::bind(&call, &parts.method, &body).await;
            }
            // Evictions delete the pod when its disruption budget allows; nothing of their
            // own is stored.
            if eviction::serves(&call) {
                let body = read_body(&call, body).await?;
                return eviction::evict(&call, &parts.method, &body).await;
            }
            // A pod's log comes from its node's kubelet; nothing is stored.
            if pod_log::serves(&call) {
                return pod_log::serve(&call, &parts.method).await;
            }
            resource_request(&call, &parts.method, body).await
        }
    }
}

async fn resource_request<B>(
    call: &Call<'_>,
    method: &Method,
    body: B,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
    B::Error: Into<crate::response::BoxError>,
{
    let resource = &call.resource;
    let name = call.path.name.clone();
    let sub = call.path.subresource.clone();
    // A namespaced resource's single object needs its namespace.
    if resource.namespaced && name.is_some() && call.namespace().is_none() {
        return Err(ApiError::no_route());
    }
    // A metadata-only format of the wrong shape is refused before the verb runs, so a refused
    // write writes nothing (upstream refuses it only when it transforms the answer). Only a
    // collection GET answers a list; deletecollection answers a `Status`, which no format
    // transforms.
    let watch = call.query.flag("watch");
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if !(*method == Method::DELETE && name.is_none()) {
        let answers_list = reads && name.is_none() && sub.is_none() && !watch;
        call.format.check_shape(resource, answers_list)?;
    }
    if let Some(sub) = &sub {
        if !resource.has_subresource(sub)
            || !matches!(sub.as_str(), "status" | "scale" | "finalize")
        {
            return Err(ApiError::no_route());
        }
        // A namespace's `finalize` only takes updates (upstream serves no get or patch there).
        let allowed = match sub.as_str() {
            "finalize" => *method == Method::PUT,
            _ => matches!(
                *method,
                Method::GET | Method::HEAD | Method::PUT | Method::PATCH
            ),
        };
        if !allowed {
            return Err(ApiError::method_not_allowed(method));
        }
        if sub == "scale" {
            let name = name.unwrap_or_default();
            let body = read_body(call, body).await?;
            return scale::scale(call, method, &name, &body).await;
        }
    }
    let need = |verb: Verb| -> Result<(), ApiError> {
        if sub.is_some() || resource.supports(verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(method))
        }
    };
    match (method.clone(), name) {
        (Method::GET | Method::HEAD, None) => {
            if watch {
                need(Verb::Watch)?;
                watch::watch(call).await
            } else {
                need(Verb::List)?;
                list::list(call).await
            }
        }
        (Method::GET | Method::HEAD, Some(name)) => {
            if watch {
                need(Verb::Watch)?;
                return watch::watch(call).await;
            }
            need(Verb::Get)?;
            crud::get(call, &name).await
        }
        (Method::POST, None) => {
            need(Verb::Create)?;
            let body = read_body(call, body).await?;
            crud::create(call, &body).await
        }
        (Method::PUT, Some(name)) => {
            need(Verb::Update)?;
            let body = read_body(call, body).await?;
            crud::update(call, &name, &body).await
        }
        (Method::PATCH, Some(name)) => {
            need(Verb::Patch)?;
            let body = read_body(call, body).await?;
            crud::patch(call, &name, &body).await
        }
        (Method::DELETE, Some(name)) => {
            need(Verb::Delete)?;
            let body = read_body(call, body).await?;
            crud::delete(call, &name, &body).await
        }
        (Method::DELETE, None) => {
            need(Verb::DeleteCollection)?;
            let body = read_body(call, body).await?;
            list::delete_collection(call, &body).await
        }
        _ => Err(ApiError::method_not_allowed(method)),
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
async fn read_body<B>(_call: &Call<'_>, body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
    B::Error: Into<crate::response::BoxError>,
{
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(MAX_BODY_BYTES))
        }
        Err(err) => Err(ApiError::bad_request(format!(
            "reading the request body: {err}"
        ))),
    }
}

fn header(headers: &HeaderMap, name: http::header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The aggregated discovery version the client asks for, if it asks for one.
fn aggregated_discovery(accept: &str) -> Option<&'static str> {
    for media in accept.split(',') {
        let media = media.replace(' ', "");
        if media.contains("as=APIGroupDiscoveryList") && media.contains("g=apidiscovery.k8s.io") {
            if media.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if media.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

fn aggregated(doc: serde_json::Value, version: &str) -> Response<ResponseBody> {
    let content_type =
        format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    json_with_type(StatusCode::OK, &doc, &content_type)
}

/// Picks the response format from `Accept`: the first acceptable entry wins, as upstream (so
/// client-go's `…;v=v1,…;v=v1beta1,application/json` fallbacks get the first it can serve).
fn negotiate(accept: &str) -> Result<Format, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    accept
        .split(',')
        .find_map(media_format)
        .ok_or_else(|| ApiError::not_acceptable(accept))
}

/// The format one `Accept` entry asks for, if it is one k3rs serves. Conversions (`as`, `g`,
/// `v`) are upstream's: `Table`, `PartialObjectMetadata` and `PartialObjectMetadataList` of
/// `meta.k8s.io`; an entry asking for any other is skipped. Other parameters (`q`, `stream`,
/// `pretty`) change nothing.
fn media_format(media: &str) -> Option<Format> {
    let mut parts = media.split(';');
    let base = parts.next().unwrap_or("").trim();
    if !matches!(base, "application/json" | "application/*" | "*/*") {
        return None;
    }
    let (mut kind, mut group, mut version) = (None, None, None);
    for param in parts {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim().trim_matches('"');
        match key.trim() {
            "as" => kind = Some(value),
            "g" => group = Some(value),
            "v" => version = Some(value),
            _ => {}
        }
    }
    let Some(kind) = kind else {
        return Some(Format::Json);
    };
    if group != Some("meta.k8s.io") {
        return None;
    }
    match kind {
        // Only the v1 Table is served (an entry for v1beta1 falls through to the next).
        "Table" if base == "application/json" && version != Some("v1beta1") => Some(Format::Table),
        partial::KIND => MetaVersion::parse(version?).map(Format::Metadata),
        partial::LIST_KIND => MetaVersion::parse(version?).map(Format::MetadataList),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_kubectl() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(kubectl_get).unwrap(), Format::Table);
        assert_eq!(negotiate("application/json").unwrap(), Format::Json);
        assert_eq!(negotiate("").unwrap(), Format::Json);
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf, */*").unwrap(),
            Format::Json
        );
        assert!(negotiate("application/vnd.kubernetes.protobuf").is_err());
        let discovery = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_discovery(discovery), Some("v2"));
        assert_eq!(aggregated_discovery("application/json"), None);
    }

    /// client-go's metadata client and kube-rs's `*_metadata` calls, word for word.
    #[test]
    fn negotiates_metadata_like_client_go_and_kube_rs() {
        use MetaVersion::{V1beta1, V1};
        let list_fallbacks = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1,application/json";
        assert_eq!(negotiate(list_fallbacks).unwrap(), Format::MetadataList(V1));
        let one_fallbacks = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1,application/json";
        assert_eq!(negotiate(one_fallbacks).unwrap(), Format::Metadata(V1));
        // client-go asks for protobuf first: k3rs answers the JSON entry that follows.
        let client_go_watch = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(negotiate(client_go_watch).unwrap(), Format::Metadata(V1));
        let kube_rs = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(kube_rs).unwrap(), Format::MetadataList(V1));
        assert_eq!(
            negotiate("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1").unwrap(),
            Format::Metadata(V1beta1)
        );
        assert_eq!(
            negotiate("application/json; as=PartialObjectMetadataList; v=v1beta1; g=meta.k8s.io")
                .unwrap(),
            Format::MetadataList(V1beta1)
        );
        // An unknown version, group or kind skips the entry: to the fallback, or a 406.
        let v2 = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2,application/json";
        assert_eq!(negotiate(v2).unwrap(), Format::Json);
        for refused in [
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
            "application/json;as=PartialObjectMetadata;g=apps;v=v1",
            "application/json;as=PartialObjectMetadata",
            "application/json;as=Frobnicated;g=meta.k8s.io;v=v1",
            "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ] {
            let err = negotiate(refused).unwrap_err();
            assert_eq!(
                (err.code.as_u16(), err.reason),
                (406, "NotAcceptable"),
                "{refused}"
            );
            assert!(
                err.message.contains("as=PartialObjectMetadata;"),
                "{}",
                err.message
            );
        }
        // Table negotiation is as before.
        let table_first = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(table_first).unwrap(), Format::Table);
        let beta_table = "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(beta_table).unwrap(), Format::Json);
    }

    #[test]
    fn transformed_answers_are_plain_json() {
        assert_eq!(
            Format::Metadata(MetaVersion::V1).content_type(),
            "application/json"
        );
        assert_eq!(Format::Table.content_type(), "application/json");
    }

    /// A list asked for as one object's metadata, or one object as a metadata list, is
    /// upstream's 406.
    #[test]
    fn metadata_shapes_must_fit_the_answer() {
        let resource = k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group.is_empty() && r.plural == "pods")
            .unwrap();
        let one = Format::Metadata(MetaVersion::V1);
        let list = Format::MetadataList(MetaVersion::V1);
        assert!(one.check_shape(&resource, false).is_ok());
        assert!(list.check_shape(&resource, true).is_ok());
        let err = one.check_shape(&resource, true).unwrap_err();
        assert_eq!(err.code, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(
            err.message,
            "you requested PartialObjectMetadata, but the requested object is a list (PodList)"
        );
        let err = list.check_shape(&resource, false).unwrap_err();
        assert_eq!(
            err.message,
            "you requested PartialObjectMetadataList, but the requested object is not a list (Pod)"
        );
        assert!(Format::Json.check_shape(&resource, true).is_ok());
        assert!(Format::Table.check_shape(&resource, false).is_ok());
    }
}
