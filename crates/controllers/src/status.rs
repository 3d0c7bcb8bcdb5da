//! Writing a controller's status: a JSON merge patch of `status`, with `null` for every field the
//! old status had and the new one leaves out — a merge patch keeps what it does not mention, so
//! without it a condition or count that went away would stay.

use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use crate::error::Error;

/// The `status` value of a merge patch from `old` to `new`.
pub(crate) fn merge_patch<S: serde::Serialize>(old: Option<&S>, new: &S) -> Result<Value, Error> {
    let mut status = serde_json::to_value(new).map_err(|err| Error::Invalid(err.to_string()))?;
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

/// Writes `new` as the status of `name` (see [`merge_patch`]). `None` when the object is gone.
pub(crate) async fn write<K, S>(
    api: &Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
) -> Result<Option<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let patch = json!({ "status": merge_patch(old, new)? });
    let params: PatchParams = crate::patch_params();
    crate::error::gone_ok(api.patch_status(name, &params, &Patch::Merge(&patch)).await)
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
}
