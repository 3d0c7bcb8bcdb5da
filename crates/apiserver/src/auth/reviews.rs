//! The create-only review APIs, answered at once and never stored: SelfSubjectAccessReview,
//! SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview (authorization.k8s.io),
//! SelfSubjectReview and TokenReview (authentication.k8s.io), plus the TokenRequest
//! subresource `serviceaccounts/<name>/token` (see `token_request.rs`).

use std::collections::BTreeMap;

use http::{Extensions, Method, Response, StatusCode};
use k3rs_api::{FieldError, FieldErrorKind, FieldPath};
use serde_json::{json, Value};

use super::attributes::Attributes;
use super::rbac::PolicyRule;
use super::user::UserInfo;
use super::{authn, authorize, rules_for, token_request};
use crate::api::crud::parse_body;
use crate::api::{ApiError, Call};
use crate::response::{json as json_response, ResponseBody};

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// The handler for a request, when it is one of the virtual resources of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Review {
    SelfSubjectAccess,
    SubjectAccess,
    LocalSubjectAccess,
    SelfSubjectRules,
    SelfSubject,
    Token,
    TokenRequest,
}

fn review_of(call: &Call<'_>) -> Option<Review> {
    let resource = &call.resource;
    let subresource = call.path.subresource.as_deref();
    Some(match (resource.group, resource.plural, subresource) {
        (AUTHORIZATION, "selfsubjectaccessreviews", None) => Review::SelfSubjectAccess,
        (AUTHORIZATION, "subjectaccessreviews", None) => Review::SubjectAccess,
        (AUTHORIZATION, "localsubjectaccessreviews", None) => Review::LocalSubjectAccess,
        (AUTHORIZATION, "selfsubjectrulesreviews", None) => Review::SelfSubjectRules,
        (AUTHENTICATION, "selfsubjectreviews", None) => Review::SelfSubject,
        (AUTHENTICATION, "tokenreviews", None) => Review::Token,
        ("", "serviceaccounts", Some("token")) => Review::TokenRequest,
        _ => return None,
    })
}

/// Whether this module answers the request.
pub(crate) fn serves(call: &Call<'_>) -> bool {
    review_of(call).is_some()
}

/// Answers a review or token request. `extensions` carry the admitted [`UserInfo`].
pub(crate) async fn serve(
    call: &Call<'_>,
    method: &Method,
    extensions: &Extensions,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let Some(review) = review_of(call) else {
        return Err(ApiError::no_route());
    };
    if *method != Method::POST {
        return Err(ApiError::method_not_allowed(method));
    }
    // A review has no name of its own; only the token subresource addresses an object.
    if review != Review::TokenRequest && call.path.name.is_some() {
        return Err(ApiError::method_not_allowed(method));
    }
    let requester = extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::anonymous);
    let mut object = parse_body(call, body)?;
    let status = match review {
        Review::TokenRequest => return token_request::create(call, &object).await,
        Review::SelfSubjectAccess => {
            let attributes = access_attributes(call, &object, None)?;
            access_status(call, &requester, &attributes).await
        }
        Review::LocalSubjectAccess => {
            let namespace = call.namespace().unwrap_or("");
            let attributes = access_attributes(call, &object, Some(namespace))?;
            let user = subject_of(call, &object)?;
            access_status(call, &user, &attributes).await
        }
        Review::SubjectAccess => {
            let attributes = access_attributes(call, &object, None)?;
            let user = subject_of(call, &object)?;
            access_status(call, &user, &attributes).await
        }
        Review::SelfSubjectRules => {
            let namespace = object
                .get("spec")
                .and_then(|s| s.get("namespace"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            rules_status(&rules_for(call.state, &requester, &namespace).await)
        }
        Review::SelfSubject => json!({"userInfo": requester.to_json()}),
        Review::Token => token_review(call, &object).await?,
    };
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(call.resource.api_version));
        map.insert("kind".into(), json!(call.resource.kind));
        map.entry("metadata").or_insert_with(|| json!({}));
        map.insert("status".into(), status);
    }
    Ok(json_response(StatusCode::CREATED, &object))
}

