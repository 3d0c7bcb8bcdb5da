//! Response bodies of the kubelet's server: fixed text or JSON, or a stream of log pieces.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use tokio::sync::mpsc;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response.
pub(crate) type Body = BoxBody<Bytes, BoxError>;

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A `text/plain` answer (Go's `http.Error` adds the newline).
pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut message = message.into();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    with_type(status, "text/plain; charset=utf-8", full(message))
}

/// An `application/json` answer.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", full(bytes)),
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the answer: {err}"),
        ),
    }
}

/// A streamed `text/plain` answer: `first`, then whatever arrives on `rest` until it closes.
pub(crate) fn stream(first: Option<Bytes>, rest: mpsc::Receiver<Bytes>) -> Response<Body> {
    let chunks = futures::stream::unfold((first, rest), |(first, mut rest)| async move {
        let chunk = match first {
            Some(chunk) => chunk,
            None => rest.recv().await?,
        };
        Some((
            Ok::<_, BoxError>(hyper::body::Frame::data(chunk)),
            (None, rest),
        ))
    });
    with_type(
        StatusCode::OK,
        "text/plain",
        StreamBody::new(chunks).boxed(),
    )
}
