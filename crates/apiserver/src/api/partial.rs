//! Metadata-only answers: `meta.k8s.io` `PartialObjectMetadata` and `PartialObjectMetadataList`,
//! what metadata informers (garbage collector, namespace controller) ask for in `Accept`.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::Format;
use crate::response::{json_with_type, ResponseBody};

/// The kind of one object's metadata-only view.
pub(crate) const KIND: &str = "PartialObjectMetadata";
/// The kind of a list of metadata-only views.
pub(crate) const LIST_KIND: &str = "PartialObjectMetadataList";

/// The `meta.k8s.io` version a metadata-only answer is in: upstream serves both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    /// The version a media type's `v` parameter names, if upstream serves these kinds in it.
    pub(crate) fn parse(version: &str) -> Option<MetaVersion> {
        match version {
            "v1" => Some(MetaVersion::V1),
            "v1beta1" => Some(MetaVersion::V1beta1),
            _ => None,
        }
    }

    pub(crate) fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// The `PartialObjectMetadata` of `object`: its whole `metadata` and nothing else.
pub(crate) fn of(object: &Value, version: MetaVersion) -> Value {
    let metadata = object.get("metadata").cloned();
    from_metadata(metadata.unwrap_or_else(|| json!({})), version)
}

/// The `PartialObjectMetadata` holding `metadata`.
pub(crate) fn from_metadata(metadata: Value, version: MetaVersion) -> Value {
    json!({"kind": KIND, "apiVersion": version.api_version(), "metadata": metadata})
}

/// A response of the `PartialObjectMetadata` of `object`.
pub(crate) fn respond(
    status: StatusCode,
    object: &Value,
    version: MetaVersion,
) -> Response<ResponseBody> {
    json_with_type(
        status,
        &of(object, version),
        Format::Metadata(version).content_type(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_whole_metadata_and_nothing_else() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": "u"}],
                         "finalizers": ["f"], "resourceVersion": "7"},
            "spec": {"containers": []}, "status": {"phase": "Running"},
        });
        let partial = of(&pod, MetaVersion::V1);
        assert_eq!(
            partial,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": pod["metadata"]})
        );
        let beta = of(&json!({"kind": "ConfigMap"}), MetaVersion::V1beta1);
        assert_eq!(
            beta,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1beta1",
                   "metadata": {}})
        );
    }
}
