//! Single-object verbs: get, create, update (PUT), patch, delete.

use http::{Response, StatusCode};
use k3rs_store::{KeyValue, StoreError};
use serde_json::Value;

use super::allocate;
use super::crd;
use super::error::ApiError;
use super::managed;
use super::namespaces;
use super::objects::{self, decode, encode, meta_str, object_key};
use super::partial;
use super::patching::Patch;
use super::strategy::{self, Precondition};
use super::{table, Call, Format};
use crate::response::{json, ResponseBody};

/// How often a write that lost a race with another writer is retried (unconditional updates and
/// patches only; a client's own resourceVersion precondition is never retried).
const RETRIES: usize = 8;

/// The object as JSON, as a one-row Table, or as its `PartialObjectMetadata`.
pub(crate) fn respond(
    call: &Call<'_>,
    status: StatusCode,
    object: &Value,
) -> Response<ResponseBody> {
    let mut response = match call.format {
        Format::Json => json(status, object),
        Format::Table => json(
            status,
            &table::table(call, std::slice::from_ref(object), None),
        ),
        Format::Metadata(version) => partial::respond(status, object, version),
        // Refused before the verb ran (see `resource_request`); answered the same way here.
        Format::MetadataList(_) => {
            return ApiError::partial_list_of_object(call.resource.kind).into_response()
        }
    };
    for warning in call.take_warnings() {
        let text = format!("299 - {}", Value::from(warning));
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    response
}

/// Reads the stored object `name`.
pub(crate) async fn read(call: &Call<'_>, name: &str) -> Result<(KeyValue, Value), ApiError> {
    let key = object_key(&call.resource, call.namespace(), name);
    let kv = call
        .state
        .store
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(call.subject(name)))?;
    let object = decode(&call.resource, &kv)?;
    Ok((kv, object))
}

pub(crate) async fn get(call: &Call<'_>, name: &str) -> Result<Response<ResponseBody>, ApiError> {
    let (_, object) = read(call, name).await?;
    Ok(respond(call, StatusCode::OK, &object))
}

/// Parses a request body: JSON, or YAML when the client says so.
pub(crate) fn parse_body(call: &Call<'_>, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = call
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = content_type.split(';').next().unwrap_or("").trim();
    let value: Value = match base {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|err| {
            let reason = k3rs_api::go_json::syntax_error(body, &err).unwrap_or_else(|| {
                tracing::debug!(error = %err, "a JSON body with a syntax error Go's words are not known for");
                err.to_string()
            });
            unrecognized(call, body, &reason)
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|err| {
                ApiError::bad_request(format!("couldn't decode the request body as YAML: {err}"))
            })?,
        "application/vnd.kubernetes.protobuf" => {
            let expected = (call.resource.api_version, call.resource.kind);
            match k3rs_protobuf::decode(body, Some(expected)) {
                Ok(decoded) => decoded.object,
                Err(k3rs_protobuf::ProtobufError::UnknownKind { .. }) => {
                    return Err(ApiError::unsupported_media_type(base))
                }
                Err(err) => {
                    return Err(ApiError::bad_request(format!(
                        "couldn't decode the protobuf request body: {err}"
                    )))
                }
            }
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    match &value {
        Value::Object(_) => Ok(value),
        // Go decodes `null` into an object as a no-op: it is an empty object of the URL's kind.
        Value::Null => Ok(Value::Object(Default::default())),
        other => Err(unrecognized(
            call,
            body,
            &k3rs_api::go_json::value_type_error(other, TYPE_META_STRUCT),
        )),
    }
}

/// The struct upstream reads a body's `apiVersion` and `kind` into first, as Go prints its type.
const TYPE_META_STRUCT: &str = "struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }";

/// Upstream's 400 for a body whose `apiVersion` and `kind` cannot be read (it is not JSON, or
/// not a JSON object): `reason` is the JSON error, then the body as `summarizeData` shows it.
fn unrecognized(call: &Call<'_>, body: &[u8], reason: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {reason} ({})",
        call.resource.kind,
        summarize(body)
    ))
}