fn invalid(call: &Call<'_>, errors: &[FieldError]) -> ApiError {
    ApiError::invalid(call.resource.kind, call.resource.group, "", errors)
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The question of an access review: exactly one of `spec.resourceAttributes` and
/// `spec.nonResourceAttributes`. `namespace` is the namespace a LocalSubjectAccessReview is
/// created in, which the question must be about.
fn access_attributes(
    call: &Call<'_>,
    object: &Value,
    namespace: Option<&str>,
) -> Result<Attributes, ApiError> {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (resource, non_resource) {
        (Some(attrs), None) => {
            let attr_namespace = str_field(attrs, "namespace");
            if let Some(namespace) = namespace {
                if !attr_namespace.is_empty() && attr_namespace != namespace {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {namespace}"
                    )));
                }
            }
            let mut attributes = Attributes::resource(
                str_field(attrs, "verb"),
                str_field(attrs, "group"),
                str_field(attrs, "resource"),
                namespace.unwrap_or(attr_namespace),
                str_field(attrs, "name"),
            );
            attributes.subresource = str_field(attrs, "subresource").to_owned();
            attributes.api_version = str_field(attrs, "version").to_owned();
            Ok(attributes)
        }
        (None, Some(attrs)) if namespace.is_none() => Ok(Attributes::non_resource(
            str_field(attrs, "verb"),
            str_field(attrs, "path"),
        )),
        (None, Some(attrs)) => Err(invalid(
            call,
            &[FieldError::invalid(
                FieldPath::new("spec").child("nonResourceAttributes"),
                attrs,
                "disallowed on this kind of request",
            )],
        )),
        _ => Err(invalid(
            call,
            &[FieldError::new(
                FieldErrorKind::Invalid,
                FieldPath::new("spec").child("resourceAttributes"),
                Some(&Value::String("null".into())),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

/// The user a SubjectAccessReview asks about (`spec.user`, `spec.groups`, `spec.extra`,
/// `spec.uid`).
fn subject_of(call: &Call<'_>, object: &Value) -> Result<UserInfo, ApiError> {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let name = str_field(&spec, "user").to_owned();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            call,
            &[FieldError::invalid(
                FieldPath::new("spec").child("user"),
                &Value::String(String::new()),
                "at least one of user or group must be specified",
            )],
        ));
    }
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    Ok(UserInfo {
        name,
        uid: str_field(&spec, "uid").to_owned(),
        groups,
        extra,
    })
}

async fn access_status(call: &Call<'_>, user: &UserInfo, attributes: &Attributes) -> Value {
    let decision = authorize(call.state, user, attributes).await;
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    status
}

fn rules_status(rules: &[PolicyRule]) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in rules {
        if rule.non_resource_urls.is_empty() {
            let mut out = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                out["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(out);
        } else {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    })
}

/// TokenReview: authenticates `spec.token` for `spec.audiences` (the API audiences when empty).
async fn token_review(call: &Call<'_>, object: &Value) -> Result<Value, ApiError> {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let token = str_field(&spec, "token");
    if token.is_empty() {
        return Err(invalid(
            call,
            &[FieldError::required(
                FieldPath::new("spec").child("token"),
                "",
            )],
        ));
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let state = call.state;
    let wanted = (!audiences.is_empty()).then_some(audiences.as_slice());
    let result = authn::authenticate_token(
        &state.auth,
        state.store.as_ref(),
        &state.registry,
        token,
        wanted,
    )
    .await;
    Ok(match result {
        Ok(user) => json!({
            "authenticated": true,
            "user": user.to_json(),
            "audiences": wanted.map(<[String]>::to_vec).unwrap_or_else(|| state.auth.tokens.api_audiences.clone()),
        }),
        Err(err) => {
            tracing::debug!(error = %err, "TokenReview: token refused");
            json!({"authenticated": false, "user": {}, "error": "invalid bearer token"})
        }
    })
}
