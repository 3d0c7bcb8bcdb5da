//! Pod spec defaults: upstream's `SetDefaults_PodSpec`, `_Pod`, `_Container`, `_Probe`, `_Volume`.

use serde_json::{json, Value};

use super::json::{
    child_obj, existing_obj, existing_path, items_mut, set_default, set_default_nonzero,
    set_default_str, str_at,
};

/// Defaults a whole Pod: its spec, plus what upstream applies to Pods but not to templates
/// (`enableServiceLinks`, requests from limits, host-network ports).
pub(crate) fn pod(obj: &mut Value) {
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    pod_spec(spec);
    for key in ["containers", "initContainers"] {
        for container in items_mut(spec, key) {
            requests_from_limits(container);
        }
    }
    set_default(spec, "enableServiceLinks", Value::Bool(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for container in items_mut(spec, key) {
                for port in items_mut(container, "ports") {
                    let container_port = port.get("containerPort").cloned();
                    if let Some(container_port) = container_port {
                        let host_port = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
                        if host_port == 0 && port.is_object() {
                            port["hostPort"] = container_port;
                        }
                    }
                }
            }
        }
    }
}

/// Defaults the pod template at `path` (e.g. `["spec", "template"]`), if it exists.
pub(crate) fn template_at(obj: &mut Value, path: &[&str]) {
    if let Some(spec) = existing_path(obj, path).and_then(|t| existing_obj(t, "spec")) {
        pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and everything nested in a pod spec.
pub(crate) fn pod_spec(spec: &mut Value) {
    set_default_str(spec, "dnsPolicy", "ClusterFirst");
    set_default_str(spec, "restartPolicy", "Always");
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default_str(spec, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in items_mut(spec, key) {
            container(c);
        }
    }
    for volume in items_mut(spec, "volumes") {
        self::volume(volume);
    }
}

fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    if str_at(c, "imagePullPolicy").is_empty() {
        let policy = if image_tag_is_latest(str_at(c, "image")) {
            "Always"
        } else {
            "IfNotPresent"
        };
        c["imagePullPolicy"] = json!(policy);
    }
    set_default_str(c, "terminationMessagePath", "/dev/termination-log");
    set_default_str(c, "terminationMessagePolicy", "File");
    for port in items_mut(c, "ports") {
        set_default_str(port, "protocol", "TCP");
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing_obj(c, key) {
            probe(p);
        }
    }
    if let Some(lifecycle) = existing_obj(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(get) = existing_path(lifecycle, &[key, "httpGet"]) {
                http_get(get);
            }
        }
    }
    for env in items_mut(c, "env") {
        if let Some(field_ref) = existing_path(env, &["valueFrom", "fieldRef"]) {
            set_default_str(field_ref, "apiVersion", "v1");
        }
    }
}

/// Upstream's pull-policy rule: `Always` when the image's tag is `latest` — which includes an
/// image with neither tag nor digest — otherwise `IfNotPresent`.
pub fn image_tag_is_latest(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A tag is what follows the last ':' after the last '/' (a ':' before it is a registry port).
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => digest.is_none(),
    }
}

fn probe(p: &mut Value) {
    set_default_nonzero(p, "timeoutSeconds", 1);
    set_default_nonzero(p, "periodSeconds", 10);
    set_default_nonzero(p, "successThreshold", 1);
    set_default_nonzero(p, "failureThreshold", 3);
    if let Some(get) = existing_obj(p, "httpGet") {
        http_get(get);
    }
}

fn http_get(get: &mut Value) {
    set_default_str(get, "path", "/");
    set_default_str(get, "scheme", "HTTP");
}

/// Every volume source field of `core/v1.VolumeSource`: a volume with none of them set becomes an
/// `emptyDir`.
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// The volume source fields of a volume object.
pub(crate) fn volume_sources() -> &'static [&'static str] {
    VOLUME_SOURCES
}

fn volume(v: &mut Value) {
    let Some(map) = v.as_object() else {
        return;
    };
    if !VOLUME_SOURCES
        .iter()
        .any(|key| map.get(*key).is_some_and(|s| !s.is_null()))
    {
        v["emptyDir"] = json!({});
        return;
    }
    for key in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(source) = existing_obj(v, key) {
            set_default(source, "defaultMode", json!(420));
        }
    }
    if let Some(host_path) = existing_obj(v, "hostPath") {
        set_default(host_path, "type", json!(""));
    }
    if let Some(downward) = existing_obj(v, "downwardAPI") {
        field_refs_in_items(downward);
    }
    if let Some(projected) = existing_obj(v, "projected") {
        for source in items_mut(projected, "sources") {
            if let Some(token) = existing_obj(source, "serviceAccountToken") {
                set_default(token, "expirationSeconds", json!(3600));
            }
            if let Some(downward) = existing_obj(source, "downwardAPI") {
                field_refs_in_items(downward);
            }
        }
    }
    if let Some(image) = existing_obj(v, "image") {
        if str_at(image, "pullPolicy").is_empty() {
            let policy = if image_tag_is_latest(str_at(image, "reference")) {
                "Always"
            } else {
                "IfNotPresent"
            };
            image["pullPolicy"] = json!(policy);
        }
    }
    if let Some(claim) = existing_path(v, &["ephemeral", "volumeClaimTemplate", "spec"]) {
        set_default(claim, "volumeMode", json!("Filesystem"));
    }
}

fn field_refs_in_items(downward: &mut Value) {
    for item in items_mut(downward, "items") {
        if let Some(field_ref) = existing_obj(item, "fieldRef") {
            set_default_str(field_ref, "apiVersion", "v1");
        }
    }
}

/// `SetDefaults_Pod`: a container's requests default to its limits, per resource.
fn requests_from_limits(container: &mut Value) {
    let Some(limits) = container
        .get("resources")
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let Some(resources) = child_obj(container, "resources") else {
        return;
    };
    let Some(requests) = child_obj(resources, "requests").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}
