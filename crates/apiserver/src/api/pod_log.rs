//! `GET …/pods/<name>/log`, as upstream's `LogREST` and `LogLocation`: the options validated,
//! the container chosen (or the client told to choose), the pod's node and its kubelet port
//! looked up, and the kubelet's `/containerLogs` answer streamed back as it comes; the
//! kubelet's refusals are passed on with their status, as upstream's response checker does.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt as _;
use k3rs_api::{FieldError, FieldErrorKind, FieldPath};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Value};

use super::error::ApiError;
use super::objects::{decode, object_key};
use super::Call;
use crate::response::{BoxError, ResponseBody};

/// The kubelet port when the node does not say (upstream's `--kubelet-port` default).
const DEFAULT_KUBELET_PORT: u16 = 10250;
/// How much of a kubelet's refusal is read (upstream's `maxReadLength`).
const MAX_ERROR_BODY: usize = 50 * 1024;

/// Whether the request is for a pod's log.
pub(crate) fn serves(call: &Call<'_>) -> bool {
    call.resource.group.is_empty()
        && call.resource.kind == "Pod"
        && call.path.subresource.as_deref() == Some("log")
}

/// `PodLogOptions` from the query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogOptions {
    pub(crate) container: Option<String>,
    pub(crate) follow: bool,
    pub(crate) previous: bool,
    pub(crate) timestamps: bool,
    pub(crate) since_seconds: Option<i64>,
    /// RFC 3339, as given.
    pub(crate) since_time: Option<String>,
    pub(crate) tail_lines: Option<i64>,
    pub(crate) limit_bytes: Option<i64>,
    pub(crate) insecure_skip_tls_verify_backend: bool,
}

/// A query bool as the API machinery converts one: anything but `false` or `0`.
fn flag(value: Option<&String>) -> bool {
    value.is_some_and(|v| !(v == "0" || v.eq_ignore_ascii_case("false")))
}

fn integer(value: Option<&String>) -> Result<Option<i64>, ApiError> {
    match value.map(String::as_str) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("strconv.ParseInt: parsing {raw:?}: invalid syntax"))
        }),
    }
}

impl LogOptions {
    /// Decodes the query (a value of the wrong type is a 400).
    pub(crate) fn decode(
        params: &std::collections::HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        let since_time = match params.get("sinceTime").map(String::as_str) {
            None | Some("") => None,
            Some(raw) => {
                raw.parse::<jiff::Timestamp>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "parsing time {raw:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {raw:?} as \"2006\""
                    ))
                })?;
                Some(raw.to_owned())
            }
        };
        Ok(LogOptions {
            container: params.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: flag(params.get("follow")),
            previous: flag(params.get("previous")),
            timestamps: flag(params.get("timestamps")),
            since_seconds: integer(params.get("sinceSeconds"))?,
            since_time,
            tail_lines: integer(params.get("tailLines"))?,
            limit_bytes: integer(params.get("limitBytes"))?,
            insecure_skip_tls_verify_backend: flag(params.get("insecureSkipTLSVerifyBackend")),
        })
    }

    /// Upstream's `ValidatePodLogOptions`.
    pub(crate) fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(tail) = self.tail_lines.filter(|t| *t < 0) {
            errors.push(FieldError::invalid(
                FieldPath::new("tailLines"),
                &json!(tail),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(limit) = self.limit_bytes.filter(|l| *l < 1) {
            errors.push(FieldError::invalid(
                FieldPath::new("limitBytes"),
                &json!(limit),
                "must be greater than 0",
            ));
        }
        match (self.since_seconds, &self.since_time) {
            (Some(_), Some(_)) => errors.push(FieldError::new(
                FieldErrorKind::Forbidden,
                FieldPath::new(""),
                None,
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(seconds), None) if seconds < 1 => errors.push(FieldError::invalid(
                FieldPath::new("sinceSeconds"),
                &json!(seconds),
                "must be greater than 0",
            )),
            _ => {}
        }
        errors
    }

    /// The kubelet's path and query for `container` of the pod.
    pub(crate) fn kubelet_path(&self, namespace: &str, pod: &str, container: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            query.append_pair("follow", "true");
        }
        if self.previous {
            query.append_pair("previous", "true");
        }
        if self.timestamps {
            query.append_pair("timestamps", "true");
        }
        if let Some(seconds) = self.since_seconds {
            query.append_pair("sinceSeconds", &seconds.to_string());
        }
        if let Some(time) = &self.since_time {
            query.append_pair("sinceTime", time);
        }
        if let Some(tail) = self.tail_lines {
            query.append_pair("tailLines", &tail.to_string());
        }
        if let Some(limit) = self.limit_bytes {
            query.append_pair("limitBytes", &limit.to_string());
        }
        let query = query.finish();
        let segment = |s: &str| {
            form_urlencoded::byte_serialize(s.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        };
        let mut path = format!(
            "/containerLogs/{}/{}/{}",
            segment(namespace),
            segment(pod),
            segment(container)
        );
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        path
    }
}

fn container_names<'a>(pod: &'a Value, list: &str) -> impl Iterator<Item = &'a str> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
}

