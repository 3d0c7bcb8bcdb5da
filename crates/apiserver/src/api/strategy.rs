//! What the API server does to an object on its way into the store, per verb: the part of
//! upstream's REST strategies that is the same for every kind (system metadata, status/spec
//! separation, generation), plus the per-kind defaulting and validation of `k3rs-api`.

use k3rs_api::ResourceInfo;
use serde_json::Value;

use super::error::ApiError;
use super::objects::{meta_str, metadata_mut, new_uid, now_rfc3339};
use super::Call;

/// Metadata fields only the server sets; a client's values are replaced on create.
const SYSTEM_FIELDS: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "selfLink",
];

/// `fieldValidation`: what to do with fields the kind does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    /// The request's `fieldValidation` (upstream's default is `Warn`; kubectl sends `Strict`).
    pub(crate) fn of(call: &Call<'_>) -> Result<FieldValidation, ApiError> {
        match call.query.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// Why an object did not decode as its kind.
pub(crate) enum DecodeFailure<'a> {
    /// A field of the wrong JSON type: serde's message (the callers word it as upstream).
    Type(&'a str),
    /// Fields the kind does not have, under `fieldValidation=Strict`: upstream's `unknown field
    /// "spec.foo"` entries.
    Unknown(Vec<String>),
}

/// Decodes `object` as the kind, as upstream decodes every request body: a wrong type is
/// upstream's 400, unknown fields are dropped — and reported as the request's `fieldValidation`
/// asks (400 `strict decoding error: …` when strict).
pub(crate) fn decode_typed(call: &Call<'_>, object: &mut Value) -> Result<(), ApiError> {
    decode_typed_or(call, object, |object, failure| match failure {
        DecodeFailure::Type(err) => decode_error(&call.resource, object, err),
        DecodeFailure::Unknown(listed) => {
            ApiError::bad_request(format!("strict decoding error: {}", listed.join(", ")))
        }
    })
}

/// [`decode_typed`] with the error of a failed decoding made by `failed` (a patched object's
/// is not a body's: upstream answers 422 for it).
pub(crate) fn decode_typed_or(
    call: &Call<'_>,
    object: &mut Value,
    failed: impl FnOnce(&Value, DecodeFailure<'_>) -> ApiError,
) -> Result<(), ApiError> {
    let validation = FieldValidation::of(call)?;
    // Built-in kinds: the typed round trip; custom resources: their schema's pruning.
    let typed = match call.resource.decode(object) {
        Ok(typed) => typed,
        Err(err) => return Err(failed(object, DecodeFailure::Type(&err.to_string()))),
    };
    let unknown = k3rs_api::strict::unknown_fields(object, &typed);
    if !unknown.is_empty() {
        let listed: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match validation {
            FieldValidation::Strict => return Err(failed(object, DecodeFailure::Unknown(listed))),
            FieldValidation::Warn => call.warn(listed),
            FieldValidation::Ignore => {}
        }
    }
    *object = typed;
    merge_secret_string_data(&call.resource, object);
    Ok(())
}

/// Upstream's conversion of a v1 Secret to its internal form, which every write of one goes
/// through (create, update, patch, apply): `stringData` is written into `data` (base64, a key in
/// both takes the `stringData` value) and is never stored or returned.
fn merge_secret_string_data(resource: &ResourceInfo, object: &mut Value) {
    use base64::Engine as _;
    if !(resource.group.is_empty() && resource.kind == "Secret") {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !data.is_object() {
        *data = Value::Object(serde_json::Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            data.insert(key, Value::from(encoded));
        }
    }
}

/// Kinds whose upstream strategy says `AllowUnconditionalUpdate() == false`: an update must name
/// the resourceVersion it replaces. Every other built-in kind takes an empty or `"0"` one as
/// "whatever is stored" (what `kubectl replace` of an exported object relies on).
const CONDITIONAL_UPDATE_ONLY: &[(&str, &str)] = &[
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("coordination.k8s.io", "Lease"),
    ("node.k8s.io", "RuntimeClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "CSIStorageCapacity"),
    ("storage.k8s.io", "VolumeAttachment"),
];

/// Upstream's `AllowUnconditionalUpdate` of the kind's strategy (custom resources: false).
pub(crate) fn allows_unconditional_update(resource: &ResourceInfo) -> bool {
    resource.custom.is_none() && !CONDITIONAL_UPDATE_ONLY.contains(&(resource.group, resource.kind))
}

/// The resourceVersion a write is conditional on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// The client named none and needs none (a patch, a scale without one).
    None,
    /// The `metadata.resourceVersion` of the whole object a client sent (PUT, apply, a patch
    /// that sets it): empty or `"0"` means "unconditional" where the kind allows that.
    Object(Option<i64>),
}

impl Precondition {
    /// The revision the stored object must have, following upstream's `Store.Update`.
    pub(crate) fn revision(
        self,
        resource: &ResourceInfo,
        name: &str,
    ) -> Result<Option<i64>, ApiError> {
        match self {
            Precondition::None => Ok(None),
            Precondition::Object(Some(revision)) if revision != 0 => Ok(Some(revision)),
            Precondition::Object(_) if allows_unconditional_update(resource) => Ok(None),
            // Upstream names the resource (plural) where a kind would go here.
            Precondition::Object(_) => Err(ApiError::invalid(
                resource.plural,
                resource.group,
                name,
                &[k3rs_api::FieldError::invalid(
                    k3rs_api::FieldPath::new("metadata").child("resourceVersion"),
                    &Value::from(0),
                    "must be specified for an update",
                )],
            )),
        }
    }
}

/// Upstream's answer to a body that does not decode as the kind (`transformDecodeError`): 400
/// with `<Kind> in version "<v>" cannot be handled as a <Kind>: <decoder's error>`, the error
/// in Go's words (`json: cannot unmarshal string into Go struct field Pod.spec of type
/// v1.PodSpec`) where the mismatch is one [`k3rs_api::go_json`] can name, serde's otherwise.
fn decode_error(resource: &ResourceInfo, object: &Value, serde_error: &str) -> ApiError {
    let cause = k3rs_api::go_json::type_error(resource, object).unwrap_or_else(|| {
        tracing::debug!(
            kind = resource.kind,
            error = serde_error,
            "a decoding error Go's words were not found for"
        );
        serde_error.to_owned()
    });
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: {cause}",
        kind = resource.kind,
        version = resource.version,
    ))
}

/// Prepares a new object: system metadata, a reset status, defaults; then validates it.
pub(crate) fn prepare_for_create(
    resource: &ResourceInfo,
    object: &mut Value,
) -> Result<(), ApiError> {
    let meta = metadata_mut(object)
        .ok_or_else(|| ApiError::bad_request("the object is not a JSON object"))?;
    for field in SYSTEM_FIELDS {
        meta.remove(*field);
    }
    meta.insert("uid".into(), Value::from(new_uid()));
    meta.insert("creationTimestamp".into(), Value::from(now_rfc3339()));
    if k3rs_api::tracks_generation(resource) {
        meta.insert("generation".into(), Value::from(1));
    }
    if resource.has_subresource("status") {
        reset_status(resource, object);
    }
    k3rs_api::apply_defaults(resource, object);
    super::admission::default_toleration_seconds(resource, object);
    normalize(resource, object);
    let errors = k3rs_api::validate_create(resource, object);
    if !errors.is_empty() {
        let name = meta_str(object, "name").unwrap_or("");
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            name,
            &errors,
        ));
    }
    Ok(())
}

