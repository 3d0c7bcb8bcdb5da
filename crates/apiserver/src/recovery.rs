//! Panic containment for requests: a panicking handler costs one 500 `Status`, never the
//! connection or the server.
//!
//! kube-apiserver's `WithPanicRecovery` filter answers a panic with a 500 whose text is "This
//! request caused apiserver to panic. Look in the logs for details." and logs the method and
//! URI. k3rs sends the same words as a `Status` (`reason: InternalError`, as every k3rs error is
//! a `Status` object, so kubectl prints `Error from server (InternalError)`), and logs the verb,
//! path and user with the panic's message. A response body that panics while it streams (a
//! list or a watch) ends with an error instead of unwinding through the connection task.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::FutureExt as _;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use crate::response::{status_response, BoxError, ResponseBody};

/// Upstream's words for a request that panicked.
pub(crate) const PANIC_MESSAGE: &str =
    "This request caused apiserver to panic. Look in the logs for details.";

/// The request a panic is logged with.
#[derive(Clone, Debug)]
pub(crate) struct RequestLabel<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    /// The authenticated user, set once authentication has named one.
    pub(crate) user: &'a OnceLock<String>,
}

/// Runs `handler`; a panic in it becomes upstream's 500 and a log line naming the request. The
/// response's body is wrapped too, so a panic while it streams ends the body with an error.
pub(crate) async fn contain(
    handler: impl std::future::Future<Output = Response<ResponseBody>>,
    label: RequestLabel<'_>,
) -> Response<ResponseBody> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(response) => response.map(|body| ContainedBody { inner: body }.boxed()),
        Err(payload) => {
            let RequestLabel { method, path, user } = label;
            tracing::error!(
                verb = %method,
                %path,
                user = user.get().map_or("<unauthenticated>", String::as_str),
                panic = panic_message(payload.as_ref()),
                "apiserver panicked serving a request"
            );
            panicked()
        }
    }
}

/// The 500 `Status` a panicking request gets.
pub(crate) fn panicked() -> Response<ResponseBody> {
    status_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        PANIC_MESSAGE,
        None,
    )
}

/// The text a panic was raised with (`panic!("…")` carries a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "<non-string panic payload>"
    }
}

/// A response body whose panics end the body with an error.
struct ContainedBody {
    inner: ResponseBody,
}

impl Body for ContainedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let message = panic_message(payload.as_ref()).to_owned();
                tracing::error!(panic = %message, "apiserver panicked streaming a response body");
                // The body cannot go on after its producer panicked: end it, so the client sees
                // a cut response rather than one that never ends.
                self.inner = http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed();
                Poll::Ready(Some(Err(BodyPanicked(message).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a body that panicked ends with.
#[derive(Debug, thiserror::Error)]
#[error("response body panicked: {0}")]
struct BodyPanicked(String);

/// Debug builds only: `K3RS_TEST_PANIC_PATH=<path>` makes every request for exactly that path
/// panic in its handler, after authentication, so that black-box tests can see a panic
/// contained. Release builds have no such hook.
#[cfg(debug_assertions)]
pub(crate) fn test_hook(path: &str) {
    static PANIC_PATH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let panic_path = PANIC_PATH.get_or_init(|| std::env::var("K3RS_TEST_PANIC_PATH").ok());
    if panic_path.as_deref() == Some(path) {
        panic!("K3RS_TEST_PANIC_PATH: a test asked {path} to panic");
    }
}

#[cfg(not(debug_assertions))]
pub(crate) fn test_hook(_path: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_text(response: Response<ResponseBody>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    static ALICE: OnceLock<String> = OnceLock::new();

    fn label() -> RequestLabel<'static> {
        RequestLabel {
            method: &Method::GET,
            path: "/api/v1/pods",
            user: &ALICE,
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_status() {
        let response = contain(
            async {
                if label().path.starts_with('/') {
                    panic!("handler bug");
                }
                crate::response::text(StatusCode::OK, "unreachable")
            },
            label(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value =
            serde_json::from_str(&body_text(response).await).expect("json");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["reason"], "InternalError");
        assert_eq!(body["code"], 500);
        assert_eq!(body["message"], PANIC_MESSAGE);
    }

    #[tokio::test]
    async fn a_handler_that_does_not_panic_is_untouched() {
        let response = contain(
            async { crate::response::text(StatusCode::CREATED, "made") },
            label(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(body_text(response).await, "made");
    }

    #[tokio::test]
    async fn a_body_that_panics_ends_with_an_error() {
        use futures::StreamExt as _;
        let chunks = futures::stream::iter(0..3).map(|i| {
            if i == 1 {
                panic!("stream bug");
            }
            Ok::<_, BoxError>(Frame::data(Bytes::from("chunk")))
        });
        let body = BodyExt::boxed(http_body_util::StreamBody::new(chunks));
        let response = contain(async move { Response::new(body) }, label()).await;
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().ok(), Some(Bytes::from("chunk")));
        let second = body.frame().await.expect("a frame");
        let err = second.expect_err("the panic ends the body with an error");
        assert!(err.to_string().contains("stream bug"), "{err}");
        assert!(body.frame().await.is_none(), "nothing after the error");
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string() {
        let from_str = std::panic::catch_unwind(|| panic!("plain")).expect_err("panics");
        assert_eq!(panic_message(from_str.as_ref()), "plain");
        let value = 7;
        let from_string =
            std::panic::catch_unwind(move || panic!("formatted {value}")).expect_err("panics");
        assert_eq!(panic_message(from_string.as_ref()), "formatted 7");
    }
}
