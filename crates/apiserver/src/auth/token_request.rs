//! The TokenRequest API (`POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`, what
//! `kubectl create token` calls): a signed service-account JWT for the requested audiences and
//! lifetime, optionally bound to a Pod, Secret or Node so that it dies with that object.

use http::{Response, StatusCode};
use k3rs_api::{FieldError, FieldErrorKind, FieldPath};
use serde_json::{json, Value};

use super::authn::{self, alive_with_uid};
use super::service_account::{KubernetesClaim, ObjectRef};
use crate::api::error::Subject;
use crate::api::objects::{rfc3339, unix_now};
use crate::api::{ApiError, Call};
use crate::response::{json as json_response, ResponseBody};

/// Lifetime of a token when the request names none (upstream's default).
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a client may ask for: 10 minutes.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest: 2^32 seconds, as upstream validates.
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

fn invalid(name: &str, errors: &[FieldError]) -> ApiError {
    ApiError::invalid("TokenRequest", "authentication.k8s.io", name, errors)
}

fn store_error(err: authn::AuthnError) -> ApiError {
    ApiError::internal(err)
}

/// Issues a token for the service account the request addresses.
pub(crate) async fn create(
    call: &Call<'_>,
    request: &Value,
) -> Result<Response<ResponseBody>, ApiError> {
    let state = call.state;
    let namespace = call.namespace().unwrap_or("").to_owned();
    let name = call.path.name.clone().unwrap_or_default();
    let account = authn::read(
        state.store.as_ref(),
        &state.registry,
        "serviceaccounts",
        Some(&namespace),
        &name,
    )
    .await
    .map_err(store_error)?
    .ok_or_else(|| {
        ApiError::not_found(Subject {
            group: "",
            resource: "serviceaccounts",
            name: &name,
        })
    })?;
    let account_uid = account
        .get("metadata")
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !alive_with_uid(&account, &account_uid) {
        return Err(ApiError::forbidden(
            call.subject(&name),
            "the service account is being deleted",
        ));
    }

    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let spec_path = FieldPath::new("spec");
    let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                invalid(
                    &name,
                    &[FieldError::invalid(
                        spec_path.child("audiences"),
                        &Value::Array(list.clone()),
                        "must be strings",
                    )],
                )
            })?,
        _ => state.auth.tokens.api_audiences.clone(),
    };
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(value) => {
            let field = spec_path.child("expirationSeconds");
            let seconds = value.as_i64().ok_or_else(|| {
                invalid(
                    &name,
                    &[FieldError::invalid(
                        field.clone(),
                        value,
                        "must be an integer",
                    )],
                )
            })?;
            if seconds < MIN_EXPIRATION_SECONDS {
                return Err(invalid(
                    &name,
                    &[FieldError::invalid(
                        field,
                        value,
                        "may not specify a duration less than 10 minutes",
                    )],
                ));
            }
            if seconds > MAX_EXPIRATION_SECONDS {
                return Err(invalid(
                    &name,
                    &[FieldError::invalid(
                        field,
                        value,
                        "may not specify a duration larger than 2^32 seconds",
                    )],
                ));
            }
            seconds
        }
    };

    let mut claim = KubernetesClaim {
        namespace: namespace.clone(),
        serviceaccount: ObjectRef {
            name: name.clone(),
            uid: account_uid,
        },
        ..KubernetesClaim::default()
    };
    let mut bound_ref = Value::Null;
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        let kind = bound.get("kind").and_then(Value::as_str).unwrap_or("");
        let bound_name = bound.get("name").and_then(Value::as_str).unwrap_or("");
        let field = spec_path.child("boundObjectRef");
        let (plural, object_namespace) = match kind {
            "Pod" => ("pods", Some(namespace.as_str())),
            "Secret" => ("secrets", Some(namespace.as_str())),
            "Node" => ("nodes", None),
            other => {
                return Err(invalid(
                    &name,
                    &[FieldError::new(
                        FieldErrorKind::NotSupported,
                        field.child("kind"),
                        Some(&json!(other)),
                        "supported values: \"Pod\", \"Secret\", \"Node\"",
                    )],
                ))
            }
        };
        if bound_name.is_empty() {
            return Err(invalid(
                &name,
                &[FieldError::required(field.child("name"), "")],
            ));
        }
        let object = authn::read(
            state.store.as_ref(),
            &state.registry,
            plural,
            object_namespace,
            bound_name,
        )
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::not_found(Subject {
                group: "",
                resource: plural,
                name: bound_name,
            })
        })?;
        let stored_uid = object
            .get("metadata")
            .and_then(|m| m.get("uid"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let wanted_uid = bound.get("uid").and_then(Value::as_str).unwrap_or("");
        if !wanted_uid.is_empty() && wanted_uid != stored_uid {
            return Err(ApiError::conflict(
                Subject {
                    group: "",
                    resource: plural,
                    name: bound_name,
                },
                &format!("the UID in the bound object reference ({wanted_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
        let reference = Some(ObjectRef {
            name: bound_name.to_owned(),
            uid: stored_uid.clone(),
        });
        match kind {
            "Pod" => claim.pod = reference,
            "Secret" => claim.secret = reference,
            _ => claim.node = reference,
        }
        bound_ref = json!({
            "kind": kind,
            "apiVersion": "v1",
            "name": bound_name,
            "uid": stored_uid,
        });
    }

    let now = unix_now();
    let (token, claims) = state
        .auth
        .tokens
        .issue(claim, audiences.clone(), now, expiration)
        .map_err(ApiError::internal)?;
    tracing::debug!(serviceaccount = %format!("{namespace}/{name}"), jti = %claims.jti, "issued a service-account token");
    let mut response_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if !bound_ref.is_null() {
        response_spec["boundObjectRef"] = bound_ref;
    }
    let mut metadata = request
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(namespace);
    metadata["creationTimestamp"] = json!(rfc3339(now));
    let response = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": metadata,
        "spec": response_spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(claims.exp)},
    });
    Ok(json_response(StatusCode::CREATED, &response))
}