/// A body in an error message as upstream's `summarizeData` shows it: `<empty>`, the text of an
/// object, or hex of anything else, cut at 30 bytes.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let shown = &body[..body.len().min(MAX)];
    let more = if body.len() > MAX { " ..." } else { "" };
    match body.first() {
        None => "<empty>".to_owned(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(shown)),
        Some(_) => {
            let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

pub(crate) async fn create(
    call: &Call<'_>,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let object = parse_body(call, body)?;
    let created = create_object(call, object, Ownership::Track).await?;
    Ok(respond(call, StatusCode::CREATED, &created))
}

/// How a write records field ownership (`metadata.managedFields`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// The writer owns what it changed (operation `Update`).
    Track,
    /// Server-side apply has already set the managed fields.
    Applied,
}

/// Creates `object` (a client's body, or an apply's result) and returns it as stored.
async fn create_object(
    call: &Call<'_>,
    mut object: Value,
    ownership: Ownership,
) -> Result<Value, ApiError> {
    let dry_run = call.query.dry_run()?;
    let resource = &call.resource;
    strategy::check_identity(resource, &mut object, call.namespace(), None)?;
    crd::check_create(call)?;
    strategy::decode_typed(call, &mut object)?;
    if objects::resource_version(&object)?.is_some() {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = strategy::name_for_create(resource, &mut object)?;
    if resource.namespaced {
        let namespace = call.namespace().unwrap_or("default").to_owned();
        namespaces::check_accepts_creates(call, &namespace, &name).await?;
        super::admission::service_account(call, &namespace, &mut object).await?;
    }
    strategy::prepare_for_create(resource, &mut object)?;
    if ownership == Ownership::Track {
        managed::track(call, None, &mut object)?;
    }
    if dry_run {
        return Ok(object);
    }
    let claimed = allocate_for(call, &mut object, None).await?;
    let key = object_key(resource, call.namespace(), &name);
    let created = call.state.store.create(&key, encode(&object)?).await;
    if created.is_err() {
        if let Some(claimed) = &claimed {
            allocate::release(call.state.store.as_ref(), &call.state.registry, claimed).await;
        }
    }
    let kv = match created {
        Ok(kv) => kv,
        Err(StoreError::AlreadyExists { .. }) => {
            return Err(ApiError::already_exists(call.subject(&name)))
        }
        Err(err) => return Err(ApiError::internal(err)),
    };
    objects::set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

pub(crate) async fn update(
    call: &Call<'_>,
    name: &str,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let mut new = parse_body(call, body)?;
    strategy::check_identity(&call.resource, &mut new, call.namespace(), Some(name))?;
    strategy::decode_typed(call, &mut new)?;
    let precondition = Precondition::Object(objects::resource_version(&new)?);
    let stored = write(call, name, precondition, Ownership::Track, |_old| {
        Ok(new.clone())
    })
    .await?;
    Ok(respond(call, StatusCode::OK, &stored))
}

pub(crate) async fn patch(
    call: &Call<'_>,
    name: &str,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let patch = Patch::parse(call, body)?;
    if let Patch::Apply(config) = patch {
        return apply(call, name, config).await;
    }
    let resource = call.resource.clone();
    let namespace = call.namespace().map(str::to_owned);
    let stored = write(
        call,
        name,
        Precondition::None,
        Ownership::Track,
        move |old| {
            let mut patched = patch.apply(old)?;
            // Decoded first, as upstream's patcher does before it checks name and namespace.
            patch.decode_result(call, old, &mut patched)?;
            strategy::check_identity(&resource, &mut patched, namespace.as_deref(), Some(name))?;
            check_patched_version(call, name, old, &patched)?;
            Ok(patched)
        },
    )
    .await?;
    Ok(respond(call, StatusCode::OK, &stored))
}

/// Server-side apply: merges the configuration into the object (creating it when missing, except
/// through a subresource) and stores the result like any write.
async fn apply(
    call: &Call<'_>,
    name: &str,
    mut config: Value,
) -> Result<Response<ResponseBody>, ApiError> {
    strategy::check_identity(&call.resource, &mut config, call.namespace(), Some(name))?;
    let precondition = match objects::resource_version(&config)? {
        None => Precondition::None,
        given => Precondition::Object(given),
    };
    if let Err(err) = read(call, name).await {
        if err.code != StatusCode::NOT_FOUND || call.path.subresource.is_some() {
            return Err(err);
        }
        let applied = managed::apply(call, None, &config)?;
        match create_object(call, applied, Ownership::Applied).await {
            Ok(created) => return Ok(respond(call, StatusCode::CREATED, &created)),
            // Another writer created it meanwhile: apply to theirs.
            Err(err) if err.reason == "AlreadyExists" => {}
            Err(err) => return Err(err),
        }
    }
    let stored = write(call, name, precondition, Ownership::Applied, |old| {
        let mut merged = managed::apply(call, Some(old), &config)?;
        strategy::decode_typed(call, &mut merged)?;
        Ok(merged)
    })
    .await?;
    Ok(respond(call, StatusCode::OK, &stored))
}

/// A patch that sets `metadata.resourceVersion` makes it a precondition, as upstream (`"0"`
/// included: the patched object is then an update with that resourceVersion).
pub(crate) fn check_patched_version(
    call: &Call<'_>,
    name: &str,
    old: &Value,
    patched: &Value,
) -> Result<(), ApiError> {
    let wanted = objects::resource_version(patched)?;
    if wanted.is_none() || wanted == objects::resource_version(old)? {
        return Ok(());
    }
    match Precondition::Object(wanted).revision(&call.resource, name)? {
        None => Ok(()),
        Some(_) => Err(ApiError::stale(call.subject(name))),
    }
}

/// Reads the object, computes its new form with `change`, and stores it if it changed,
/// retrying on a lost race unless the client gave a resourceVersion precondition.
pub(crate) async fn write(
    call: &Call<'_>,
    name: &str,
    precondition: Precondition,
    ownership: Ownership,
    change: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let dry_run = call.query.dry_run()?;
    let subresource = call.path.subresource.as_deref();
    for _ in 0..RETRIES {
        let (old_kv, old) = read(call, name).await?;
        // After the read, as upstream: a missing object is a 404 before anything else.
        let precondition = precondition.revision(&call.resource, name)?;
        if let Some(wanted) = precondition {
            if wanted != old_kv.mod_revision {
                return Err(ApiError::stale(call.subject(name)));
            }
        }
        let new = change(&old)?;
        let mut merged = strategy::prepare_for_update(&call.resource, &old, &new, subresource)?;
        // The last finalizer of an object being deleted is gone: the delete completes now.
        if meta_str(&merged, "deletionTimestamp").is_some()
            && objects::finalizers(&merged).is_empty()
            && !namespaces::holds_deletion(&merged)
        {
            if dry_run {
                objects::set_resource_version(&mut merged, old_kv.mod_revision);
                return Ok(merged);
            }
            let key = object_key(&call.resource, call.namespace(), name);
            match call
                .state
                .store
                .delete(&key, Some(old_kv.mod_revision))
                .await
            {
                Ok(deleted) => {
                    released(call, &old).await;
                    objects::set_resource_version(&mut merged, deleted.revision);
                    return Ok(merged);
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. })
                    if precondition.is_none() =>
                {
                    continue
                }
                Err(StoreError::NotFound { .. }) => {
                    return Err(ApiError::not_found(call.subject(name)))
                }
                Err(StoreError::Conflict { .. }) => {
                    return Err(ApiError::stale(call.subject(name)))
                }
                Err(err) => return Err(ApiError::internal(err)),
            }
        }
        if ownership == Ownership::Track {
            managed::track(call, Some(&old), &mut merged)?;
        }
        if encode(&merged)? == old_kv.value || dry_run {
            // Nothing changed (or nothing may): answer with the object as stored, unwritten.
            objects::set_resource_version(&mut merged, old_kv.mod_revision);
            return Ok(merged);
        }
        let claimed = allocate_for(call, &mut merged, Some(&old)).await?;
        let key = object_key(&call.resource, call.namespace(), name);
        let updated = call
            .state
            .store
            .update(&key, encode(&merged)?, old_kv.mod_revision)
            .await;
        match (&updated, &claimed) {
            (Ok(_), Some(_)) => {
                allocate::release_service(
                    call.state.store.as_ref(),
                    &call.state.registry,
                    &old,
                    Some(&merged),
                )
                .await;
            }
            (Err(_), Some(claimed)) => {
                allocate::release(call.state.store.as_ref(), &call.state.registry, claimed).await;
            }
            _ => {}
        }
        match updated {
            Ok(kv) => {
                objects::set_resource_version(&mut merged, kv.mod_revision);
                return Ok(merged);
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. })
                if precondition.is_none() =>
            {
                continue
            }
            Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::not_found(call.subject(name)))
            }
            Err(StoreError::Conflict { .. }) => return Err(ApiError::stale(call.subject(name))),
            Err(err) => return Err(ApiError::internal(err)),
        }
    }
    Err(ApiError::conflict(
        call.subject(name),
        "the object is being changed by too many writers at once; try again",
    ))
}

