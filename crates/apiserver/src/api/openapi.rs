//! `/openapi/v2` (JSON or gnostic protobuf) and `/openapi/v3[/<group-version>]` (JSON): the
//! documents of `k3rs-api`, each built on first request for the current set of served resources
//! and kept only as serialized bytes with their hash as ETag, negotiated as kube-openapi's
//! handlers negotiate them.
//!
//! Memory: a document's JSON tree is many times the size of its bytes, so trees live only while
//! one document is serialized; the v3 index builds the group-versions one after another and keeps
//! only their hashes, and a group-version's bytes are kept once a client asked for it (`kubectl
//! explain pod` costs `api/v1`, not every group-version and v2).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k3rs_api::openapi::{
    content_hash, openapi_v2, openapi_v2_protobuf, openapi_v3_group_version,
    openapi_v3_group_versions,
};
use serde_json::{json, Value};

use super::error::ApiError;
use super::registry::{CustomSet, Registry};
use crate::response::ResponseBody;

/// The v2 protobuf media type kubectl and client-go ask for (`openAPIV2mimePb`; kube-openapi
/// still accepts it) and the one kube-openapi answers with.
const V2_PROTOBUF_DEPRECATED: &str = "com.github.proto-openapi.spec.v2@v1.0+protobuf";
const V2_PROTOBUF: &str = "com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// One serialized document and its hash (kube-openapi's ETag: SHA-512 of the JSON).
#[derive(Debug, Clone)]
struct Serialized {
    bytes: Bytes,
    hash: String,
}

impl Serialized {
    /// Serializes `document`; its tree is dropped by the caller right after.
    fn of(document: &Value) -> Serialized {
        let bytes = serde_json::to_vec(document).unwrap_or_default();
        Serialized {
            hash: content_hash(&bytes),
            bytes: Bytes::from(bytes),
        }
    }
}

/// A group-version of the v3 index: where its document comes from and the document's hash.
#[derive(Debug)]
struct GroupVersion {
    group: String,
    version: String,
    hash: String,
}

/// The v3 index: its own bytes and, per group-version path (`api/v1`, `apis/apps/v1`), what
/// the group-version's document is built from.
#[derive(Debug)]
struct V3Index {
    document: Serialized,
    group_versions: BTreeMap<String, GroupVersion>,
}

/// The documents of one set of served resources, each built when first asked for.
#[derive(Debug)]
struct Documents {
    resources: Vec<k3rs_api::ResourceInfo>,
    custom: Arc<CustomSet>,
    v2: OnceLock<Serialized>,
    /// v2 as gnostic's `openapi.v2.Document`, encoded from the JSON bytes when first asked for
    /// (most clients never do), so both forms always describe the same set.
    v2_protobuf: OnceLock<Bytes>,
    v3_index: OnceLock<V3Index>,
    /// The group-versions clients asked for, by path.
    v3: Mutex<BTreeMap<String, Serialized>>,
}

impl Documents {
    fn new(registry: &Registry, custom: Arc<CustomSet>) -> Documents {
        Documents {
            resources: registry.builtins().iter().map(|r| (**r).clone()).collect(),
            custom,
            v2: OnceLock::new(),
            v2_protobuf: OnceLock::new(),
            v3_index: OnceLock::new(),
            v3: Mutex::new(BTreeMap::new()),
        }
    }

    fn v2(&self) -> &Serialized {
        self.v2
            .get_or_init(|| Serialized::of(&openapi_v2(&self.resources, &self.custom.schemas)))
    }

    fn v2_protobuf(&self) -> Bytes {
        self.v2_protobuf
            .get_or_init(|| {
                // The JSON tree lives only while it is encoded; the bytes are what is kept.
                let document = match serde_json::from_slice(&self.v2().bytes) {
                    Ok(document) => document,
                    Err(err) => {
                        tracing::error!(error = %err, "openapi v2: the served JSON does not parse");
                        Value::Null
                    }
                };
                let encoded = openapi_v2_protobuf(&document);
                if !encoded.dropped.is_empty() {
                    tracing::warn!(
                        count = encoded.dropped.len(),
                        first = %encoded.dropped[0],
                        "openapi v2: values with no place in the protobuf form were left out"
                    );
                }
                Bytes::from(encoded.bytes)
            })
            .clone()
    }

    fn group_version(&self, group: &str, version: &str) -> Option<Serialized> {
        openapi_v3_group_version(&self.resources, group, version, &self.custom.schemas)
            .map(|document| Serialized::of(&document))
    }

