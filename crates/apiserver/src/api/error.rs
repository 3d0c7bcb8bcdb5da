//! API errors: every failure a client can cause or meet, sent as a Kubernetes `Status`.

use http::StatusCode;
use k3rs_api::FieldError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

use crate::response::{status_response, ResponseBody};

/// A failed request, in the shape of a `Status` object.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    /// Boxed: most errors have none, and results stay small.
    pub(crate) details: Option<Box<StatusDetails>>,
}

/// The group/kind and name an error is about, as `StatusDetails` names them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject<'a> {
    /// API group (empty for core).
    pub(crate) group: &'a str,
    /// Plural resource name (`pods`) as upstream puts in `details.kind`.
    pub(crate) resource: &'a str,
    /// Object name.
    pub(crate) name: &'a str,
}

impl Subject<'_> {
    /// `pods "web"` / `deployments.apps "web"`, as upstream prefixes its messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            format!("{} \"{}\"", self.resource, self.name)
        } else {
            format!("{}.{} \"{}\"", self.resource, self.group, self.name)
        }
    }

    fn details(&self) -> StatusDetails {
        StatusDetails {
            group: (!self.group.is_empty()).then(|| self.group.to_owned()),
            kind: Some(self.resource.to_owned()),
            name: (!self.name.is_empty()).then(|| self.name.to_owned()),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404 NotFound for an object.
    pub(crate) fn not_found(subject: Subject<'_>) -> ApiError {
        ApiError {
            details: Some(Box::new(subject.details())),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} not found", subject.qualified()),
            )
        }
    }

    /// 404 for a path or resource type nothing serves.
    pub(crate) fn no_route() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 AlreadyExists.
    pub(crate) fn already_exists(subject: Subject<'_>) -> ApiError {
        ApiError {
            details: Some(Box::new(subject.details())),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} already exists", subject.qualified()),
            )
        }
    }

    /// 409 Conflict on a stale resourceVersion or precondition.
    pub(crate) fn conflict(subject: Subject<'_>, why: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(subject.details())),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {}: {why}",
                    subject.qualified()
                ),
            )
        }
    }

    /// 409 Conflict for a server-side apply that would change fields other managers own: one
    /// `FieldManagerConflict` cause per field, as upstream's `NewApplyConflict`.
    pub(crate) fn apply_conflict(conflicts: &[k3rs_patch::apply::Conflict]) -> ApiError {
        let message = k3rs_patch::apply::ApplyError::Conflicts(conflicts.to_vec()).to_string();
        let causes = conflicts
            .iter()
            .map(|c| StatusCause {
                reason: Some("FieldManagerConflict".to_owned()),
                message: Some(format!("conflict with {}", c.manager)),
                field: Some(c.field.clone()),
            })
            .collect();
        ApiError {
            details: Some(Box::new(StatusDetails {
                causes: Some(causes),
                ..Default::default()
            })),
            ..ApiError::new(StatusCode::CONFLICT, "Conflict", message)
        }
    }

    /// 409 Conflict for a write based on an old resourceVersion, in upstream's words.
    pub(crate) fn stale(subject: Subject<'_>) -> ApiError {
        ApiError::conflict(
            subject,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with one cause per field error.
    pub(crate) fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> ApiError {
        let list = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let listed = if errors.len() == 1 {
            list
        } else {
            format!("[{list}]")
        };
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: format!("{qualified} \"{name}\" is invalid: {listed}"),
            details: Some(Box::new(StatusDetails {
                // Go leaves empty ones out (`omitempty`): a patch that does not decode is
                // invalid without a kind or name.
                group: (!group.is_empty()).then(|| group.to_owned()),
                kind: (!kind.is_empty()).then(|| kind.to_owned()),
                name: (!name.is_empty()).then(|| name.to_owned()),
                causes: Some(
                    errors
                        .iter()
                        .map(|e| StatusCause {
                            reason: Some(e.kind.reason().to_owned()),
                            message: Some(e.message()),
                            field: Some(e.field.to_string()),
                        })
                        .collect(),
                ),
                ..Default::default()
            })),
        }
    }

    /// A patch that cannot be applied, with the status code upstream uses for its kind of failure.
    pub(crate) fn from_patch(err: k3rs_patch::PatchError) -> ApiError {
        let code = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let reason = match code {
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
            _ => "BadRequest",
        };
        ApiError::new(code, reason, err.to_string())
    }

    /// 405 MethodNotAllowed.
    pub(crate) fn method_not_allowed(method: &http::Method) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 410 Gone / Expired for a compacted resourceVersion.
    pub(crate) fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GONE, "Expired", message)
    }

    /// 504 for a resourceVersion newer than the store's (upstream's "Too large resource version").
    pub(crate) fn too_large_resource_version(requested: i64, current: i64) -> ApiError {
        ApiError {
            details: Some(Box::new(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ResourceVersionTooLarge".into()),
                    message: Some("Too large resource version".into()),
                    field: None,
                }]),
                retry_after_seconds: Some(1),
                ..Default::default()
            })),
            ..ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
            )
        }
    }

    /// 413 RequestEntityTooLarge.
    pub(crate) fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub(crate) fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"),
        )
    }

    /// 406 NotAcceptable.
    pub(crate) fn not_acceptable(accept: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io (and their v=v1beta1 forms) (got {accept:?})"),
        )
    }

    /// 406 NotAcceptable where upstream answers with no body (the OpenAPI documents), in the
    /// words client-go then uses.
    pub(crate) fn not_acceptable_generic() -> ApiError {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "the server was unable to respond with a content type that the client supports",
        )
    }

    /// 406 NotAcceptable for one `PartialObjectMetadata` of a list (of `list_kind`), in
    /// upstream's words.
    pub(crate) fn partial_of_list(list_kind: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!("you requested PartialObjectMetadata, but the requested object is a list ({list_kind})"),
        )
    }

    /// 406 NotAcceptable for a `PartialObjectMetadataList` of one object (of `kind`), in
    /// upstream's words.
    pub(crate) fn partial_list_of_object(kind: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!("you requested PartialObjectMetadataList, but the requested object is not a list ({kind})"),
        )
    }

    /// 403 Forbidden (e.g. creating in a terminating namespace).
    pub(crate) fn forbidden(subject: Subject<'_>, why: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(subject.details())),
            ..ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("{} is forbidden: {why}", subject.qualified()),
            )
        }
    }

    /// 429 TooManyRequests (upstream's `NewTooManyRequests`): `retry_after` seconds, when not
    /// 0, go into `details.retryAfterSeconds` and the `Retry-After` header.
    pub(crate) fn too_many_requests(
        message: impl Into<String>,
        retry_after: i32,
        causes: Vec<StatusCause>,
    ) -> ApiError {
        ApiError {
            details: Some(Box::new(StatusDetails {
                retry_after_seconds: (retry_after != 0).then_some(retry_after),
                causes: (!causes.is_empty()).then_some(causes),
                ..Default::default()
            })),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
        }
    }

    /// A failure upstream reports without a reason (`StatusReasonUnknown`, left out of the
    /// `Status`): a handler's own `Status` of failure, or an error that is not an API status.
    pub(crate) fn unknown(code: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(code, "", message)
    }

    /// 500 InternalError: a failure that is not the client's doing (the store failed).
    pub(crate) fn internal(what: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %what, "internal error serving a request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {what}"),
        )
    }

    /// The response carrying this error.
    pub(crate) fn into_response(self) -> http::Response<ResponseBody> {
        // As upstream's `ErrorNegotiated`: a suggested delay is also a `Retry-After` header,
        // which client-go honours (it waits and resends a 429 or 5xx that carries one).
        let retry_after = self
            .details
            .as_ref()
            .and_then(|d| d.retry_after_seconds)
            .filter(|seconds| *seconds > 0);
        let mut response = status_response(
            self.code,
            self.reason,
            &self.message,
            self.details.map(|d| *d),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}