fn is_service(call: &Call<'_>) -> bool {
    call.resource.group.is_empty() && call.resource.kind == "Service"
}

/// Allocates what a Service needs (ClusterIP, NodePorts); `None` for every other kind.
async fn allocate_for(
    call: &Call<'_>,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<Option<allocate::Claimed>, ApiError> {
    if !is_service(call) {
        return Ok(None);
    }
    let claimed = allocate::allocate(
        call.state.store.as_ref(),
        &call.state.registry,
        call.state.service_cidr,
        object,
        old,
    )
    .await?;
    Ok(Some(claimed))
}

/// Gives back what a deleted object held (a Service's ClusterIP and NodePorts).
async fn released(call: &Call<'_>, old: &Value) {
    if is_service(call) {
        allocate::release_service(call.state.store.as_ref(), &call.state.registry, old, None).await;
    }
}

/// DeleteOptions from the body and the query.
#[derive(Debug, Default)]
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<i64>,
}

fn delete_options(call: &Call<'_>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut options = DeleteOptions::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let value = parse_body(call, body)?;
        options.grace_period = value.get("gracePeriodSeconds").and_then(Value::as_i64);
        options.propagation = value
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(pre) = value.get("preconditions") {
            options.uid = pre.get("uid").and_then(Value::as_str).map(str::to_owned);
            options.resource_version = pre
                .get("resourceVersion")
                .and_then(Value::as_str)
                .and_then(|rv| rv.parse().ok());
        }
    }
    if let Some(grace) = call.query.integer("gracePeriodSeconds")? {
        options.grace_period = Some(grace);
    }
    if let Some(policy) = call.query.get("propagationPolicy") {
        options.propagation = Some(policy.to_owned());
    }
    if let Some(policy) = &options.propagation {
        if !matches!(policy.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(options)
}

pub(crate) async fn delete(
    call: &Call<'_>,
    name: &str,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let options = delete_options(call, body)?;
    let dry_run = call.query.dry_run()?;
    delete_one(call, name, &options, dry_run).await
}

async fn delete_one(
    call: &Call<'_>,
    name: &str,
    options: &DeleteOptions,
    dry_run: bool,
) -> Result<Response<ResponseBody>, ApiError> {
    namespaces::check_deletable(&call.resource, name)?;
    for _ in 0..RETRIES {
        let (old_kv, old) = read(call, name).await?;
        if let Some(uid) = &options.uid {
            let actual = meta_str(&old, "uid").unwrap_or("");
            if uid != actual {
                return Err(ApiError::conflict(
                    call.subject(name),
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = options.resource_version {
            if rv != old_kv.mod_revision {
                return Err(ApiError::conflict(
                    call.subject(name),
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", old_kv.mod_revision),
                ));
            }
        }
        let mut marked = old.clone();
        let mut finalizers = objects::finalizers(&old);
        if let Some(finalizer) = crd::delete_finalizer(&call.resource, &old) {
            if !finalizers.iter().any(|f| f == finalizer) {
                finalizers.push(finalizer.into());
            }
        }
        match options.propagation.as_deref() {
            Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into());
            }
            Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into());
            }
            _ => {}
        }
        let grace = graceful_period(call, &old, options);
        let keep = !finalizers.is_empty() || grace > 0 || namespaces::holds_deletion(&old);
        let key = object_key(&call.resource, call.namespace(), name);
        if keep {
            if meta_str(&old, "deletionTimestamp").is_some()
                && finalizers == objects::finalizers(&old)
            {
                // Already being deleted: nothing more to record.
                return Ok(respond(call, StatusCode::OK, &old));
            }
            if let Some(meta) = objects::metadata_mut(&mut marked) {
                meta.insert(
                    "deletionTimestamp".into(),
                    Value::from(objects::rfc3339(objects::unix_now() + grace)),
                );
                meta.insert("deletionGracePeriodSeconds".into(), Value::from(grace));
                if !finalizers.is_empty() {
                    meta.insert("finalizers".into(), Value::from(finalizers.clone()));
                }
            }
            namespaces::mark_terminating(&call.resource, &mut marked);
            if dry_run {
                return Ok(respond(call, StatusCode::OK, &marked));
            }
            match call
                .state
                .store
                .update(&key, encode(&marked)?, old_kv.mod_revision)
                .await
            {
                Ok(kv) => {
                    objects::set_resource_version(&mut marked, kv.mod_revision);
                    return Ok(respond(call, StatusCode::OK, &marked));
                }
                Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => continue,
                Err(StoreError::NotFound { .. }) => {
                    return Err(ApiError::not_found(call.subject(name)))
                }
                Err(err) => return Err(ApiError::internal(err)),
            }
        }
        if dry_run {
            return Ok(respond(call, StatusCode::OK, &old));
        }
        match call
            .state
            .store
            .delete(&key, Some(old_kv.mod_revision))
            .await
        {
            Ok(deleted) => {
                released(call, &old).await;
                objects::set_resource_version(&mut marked, deleted.revision);
                return Ok(respond(call, StatusCode::OK, &marked));
            }
            Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => continue,
            Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::not_found(call.subject(name)))
            }
            Err(err) => return Err(ApiError::internal(err)),
        }
    }
    Err(ApiError::conflict(
        call.subject(name),
        "the object is being changed by too many writers at once; try again",
    ))
}

