//! Response bodies and the Kubernetes `Status` responses every error is sent as.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use k3rs_api::wire::GoType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// The error type of streaming response bodies (watches, logs) once they exist.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response: boxed so that fixed bodies and, later, streams share one type.
pub type ResponseBody = BoxBody<Bytes, BoxError>;

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A `text/plain` response.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    with_type(status, "text/plain; charset=utf-8", full(body))
}

/// An `application/json` response of `value`, written as kube-apiserver writes it (see
/// [`k3rs_api::wire`]): typed by its `apiVersion` and `kind`.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    json_with_type(status, value, "application/json")
}

/// An `application/json` response of `value` as Go writes a value of the Go type `definition`
/// (for documents without `kind`, such as `/version`'s).
pub(crate) fn json_of_type<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
    definition: &str,
) -> Response<ResponseBody> {
    match serde_json::to_value(value) {
        Ok(value) => {
            let ty = GoType::named(definition);
            with_type(status, "application/json", full(wire_bytes(&value, ty)))
        }
        Err(err) => serialize_failed(&err),
    }
}

/// A response of JSON written in pieces (a list: its head, items and tail, so the items are never
/// copied into one buffer), with its JSON media type.
pub(crate) fn json_chunks(
    status: StatusCode,
    chunks: Vec<Bytes>,
    content_type: &'static str,
) -> Response<ResponseBody> {
    let frames = futures::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| Ok::<_, BoxError>(hyper::body::Frame::data(chunk))),
    );
    with_type(
        status,
        content_type,
        http_body_util::StreamBody::new(frames).boxed(),
    )
}

/// A JSON response of `value` with a specific JSON media type (aggregated discovery's).
pub(crate) fn json_with_type<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
    content_type: &str,
) -> Response<ResponseBody> {
    match serde_json::to_value(value) {
        Ok(value) => {
            let mut response = with_type(
                status,
                "application/json",
                full(wire_bytes(&value, GoType::of_object(&value))),
            );
            if let Ok(value) = HeaderValue::from_str(content_type) {
                response.headers_mut().insert(CONTENT_TYPE, value);
            }
            response
        }
        Err(err) => serialize_failed(&err),
    }
}

/// `value` as a JSON body: as kube-apiserver writes a value of `ty`, with the newline Go's
/// `json.Encoder` ends every value with.
fn wire_bytes(value: &serde_json::Value, ty: Option<GoType>) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    k3rs_api::wire::write(&mut body, value, ty);
    body.push(b'\n');
    body
}

fn serialize_failed(err: &serde_json::Error) -> Response<ResponseBody> {
    tracing::error!(error = %err, "serializing a response failed");
    status_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "failed to serialize the response",
        None,
    )
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A `Status` object with `status: Failure`, as kube-apiserver sends for every error.
pub(crate) fn failure(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<StatusDetails>,
) -> Status {
    Status {
        code: Some(i32::from(code.as_u16())),
        details,
        message: Some(message.to_string()),
        metadata: Default::default(),
        reason: Some(reason.to_string()),
        status: Some("Failure".to_string()),
    }
}

/// The `Status` a create answers with when it stores nothing of its own (a binding, an
/// eviction): upstream's `Success` with the handler's 201 filled into `code`.
pub(crate) fn created_status() -> Response<ResponseBody> {
    json(
        StatusCode::CREATED,
        &serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// A `Status` failure response.
pub(crate) fn status_response(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<StatusDetails>,
) -> Response<ResponseBody> {
    let status = failure(code, reason, message, details);
    match serde_json::to_value(&status) {
        Ok(value) => with_type(
            code,
            "application/json",
            full(wire_bytes(&value, GoType::of_object(&value))),
        ),
        // A Status of plain strings always serializes; this is only here to avoid a panic path.
        Err(_) => text(code, message.to_string()),
    }
}

/// The answer for a path nothing serves, in kube-apiserver's words.
pub(crate) fn not_found() -> Response<ResponseBody> {
    let details = StatusDetails {
        causes: Some(vec![StatusCause {
            reason: Some("UnexpectedServerResponse".into()),
            message: Some("404 page not found".into()),
            field: None,
        }]),
        ..Default::default()
    };
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        Some(details),
    )
}

/// The answer for a verb the path does not support.
pub(crate) fn method_not_allowed(method: &http::Method) -> Response<ResponseBody> {
    status_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("the server does not allow this method on the requested resource ({method})"),
        None,
    )
}