    /// The index, with every group-version's hash: each document is built, hashed and dropped
    /// in turn, so no more than one tree is alive.
    fn v3_index(&self) -> &V3Index {
        self.v3_index.get_or_init(|| {
            let mut group_versions = BTreeMap::new();
            for (path, group, version) in
                openapi_v3_group_versions(&self.resources, &self.custom.schemas)
            {
                let Some(document) = self.group_version(&group, &version) else {
                    continue;
                };
                group_versions.insert(
                    path,
                    GroupVersion {
                        group,
                        version,
                        hash: document.hash,
                    },
                );
            }
            let paths: serde_json::Map<String, Value> = group_versions
                .iter()
                .map(|(path, gv)| {
                    let url = format!("/openapi/v3/{path}?hash={}", gv.hash);
                    (path.clone(), json!({"serverRelativeURL": url}))
                })
                .collect();
            V3Index {
                document: Serialized::of(&json!({"paths": paths})),
                group_versions,
            }
        })
    }

    /// The document of the group-version at `path`, kept once built; `None` if nothing is
    /// served there.
    fn v3(&self, path: &str) -> Option<Serialized> {
        if let Some(built) = self.v3.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return Some(built.clone());
        }
        let gv = self.v3_index().group_versions.get(path)?;
        let built = self.group_version(&gv.group, &gv.version)?;
        if built.hash != gv.hash {
            // The documents are a pure function of the served set: a difference is a bug.
            tracing::error!(
                path,
                "openapi v3: a document differs from the one its index hashed"
            );
        }
        self.v3
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned(), built.clone());
        Some(built)
    }
}

/// The documents of the served resources, replaced (and so built anew on request) when the
/// served CRDs change (the registry's custom revision moves).
#[derive(Debug, Default)]
pub(crate) struct OpenApi {
    built: RwLock<Option<(u64, Arc<Documents>)>>,
}

/// One form of a document a client can be answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Json,
    Protobuf,
}

impl OpenApi {
    fn documents(&self, registry: &Registry) -> Arc<Documents> {
        let custom = registry.custom();
        if let Some((revision, built)) = self
            .built
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if *revision == custom.revision {
                return Arc::clone(built);
            }
        }
        let revision = custom.revision;
        let built = Arc::new(Documents::new(registry, custom));
        *self.built.write().unwrap_or_else(|p| p.into_inner()) =
            Some((revision, Arc::clone(&built)));
        built
    }

    /// Answers a GET of `/openapi/…`.
    pub(crate) fn serve(
        &self,
        registry: &Registry,
        parts: &http::request::Parts,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let path = parts.uri.path();
        let headers = &parts.headers;
        let accept = super::header(headers, http::header::ACCEPT);
        let rest = path.trim_start_matches("/openapi/").trim_end_matches('/');
        if rest == "v2" {
            let form = negotiate(accept, &[V2_PROTOBUF_DEPRECATED, V2_PROTOBUF])
                .ok_or_else(ApiError::not_acceptable_generic)?;
            let docs = self.documents(registry);
            let v2 = docs.v2();
            let (bytes, content_type) = match form {
                Form::Json => (v2.bytes.clone(), "application/json"),
                Form::Protobuf => (
                    docs.v2_protobuf(),
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            };
            // Both forms have the JSON's hash as ETag, as kube-openapi (`Vary: Accept`).
            let mut response = document_response(bytes, content_type, &v2.hash, headers);
            vary_accept(&mut response);
            return Ok(response);
        }
        if rest == "v3" {
            // The index is JSON whatever the client accepts, as upstream's.
            let docs = self.documents(registry);
            let index = &docs.v3_index().document;
            return Ok(document_response(
                index.bytes.clone(),
                "application/json",
                &index.hash,
                headers,
            ));
        }
        let group_version = rest.strip_prefix("v3/").ok_or_else(ApiError::no_route)?;
        let docs = self.documents(registry);
        let Serialized { bytes, hash } = docs.v3(group_version).ok_or_else(ApiError::no_route)?;
        // Only JSON: the v3 protobuf form (gnostic's `openapi.v3.Document`) is asked for by no
        // client k3rs serves (kubectl, client-go's `openapi3`, the Python client read JSON), so
        // an Accept that allows nothing else is a 406 rather than JSON under another name.
        negotiate(accept, &[]).ok_or_else(ApiError::not_acceptable_generic)?;
        let requested = query_value(parts.uri.query(), "hash");
        if let Some(requested) = requested.as_deref().filter(|h| !h.is_empty()) {
            if requested != hash.as_str() {
                // A stale link from an older index: upstream sends the client to the current one.
                return Ok(redirect(&format!(
                    "/openapi/v3/{group_version}?hash={hash}"
                )));
            }
        }
        let mut response = document_response(bytes, "application/json", &hash, headers);
        vary_accept(&mut response);
        if requested.is_some_and(|h| !h.is_empty()) {
            // Content addressed by its hash never changes.
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("public, immutable"),
            );
        }
        Ok(response)
    }
}

