//! `/openapi/v2` and `/openapi/v3[/<group-version>]`: the documents of `k3rs-api`, built once
//! per set of served resources and served as bytes with their hash as ETag.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k3rs_api::openapi::{document_hash, openapi_v2, openapi_v3_documents, openapi_v3_index_of};

use super::error::ApiError;
use super::registry::Registry;
use crate::response::ResponseBody;

/// The documents, serialized.
#[derive(Debug)]
struct Documents {
    v2: Bytes,
    v3_index: Bytes,
    /// Group-version path (`api/v1`, `apis/apps/v1`) → (bytes, hash).
    v3: BTreeMap<String, (Bytes, String)>,
}

/// The documents, built on first use and rebuilt when the served CRDs change (the registry's
/// custom revision moves).
#[derive(Debug, Default)]
pub(crate) struct OpenApi {
    built: RwLock<Option<(u64, Arc<Documents>)>>,
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
        let resources: Vec<k3rs_api::ResourceInfo> =
            registry.builtins().iter().map(|r| (**r).clone()).collect();
        let crds = &custom.schemas;
        let v3_docs = openapi_v3_documents(&resources, crds);
        let to_bytes =
            |value: &serde_json::Value| Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let built = Arc::new(Documents {
            v2: to_bytes(&openapi_v2(&resources, crds)),
            v3_index: to_bytes(&openapi_v3_index_of(&v3_docs)),
            v3: v3_docs
                .iter()
                .map(|(path, doc)| (path.clone(), (to_bytes(doc), document_hash(doc))))
                .collect(),
        });
        *self.built.write().unwrap_or_else(|p| p.into_inner()) =
            Some((custom.revision, Arc::clone(&built)));
        built
    }

    /// Answers a GET of `path` (which starts with `/openapi/`).
    pub(crate) fn serve(
        &self,
        registry: &Registry,
        path: &str,
        accept: &str,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let rest = path.trim_start_matches("/openapi/").trim_end_matches('/');
        if rest == "v2" {
            // kubectl asks for the protobuf form only as a fallback; JSON is all we speak.
            let wants_json = accept.is_empty()
                || accept.split(',').any(|m| {
                    let m = m.trim();
                    m.starts_with("application/json") || m.starts_with("*/*")
                });
            if !wants_json {
                return Err(ApiError::not_acceptable(accept));
            }
            return Ok(bytes_response(self.documents(registry).v2.clone(), None));
        }
        if rest == "v3" {
            return Ok(bytes_response(
                self.documents(registry).v3_index.clone(),
                None,
            ));
        }
        let docs = self.documents(registry);
        let group_version = rest.strip_prefix("v3/").ok_or_else(ApiError::no_route)?;
        let (bytes, hash) = docs.v3.get(group_version).ok_or_else(ApiError::no_route)?;
        Ok(bytes_response(bytes.clone(), Some(hash)))
    }
}

fn bytes_response(bytes: Bytes, etag: Option<&str>) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(bytes).map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&format!("\"{e}\"")).ok()) {
        headers.insert(http::header::ETAG, etag);
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
    }
    response
}