/// The object as Go's encoding leaves it (what the API will write and read back): zero values
/// of the fields Go always writes, no `omitempty` zeros. The stored object is so, and comparing
/// it with a new one (generation, "nothing changed") must see only real changes.
fn normalize(resource: &ResourceInfo, object: &mut Value) {
    let ty = k3rs_api::wire::GoType::of_kind(resource.api_version, resource.kind);
    k3rs_api::wire::normalize(object, ty);
}

/// The status a new object starts with: empty, except where upstream sets one.
fn reset_status(resource: &ResourceInfo, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            let qos = qos_class(map.get("spec"));
            map.insert(
                "status".into(),
                serde_json::json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        ("", "Namespace") => {
            map.insert("status".into(), serde_json::json!({"phase": "Active"}));
        }
        // Upstream's nodeStrategy: "Nodes allow *all* fields, including status, to be set on
        // create" — a kubelet registers its Node with its capacity, conditions and addresses.
        ("", "Node") => {}
        ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => {
            map.insert("status".into(), serde_json::json!({"phase": "Pending"}));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            // Upstream records the storage version at once, so `storedVersions` and the
            // (still empty) `acceptedNames` are present before the naming controller runs.
            let storage = map
                .get("spec")
                .and_then(|spec| spec.get("versions"))
                .and_then(Value::as_array)
                .and_then(|versions| {
                    versions
                        .iter()
                        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                })
                .and_then(|v| v.get("name"))
                .cloned();
            map.insert(
                "status".into(),
                serde_json::json!({
                    "acceptedNames": {"plural": "", "kind": ""},
                    "storedVersions": storage.into_iter().collect::<Vec<_>>(),
                }),
            );
        }
        _ => {
            map.remove("status");
        }
    }
}