/// The container to read (upstream's `validateContainer`): the one asked for if the pod has
/// it, else the pod's only container.
pub(crate) fn pick_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let all = || {
        container_names(pod, "initContainers")
            .chain(container_names(pod, "containers"))
            .chain(container_names(pod, "ephemeralContainers"))
    };
    match requested {
        Some(name) => {
            if all().any(|c| c == name) {
                Ok(name.to_owned())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {name} is not valid for pod {pod_name}"
                )))
            }
        }
        None => {
            let regular: Vec<&str> = container_names(pod, "containers").collect();
            match regular.as_slice() {
                [only] => Ok((*only).to_owned()),
                [] => Err(ApiError::bad_request(format!(
                    "pod {pod_name} does not have a container"
                ))),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    all().collect::<Vec<_>>().join(" ")
                ))),
            }
        }
    }
}

/// Where a node's kubelet listens: its InternalIP, else ExternalIP, else any address that is an
/// IP (k3s's `--kubelet-preferred-address-types`), and `daemonEndpoints.kubeletEndpoint.Port`.
pub(crate) fn kubelet_address(node: &Value) -> Option<SocketAddr> {
    let addresses: Vec<(&str, IpAddr)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let kind = a.get("type").and_then(Value::as_str).unwrap_or_default();
            let ip = a.get("address").and_then(Value::as_str)?.parse().ok()?;
            Some((kind, ip))
        })
        .collect();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|kind| addresses.iter().find(|(k, _)| k == kind))
        .or_else(|| addresses.first())
        .map(|(_, ip)| *ip)?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some(SocketAddr::new(ip, port))
}

/// A kubelet's refusal as upstream's `GenericHttpResponseChecker` turns it into a `Status`.
pub(crate) fn from_kubelet(status: StatusCode, body: &str, pod_name: &str) -> ApiError {
    match status {
        StatusCode::BAD_REQUEST => ApiError::bad_request(body),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError {
            code: status,
            reason: "InternalError",
            message: format!("Internal error occurred: {body}"),
            details: Some(Box::new(StatusDetails {
                causes: Some(vec![StatusCause {
                    message: Some(body.to_owned()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            })),
        },
        _ => {
            let (reason, words) = match status {
                StatusCode::NOT_FOUND => (
                    "NotFound",
                    "the server could not find the requested resource",
                ),
                StatusCode::UNAUTHORIZED => (
                    "Unauthorized",
                    "the server has asked for the client to provide credentials",
                ),
                StatusCode::FORBIDDEN => (
                    "Forbidden",
                    "the server does not allow access to the requested resource",
                ),
                StatusCode::UNPROCESSABLE_ENTITY => (
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                ),
                StatusCode::SERVICE_UNAVAILABLE => (
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ),
                _ => (
                    "",
                    "an error on the server has prevented the request from succeeding",
                ),
            };
            ApiError {
                code: status,
                reason,
                message: format!("{words} ( pods/log {pod_name})"),
                details: Some(Box::new(StatusDetails {
                    kind: Some("pods/log".to_owned()),
                    name: Some(pod_name.to_owned()),
                    causes: Some(vec![StatusCause {
                        reason: Some("UnexpectedServerResponse".to_owned()),
                        message: Some(body.to_owned()),
                        field: None,
                    }]),
                    ..StatusDetails::default()
                })),
            }
        }
    }
}

/// Reads an object of a built-in core resource (`pods`, `nodes`) from the store.
async fn read_core(
    call: &Call<'_>,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let resource = call
        .state
        .registry
        .find("", "v1", plural)
        .ok_or_else(ApiError::no_route)?;
    let kv = call
        .state
        .store
        .get(&object_key(&resource, namespace, name))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found(super::error::Subject {
                group: "",
                resource: plural,
                name,
            })
        })?;
    decode(&resource, &kv)
}

/// Answers a log request.
pub(crate) async fn serve(
    call: &Call<'_>,
    method: &Method,
) -> Result<Response<ResponseBody>, ApiError> {
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed(method));
    }
    let (Some(namespace), Some(name)) = (call.namespace(), call.path.name.as_deref()) else {
        return Err(ApiError::no_route());
    };
    let options = LogOptions::decode(&call.query.params)?;
    let errors = options.validate();
    if !errors.is_empty() {
        return Err(ApiError::invalid("PodLogOptions", "", name, &errors));
    }
    let pod = read_core(call, "pods", Some(namespace), name).await?;
    let container = pick_container(&pod, name, options.container.as_deref())?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node_name.is_empty() {
        // Upstream's LogLocation gives no location for a pod not yet scheduled: an empty log.
        return Ok(text_response(StatusCode::OK, empty()));
    }
    let node = read_core(call, "nodes", None, node_name).await?;
    let addr = kubelet_address(&node).ok_or_else(|| {
        ApiError::unknown(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("node {node_name:?} has no address to reach its kubelet at"),
        )
    })?;
    let Some(client) = call.state.kubelet_client.as_ref() else {
        return Err(ApiError::unknown(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the API server has no client certificate for kubelets",
        ));
    };
    let path = options.kubelet_path(namespace, name, &container);
    let answer = client
        .get(addr, &path, options.insecure_skip_tls_verify_backend)
        .await
        .map_err(|err| {
            ApiError::unknown(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Get \"https://{addr}{path}\": {err}"),
            )
        })?;
    let status = answer.status();
    if !(StatusCode::OK..=StatusCode::PARTIAL_CONTENT).contains(&status) {
        let mut body = Vec::new();
        let mut incoming = answer.into_body();
        while let Some(frame) = incoming.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                body.extend_from_slice(&data);
            }
            if body.len() >= MAX_ERROR_BODY {
                body.truncate(MAX_ERROR_BODY);
                break;
            }
        }
        let text = String::from_utf8_lossy(&body);
        return Err(from_kubelet(status, text.trim_end_matches('\n'), name));
    }
    let body = answer
        .into_body()
        .map_err(|err| Box::new(err) as BoxError)
        .boxed();
    Ok(text_response(StatusCode::OK, body))
}