/// The form the first acceptable `Accept` entry asks for, as kube-openapi picks it (goautoneg:
/// entries by descending `q`, exact types before wildcards): `json` or any wildcard is JSON, a
/// subtype in `protobuf` the protobuf form. An empty `Accept` is `*/*`.
fn negotiate(accept: &str, protobuf: &[&str]) -> Option<Form> {
    let accept = if accept.trim().is_empty() {
        "*/*"
    } else {
        accept
    };
    let mut clauses: Vec<(f32, u8, &str, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';');
            let (kind, subtype) = parts.next()?.trim().split_once('/')?;
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim() == "q")
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let wildcards = u8::from(kind == "*") + u8::from(subtype == "*");
            Some((q, wildcards, kind.trim(), subtype.trim()))
        })
        .filter(|(q, ..)| *q > 0.0)
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    clauses.into_iter().find_map(|(_, _, kind, subtype)| {
        if kind != "application" && kind != "*" {
            return None;
        }
        if subtype == "json" || subtype == "*" {
            Some(Form::Json)
        } else if protobuf.contains(&subtype) {
            Some(Form::Protobuf)
        } else {
            None
        }
    })
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// A document with its ETag; `304 Not Modified` without a body when the client already holds
/// it (`If-None-Match`), as Go's `http.ServeContent` answers.
fn document_response(
    bytes: Bytes,
    content_type: &'static str,
    hash: &str,
    request: &HeaderMap,
) -> Response<ResponseBody> {
    let etag = format!("\"{hash}\"");
    let unchanged = request
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    let (status, body) = if unchanged {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        (StatusCode::OK, bytes)
    };
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(http::header::ETAG, etag);
    }
    response
}

fn vary_accept(response: &mut Response<ResponseBody>) {
    response
        .headers_mut()
        .insert(http::header::VARY, HeaderValue::from_static("Accept"));
}

fn redirect(location: &str) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(location) = HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_kube_openapi() {
        let v2 = [V2_PROTOBUF_DEPRECATED, V2_PROTOBUF];
        let kubectl = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        assert_eq!(negotiate(kubectl, &v2), Some(Form::Protobuf));
        assert_eq!(
            negotiate(
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                &v2
            ),
            Some(Form::Protobuf)
        );
        assert_eq!(negotiate("", &v2), Some(Form::Json));
        assert_eq!(negotiate("application/json", &v2), Some(Form::Json));
        assert_eq!(negotiate("*/*", &v2), Some(Form::Json));
        assert_eq!(negotiate("application/*", &v2), Some(Form::Json));
        assert_eq!(
            negotiate(&format!("{kubectl}, application/json"), &v2),
            Some(Form::Protobuf)
        );
        assert_eq!(
            negotiate(&format!("application/json;q=0.5, {kubectl}"), &v2),
            Some(Form::Protobuf),
            "by q"
        );
        assert_eq!(
            negotiate(&format!("*/*, {kubectl}"), &v2),
            Some(Form::Protobuf),
            "exact before wildcard"
        );
        assert_eq!(negotiate("application/yaml", &v2), None);
        assert_eq!(negotiate("text/html", &v2), None);
        assert_eq!(negotiate("application/json;q=0", &v2), None);
        // v3 group-versions: JSON only.
        let v3_protobuf = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf";
        assert_eq!(negotiate(v3_protobuf, &[]), None);
        assert_eq!(
            negotiate(&format!("{v3_protobuf}, application/json"), &[]),
            Some(Form::Json)
        );
    }

    #[test]
    fn reads_the_hash_parameter() {
        assert_eq!(
            query_value(Some("hash=AB12&x=1"), "hash").as_deref(),
            Some("AB12")
        );
        assert_eq!(query_value(Some("x=1"), "hash"), None);
        assert_eq!(query_value(None, "hash"), None);
    }
}
