//! Mutating admission that kube-apiserver runs by default and that k3rs users rely on.

use k3rs_api::ResourceInfo;
use serde_json::{json, Value};

use super::error::{ApiError, Subject};
use super::objects::{decode, meta_str, name_suffix, object_key};
use super::Call;
use k3rs_api::well_known;

/// The taints a node gets when its kubelet stops reporting (`unreachable`) or reports not
/// ready (`not-ready`).
const NODE_TAINTS: [&str; 2] = [
    well_known::TAINT_NODE_NOT_READY,
    well_known::TAINT_NODE_UNREACHABLE,
];
/// How long a pod stays on such a node before it is evicted, unless it says otherwise.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Upstream's `DefaultTolerationSeconds` plugin, on pod creation and update (not on
/// subresources): a pod that does not tolerate
/// the `not-ready` or `unreachable` NoExecute taints gets a toleration of 300 s for each, so a
/// node that goes away has its pods evicted after five minutes rather than at once.
pub(crate) fn default_toleration_seconds(resource: &ResourceInfo, pod: &mut Value) {
    if !(resource.group.is_empty() && resource.kind == "Pod") {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if tolerations.is_null() {
        *tolerations = Value::Array(Vec::new());
    }
    let Some(tolerations) = tolerations.as_array_mut() else {
        return;
    };
    for taint in NODE_TAINTS {
        let tolerated = tolerations.iter().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        });
        if !tolerated {
            tolerations.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

/// The ServiceAccount a pod runs as unless it names one.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where containers find the API credentials (upstream's `DefaultAPITokenMountPath`).
const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The projected volume's name prefix (upstream's `ServiceAccountVolumeName`).
const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// A static pod's mirror carries this annotation; the kubelet, not admission, owns it.
const MIRROR_ANNOTATION: &str = well_known::ANNOTATION_CONFIG_MIRROR;

/// Upstream's `ServiceAccount` admission plugin, on pod creation: the pod runs as `default`
/// unless it names an account; the account must exist (403 otherwise, as upstream — the
/// controllers create `default` in every namespace moments after it appears); unless the pod or
/// the account turns automounting off, every container and init container mounts a projected
/// `kube-api-access-<suffix>` volume at `/var/run/secrets/kubernetes.io/serviceaccount` with a
/// bound token (TokenRequest, 3607 s), the cluster CA (`kube-root-ca.crt`) and the namespace;
/// the account's imagePullSecrets apply when the pod has none.
pub(crate) async fn service_account(
    call: &Call<'_>,
    namespace: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    if !(call.resource.group.is_empty() && call.resource.kind == "Pod") {
        return Ok(());
    }
    if pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .is_some()
    {
        return Ok(());
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let name = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
        .to_owned();
    spec.insert("serviceAccountName".into(), Value::from(name.as_str()));
    let accounts = call
        .state
        .registry
        .find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("the serviceaccounts resource is not registered"))?;
    let stored = call
        .state
        .store
        .get(&object_key(&accounts, Some(namespace), &name))
        .await
        .map_err(ApiError::internal)?;
    let Some(stored) = stored else {
        let pod_name = meta_str(pod, "name").unwrap_or("").to_owned();
        return Err(ApiError::forbidden(
            Subject {
                group: "",
                resource: "pods",
                name: &pod_name,
            },
            &format!(
                "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
            ),
        ));
    };
    let account = decode(&accounts, &stored)?;
    mount_service_account(&account, pod, &name_suffix());
    Ok(())
}

/// The pod side of [`service_account`], given the account and a name suffix for the volume.
fn mount_service_account(account: &Value, pod: &mut Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let no_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_pull_secrets {
        if let Some(secrets) = account
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
        {
            spec.insert("imagePullSecrets".into(), Value::Array(secrets.clone()));
        }
    }
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if !automount {
        return;
    }
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|name| name.starts_with(TOKEN_VOLUME_PREFIX))
        .map(str::to_owned);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("{TOKEN_VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let containers = spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for container in containers {
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            let mounts = container
                .entry("volumeMounts")
                .or_insert_with(|| Value::Array(Vec::new()));
            if mounts.is_null() {
                *mounts = Value::Array(Vec::new());
            }
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            // A mount of its own at the path wins.
            if mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH))
            {
                continue;
            }
            mounts.push(mount.clone());
            mounted = true;
        }
    }
    if existing.is_some() || !mounted {
        return;
    }
    let volumes = spec
        .entry("volumes")
        .or_insert_with(|| Value::Array(Vec::new()));
    if volumes.is_null() {
        *volumes = Value::Array(Vec::new());
    }
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_resource() -> ResourceInfo {
        k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group.is_empty() && r.kind == "Pod")
            .unwrap()
    }

    #[test]
    fn adds_what_is_not_tolerated_already() {
        let pods = pod_resource();
        let mut pod = json!({"spec": {"containers": []}});
        default_toleration_seconds(&pods, &mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        let mut own = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}});
        default_toleration_seconds(&pods, &mut own);
        let tolerations = own["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0]["tolerationSeconds"], 2);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");
        // Tolerating everything (empty key, any effect) tolerates both.
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_toleration_seconds(&pods, &mut all);
        assert_eq!(all["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn service_account_volume_is_projected_into_every_container() {
        let account =
            json!({"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "reg"}]});
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
                {"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}],
        }});
        mount_service_account(&account, &mut pod, "x2b4z");
        let spec = &pod["spec"];
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "reg"}]));
        let mount = json!({"name": "kube-api-access-x2b4z", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][0]["volumeMounts"], json!([mount]));
        // b mounts something of its own there.
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let volume = &spec["volumes"][1];
        assert_eq!(volume["name"], "kube-api-access-x2b4z");
        assert_eq!(
            volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            volume["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );

        // Again (an apply of the stored pod): the existing volume is reused, nothing doubles.
        let before = pod.clone();
        mount_service_account(&account, &mut pod, "other");
        assert_eq!(pod, before);
    }

    #[test]
    fn automounting_can_be_turned_off_by_the_pod_or_the_account() {
        let off = json!({"automountServiceAccountToken": false});
        let mut pod = json!({"spec": {"containers": [{"name": "a"}]}});
        mount_service_account(&off, &mut pod, "abcde");
        assert!(pod["spec"].get("volumes").is_none());
        // The pod's own choice wins over the account's.
        let mut pod =
            json!({"spec": {"automountServiceAccountToken": true, "containers": [{"name": "a"}]}});
        mount_service_account(&off, &mut pod, "abcde");
        assert_eq!(pod["spec"]["volumes"][0]["name"], "kube-api-access-abcde");
        let mut pod =
            json!({"spec": {"automountServiceAccountToken": false, "containers": [{"name": "a"}]}});
        mount_service_account(&json!({}), &mut pod, "abcde");
        assert!(pod["spec"].get("volumes").is_none());
    }
}
