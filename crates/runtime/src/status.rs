//! Writing a controller's status: a JSON merge patch of `status`, with `null` for every field the
//! old status had and the new one leaves out — a merge patch keeps what it does not mention, so
//! without it a condition or count that went away would stay.

use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

/// Why a status was not written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The status did not serialize (a type that is not JSON, never the cluster's data).
    #[error("status of {name}: serializing")]
    Serialize {
        /// The object's name.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The API refused the write or could not be reached.
    #[error("status of {name}: writing")]
    Write {
        /// The object's name.
        name: String,
        /// The API's error (a 409 or a 422 stays visible to the caller).
        #[source]
        source: kube::Error,
    },
}

impl StatusError {
    /// The API error, if the write itself failed.
    pub fn api(&self) -> Option<&kube::Error> {
        match self {
            StatusError::Write { source, .. } => Some(source),
            StatusError::Serialize { .. } => None,
        }
    }
}

/// The `status` value of a merge patch from `old` to `new`.
pub fn merge_patch<S: serde::Serialize>(
    old: Option<&S>,
    new: &S,
) -> Result<Value, serde_json::Error> {
    let mut status = serde_json::to_value(new)?;
    if let (Some(old), Some(fields)) = (
        old.and_then(|o| serde_json::to_value(o).ok()),
        status.as_object_mut(),
    ) {
        for key in old.as_object().into_iter().flat_map(|o| o.keys()) {
            fields.entry(key.clone()).or_insert(Value::Null);
        }
    }
    Ok(status)
}

/// What [`write`] did.
#[derive(Debug)]
pub enum Written<K> {
    /// The new status equals the old one: nothing was sent (a write would only bump the
    /// object's resource version and wake every watcher).
    Unchanged,
    /// The status was written; the object as the API server returned it.
    Updated(K),
    /// The object is gone (the API answered 404).
    Gone,
}

/// Writes `new` as the status of `name` (see [`merge_patch`]) with `params` (which name the
/// field manager), unless it equals `old`.
pub async fn write<K, S>(
    api: &Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
    params: &PatchParams,
) -> Result<Written<K>, StatusError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(Written::Unchanged);
    }
    let status = merge_patch(old, new).map_err(|source| StatusError::Serialize {
        name: name.to_owned(),
        source,
    })?;
    let patch = json!({ "status": status });
    match api.patch_status(name, params, &Patch::Merge(&patch)).await {
        Ok(object) => Ok(Written::Updated(object)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Written::Gone),
        Err(source) => Err(StatusError::Write {
            name: name.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;

    #[test]
    fn fields_that_went_away_are_nulled() {
        let old: ReplicaSetStatus = serde_json::from_value(json!({"replicas": 1,
            "conditions": [{"type": "ReplicaFailure", "status": "True"}]}))
        .unwrap();
        let new = ReplicaSetStatus {
            replicas: 2,
            ..ReplicaSetStatus::default()
        };
        let patch = merge_patch(Some(&old), &new).unwrap();
        assert_eq!(patch["replicas"], 2);
        assert!(patch["conditions"].is_null());
        assert!(patch.as_object().unwrap().contains_key("conditions"));
        assert!(!merge_patch(None, &new)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("conditions"));
    }

    #[tokio::test]
    async fn an_unchanged_status_is_not_sent() {
        use k8s_openapi::api::apps::v1::ReplicaSet;
        // Nothing listens on the discard port: a write that is sent fails.
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let api: Api<ReplicaSet> = Api::namespaced(client, "default");
        let params = PatchParams::default();
        let status = ReplicaSetStatus {
            replicas: 2,
            ..ReplicaSetStatus::default()
        };
        let same = write(&api, "a", Some(&status.clone()), &status, &params).await;
        assert!(matches!(same, Ok(Written::Unchanged)), "{same:?}");
        let changed = ReplicaSetStatus {
            replicas: 3,
            ..status.clone()
        };
        let sent = write(&api, "a", Some(&status), &changed, &params).await;
        assert!(matches!(&sent, Err(StatusError::Write { .. })), "{sent:?}");
    }
}