/// Upstream's pod QoS class: BestEffort without any requests or limits, Guaranteed when every
/// container limits CPU and memory with requests equal to limits, Burstable otherwise.
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|field| spec.and_then(|s| s.get(*field)).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for container in containers {
        let resources = container.get("resources");
        let requests = resources
            .and_then(|r| r.get("requests"))
            .and_then(Value::as_object);
        let limits = resources
            .and_then(|r| r.get("limits"))
            .and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for name in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(name));
            let request = requests.and_then(|r| r.get(name)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Builds the object to store from the current one and the client's new version.
///
/// The main resource keeps the stored status when the kind has a status subresource; the
/// `status` subresource changes only the status. System metadata always comes from the stored
/// object; `generation` moves when the spec changes. The result is defaulted and validated.
pub(crate) fn prepare_for_update(
    resource: &ResourceInfo,
    old: &Value,
    new: &Value,
    subresource: Option<&str>,
) -> Result<Value, ApiError> {
    let endpoint = match subresource {
        Some("status") => k3rs_api::UpdateEndpoint::Status,
        Some("finalize") => k3rs_api::UpdateEndpoint::Finalize,
        _ => k3rs_api::UpdateEndpoint::Main,
    };
    let mut merged = new.clone();
    // Upstream's DefaultTolerationSeconds handles updates of pods proper as it does creates
    // (its handler is `Create, Update`): a PUT or patch that leaves the two tolerations out
    // gets them back rather than failing validation or losing them.
    if subresource.is_none() {
        super::admission::default_toleration_seconds(resource, &mut merged);
    }
    k3rs_api::prepare_update(resource, endpoint, old, &mut merged);
    let old_meta = old.get("metadata").and_then(Value::as_object);
    let meta = metadata_mut(&mut merged)
        .ok_or_else(|| ApiError::bad_request("the object is not a JSON object"))?;
    for field in SYSTEM_FIELDS {
        match old_meta.and_then(|m| m.get(*field)) {
            Some(value) => meta.insert((*field).to_owned(), value.clone()),
            None => meta.remove(*field),
        };
    }
    if resource.group.is_empty() && resource.kind == "Service" {
        k3rs_api::defaults::service::carry_over_allocations(old, &mut merged);
        k3rs_api::defaults::service::drop_type_dependent_fields(old, &mut merged);
    }
    k3rs_api::apply_defaults(resource, &mut merged);
    normalize(resource, &mut merged);
    if k3rs_api::generation_changes(resource, old, &merged) {
        let generation = old_meta
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(meta) = metadata_mut(&mut merged) {
            meta.insert("generation".into(), Value::from(generation + 1));
        }
    }
    let errors = k3rs_api::validate_update(resource, old, &merged);
    if !errors.is_empty() {
        let name = meta_str(&merged, "name").unwrap_or("");
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            name,
            &errors,
        ));
    }
    Ok(merged)
}

/// Checks the identity of a client's object against the endpoint: kind, apiVersion, name and
/// namespace, defaulting what is missing. `name` is the URL's name (update, patch).
pub(crate) fn check_identity(
    resource: &ResourceInfo,
    object: &mut Value,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<(), ApiError> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::from(resource.api_version));
        }
        Some(version) if version == resource.api_version => {}
        Some(version) => {
            return Err(ApiError::bad_request(format!(
            "the API version in the data ({version}) does not match the expected API version ({})",
            resource.api_version
        )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::from(resource.kind));
        }
        Some(kind) if kind == resource.kind => {}
        Some(kind) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                resource.kind
            )))
        }
    }
    let meta = metadata_mut(object)
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    if resource.namespaced {
        let path_ns = namespace.unwrap_or("default");
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), Value::from(path_ns));
            }
            Some(ns) if ns == path_ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = name {
        match meta.get("name").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("name".into(), Value::from(url_name));
            }
            Some(body_name) if body_name == url_name => {}
            Some(body_name) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
                )))
            }
        }
    }
    Ok(())
}