/// The grace period of a delete: only pods wait for their kubelet; everything else goes at
/// once (other kinds have no graceful deletion).
fn graceful_period(call: &Call<'_>, object: &Value, options: &DeleteOptions) -> i64 {
    let is_pod = call.resource.group.is_empty() && call.resource.kind == "Pod";
    if is_pod {
        pod_grace_period(object, options.grace_period)
    } else {
        0
    }
}

/// Upstream's `podStrategy.CheckGracefulDelete`: the requested period, else the pod's
/// `terminationGracePeriodSeconds`; 0 for a pod no kubelet runs (not bound to a node) or that
/// has finished (`Succeeded`/`Failed`); a negative period becomes 1.
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let spec = pod.get("spec");
    let bound = spec
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return 0;
    }
    let default = spec
        .and_then(|s| s.get("terminationGracePeriodSeconds"))
        .and_then(Value::as_i64)
        .unwrap_or(30);
    match requested.unwrap_or(default) {
        period if period < 0 => 1,
        period => period,
    }
}

/// Deletes every object in `names` with the same options (deletecollection).
pub(crate) async fn delete_many(
    call: &Call<'_>,
    names: &[(Option<String>, String)],
    body: &[u8],
) -> Result<(), ApiError> {
    let options = delete_options(call, body)?;
    let dry_run = call.query.dry_run()?;
    for (namespace, name) in names {
        let mut scoped = Call {
            state: call.state,
            resource: call.resource.clone(),
            path: call.path.clone(),
            query: super::query::Query::default(),
            format: Format::Json,
            headers: call.headers,
            warnings: Default::default(),
        };
        scoped.path.namespace = namespace.clone();
        match delete_one(&scoped, name, &options, dry_run).await {
            Ok(_) => {}
            Err(err) if err.code == StatusCode::NOT_FOUND => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_wait_for_their_kubelet_unless_unbound_or_finished() {
        let pod = |node: &str, phase: &str| {
            json!({
                "spec": {"nodeName": node, "terminationGracePeriodSeconds": 45},
                "status": {"phase": phase},
            })
        };
        assert_eq!(pod_grace_period(&pod("n1", "Running"), None), 45);
        assert_eq!(pod_grace_period(&pod("n1", "Running"), Some(5)), 5);
        assert_eq!(pod_grace_period(&pod("n1", "Running"), Some(0)), 0);
        assert_eq!(pod_grace_period(&pod("n1", "Running"), Some(-3)), 1);
        assert_eq!(pod_grace_period(&pod("n1", "Pending"), None), 45);
        assert_eq!(pod_grace_period(&pod("", "Pending"), Some(10)), 0);
        assert_eq!(pod_grace_period(&pod("n1", "Succeeded"), None), 0);
        assert_eq!(pod_grace_period(&pod("n1", "Failed"), Some(10)), 0);
        assert_eq!(
            pod_grace_period(&json!({"spec": {"nodeName": "n1"}}), None),
            30
        );
    }
}