fn text_response(status: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

/// An empty body.
fn empty() -> ResponseBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn params(query: &[(&str, &str)]) -> HashMap<String, String> {
        query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_decode_validate_and_forward() {
        let options = LogOptions::decode(&params(&[
            ("container", "app"),
            ("follow", "true"),
            ("timestamps", "1"),
            ("tailLines", "2"),
            ("sinceTime", "2024-05-01T10:00:00Z"),
            ("limitBytes", "100"),
        ]))
        .unwrap();
        assert!(options.validate().is_empty());
        assert_eq!(
            options.kubelet_path("default", "web", "app"),
            "/containerLogs/default/web/app?follow=true&timestamps=true&sinceTime=2024-05-01T10%3A00%3A00Z&tailLines=2&limitBytes=100"
        );
        assert!(LogOptions::decode(&params(&[("tailLines", "x")])).is_err());
        let bad = LogOptions::decode(&params(&[
            ("tailLines", "-1"),
            ("limitBytes", "0"),
            ("sinceSeconds", "5"),
            ("sinceTime", "2024-05-01T10:00:00Z"),
        ]))
        .unwrap();
        let texts: Vec<String> = bad.validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "tailLines: Invalid value: -1: must be greater than or equal to 0",
                "limitBytes: Invalid value: 0: must be greater than 0",
                ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            ]
        );
    }

    #[test]
    fn container_choice_as_upstream() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        }});
        let message = |r: Result<String, ApiError>| r.unwrap_err().message;
        assert_eq!(
            message(pick_container(&pod, "web", None)),
            "a container name must be specified for pod web, choose one of: [init a b]"
        );
        assert_eq!(
            message(pick_container(&pod, "web", Some("c"))),
            "container c is not valid for pod web"
        );
        assert_eq!(pick_container(&pod, "web", Some("init")).unwrap(), "init");
        let single = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(pick_container(&single, "web", None).unwrap(), "only");
    }

    #[test]
    fn kubelet_address_prefers_internal_ip() {
        let node = json!({"status": {
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "ExternalIP", "address": "203.0.113.1"},
                {"type": "InternalIP", "address": "10.0.0.5"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}},
        }});
        assert_eq!(
            kubelet_address(&node),
            Some("10.0.0.5:10251".parse().unwrap())
        );
        let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "10.0.0.7"}]}});
        assert_eq!(
            kubelet_address(&bare),
            Some("10.0.0.7:10250".parse().unwrap())
        );
        assert_eq!(kubelet_address(&json!({})), None);
    }

    #[test]
    fn kubelet_refusals_become_statuses() {
        let err = from_kubelet(
            StatusCode::BAD_REQUEST,
            r#"previous terminated container "app" in pod "web" not found"#,
            "web",
        );
        assert_eq!(
            (err.code, err.reason),
            (StatusCode::BAD_REQUEST, "BadRequest")
        );
        assert_eq!(
            err.message,
            r#"previous terminated container "app" in pod "web" not found"#
        );
        let err = from_kubelet(
            StatusCode::FORBIDDEN,
            "Forbidden (user=x, verb=get, resource=nodes, subresource=proxy)",
            "web",
        );
        assert_eq!(err.reason, "Forbidden");
        assert_eq!(
            err.message,
            "the server does not allow access to the requested resource ( pods/log web)"
        );
    }
}