/// The name of a new object: its name, or its generateName plus a random suffix.
pub(crate) fn name_for_create(
    resource: &ResourceInfo,
    object: &mut Value,
) -> Result<String, ApiError> {
    if let Some(name) = meta_str(object, "name").filter(|n| !n.is_empty()) {
        return Ok(name.to_owned());
    }
    let generate = meta_str(object, "generateName").filter(|n| !n.is_empty());
    let Some(prefix) = generate.map(str::to_owned) else {
        return Err(ApiError::invalid(
            resource.kind,
            resource.group,
            "",
            &[k3rs_api::FieldError::required(
                k3rs_api::FieldPath::new("metadata").child("name"),
                "name or generateName is required",
            )],
        ));
    };
    let name = format!("{prefix}{}", super::objects::name_suffix());
    if let Some(meta) = metadata_mut(object) {
        meta.insert("name".into(), Value::from(name.clone()));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builtin(group: &str, kind: &str) -> ResourceInfo {
        k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group == group && r.kind == kind)
            .unwrap()
    }

    #[test]
    fn nodes_keep_their_status_on_create_other_kinds_start_empty() {
        let status = json!({
            "capacity": {"cpu": "4"},
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        let mut node = json!({"metadata": {"name": "n1"}, "status": status});
        prepare_for_create(&builtin("", "Node"), &mut node).unwrap();
        // As Go writes a `NodeCondition`: its unset times are `null`.
        assert_eq!(
            node["status"]["conditions"],
            json!([{"type": "Ready", "status": "True", "lastHeartbeatTime": null, "lastTransitionTime": null}])
        );
        assert_eq!(
            node["status"]["allocatable"],
            json!({"cpu": "4"}),
            "defaulted"
        );

        let mut deployment = json!({
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
            "status": {"replicas": 3},
        });
        prepare_for_create(&builtin("apps", "Deployment"), &mut deployment).unwrap();
        // The client's status is dropped; Go writes the empty struct.
        assert_eq!(deployment["status"], json!({}));
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(Some(&json!({"containers": [{"name": "a"}]}))),
            "BestEffort"
        );
        let guaranteed =
            json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(Some(&guaranteed)), "Guaranteed");
        let burstable = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(Some(&burstable)), "Burstable");
    }

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let secrets = builtin("", "Secret");
        let mut secret = json!({
            "data": {"k1": "djE=", "k2": ""},
            "stringData": {"k2": "v2", "k3": "ü"},
        });
        merge_secret_string_data(&secrets, &mut secret);
        assert_eq!(
            secret,
            json!({"data": {"k1": "djE=", "k2": "djI=", "k3": "w7w="}})
        );
        let mut only_strings = json!({"stringData": {"a": "b"}});
        merge_secret_string_data(&secrets, &mut only_strings);
        assert_eq!(only_strings, json!({"data": {"a": "Yg=="}}));
        let mut empty = json!({"data": {"a": "Yg=="}, "stringData": {}});
        merge_secret_string_data(&secrets, &mut empty);
        assert_eq!(empty, json!({"data": {"a": "Yg=="}}));
        // Another kind's `stringData` is its own business.
        let mut config_map = json!({"stringData": {"a": "b"}});
        merge_secret_string_data(&builtin("", "ConfigMap"), &mut config_map);
        assert_eq!(config_map, json!({"stringData": {"a": "b"}}));
    }

    #[test]
    fn pod_updates_get_the_default_tolerations_back() {
        let pods = builtin("", "Pod");
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        });
        prepare_for_create(&pods, &mut pod).unwrap();
        let tolerations = pod["spec"]["tolerations"].clone();
        assert_eq!(tolerations.as_array().unwrap().len(), 2);
        // A PUT of the pod as the client wrote it, without the tolerations admission added.
        let mut sent = pod.clone();
        sent["spec"].as_object_mut().unwrap().remove("tolerations");
        sent["metadata"]["labels"] = json!({"a": "b"});
        let updated = prepare_for_update(&pods, &pod, &sent, None).unwrap();
        assert_eq!(updated["spec"]["tolerations"], tolerations);
        assert_eq!(updated["metadata"]["labels"], json!({"a": "b"}));
        // Subresources are not pods proper: the status endpoint leaves the spec alone anyway.
        let status = prepare_for_update(&pods, &pod, &sent, Some("status")).unwrap();
        assert_eq!(status["spec"]["tolerations"], tolerations);
    }

    #[test]
    fn empty_or_zero_resource_versions_are_unconditional_where_upstream_allows_it() {
        let config_maps = builtin("", "ConfigMap");
        for given in [None, Some(0)] {
            assert_eq!(
                Precondition::Object(given)
                    .revision(&config_maps, "c")
                    .unwrap(),
                None
            );
        }
        assert_eq!(
            Precondition::Object(Some(7))
                .revision(&config_maps, "c")
                .unwrap(),
            Some(7)
        );
        let leases = builtin("coordination.k8s.io", "Lease");
        let err = Precondition::Object(Some(0))
            .revision(&leases, "l")
            .unwrap_err();
        assert_eq!(err.code, http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.message,
            "leases.coordination.k8s.io \"l\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        );
        assert_eq!(Precondition::None.revision(&leases, "l").unwrap(), None);
        for (group, kind) in CONDITIONAL_UPDATE_ONLY {
            let resource = builtin(group, kind);
            assert!(!allows_unconditional_update(&resource), "{kind}");
        }
    }
}
