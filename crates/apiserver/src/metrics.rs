//! `/metrics`: request counts and latencies in the Prometheus text format, with upstream's
//! metric names (`apiserver_request_total`, `apiserver_request_duration_seconds`).

use std::sync::Mutex;
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::target::{self, Target};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
}

fn latency_histogram() -> Histogram {
    // Upstream's buckets, from 5 ms to 60 s.
    Histogram::new([
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ])
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let mut registry = Registry::default();
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, group, version, resource, subresource and HTTP response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource and subresource",
            latency.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
        }
    }
}

impl Metrics {
    /// Records one answered request.
    pub(crate) fn observe(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        code: u16,
        took: Duration,
    ) {
        let (verb, group, version, resource, subresource) = describe(method, path, query);
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.clone(),
                group: group.clone(),
                version: version.clone(),
                resource: resource.clone(),
                subresource: subresource.clone(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                verb,
                group,
                version,
                resource,
                subresource,
            })
            .observe(took.as_secs_f64());
    }

    /// The metrics in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!(error = %err, "encoding metrics failed");
        }
        out
    }
}

/// Upstream's verb and resource labels of a request.
fn describe(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> (String, String, String, String, String) {
    let watch = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "watch=true" || p == "watch=1" || p == "watch")
    });
    match target::parse(path) {
        Some(Target::Resource(r)) => {
            let verb = match (method, r.name.is_some()) {
                (&Method::GET, _) if watch => "WATCH",
                (&Method::GET, false) => "LIST",
                (&Method::GET, true) => "GET",
                (&Method::DELETE, false) => "DELETECOLLECTION",
                (&Method::PATCH, _) => "PATCH",
                (m, _) => m.as_str(),
            };
            (
                verb.to_owned(),
                r.group,
                r.version,
                r.resource,
                r.subresource.unwrap_or_default(),
            )
        }
        _ => (
            method.as_str().to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_in_prometheus_text() {
        let metrics = Metrics::default();
        metrics.observe(
            &Method::GET,
            "/api/v1/namespaces/default/pods",
            Some("limit=500"),
            200,
            Duration::from_millis(3),
        );
        metrics.observe(
            &Method::GET,
            "/apis/apps/v1/deployments",
            Some("watch=true"),
            200,
            Duration::from_millis(1),
        );
        let text = metrics.render();
        assert!(text.contains("apiserver_request_total{verb=\"LIST\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",code=\"200\"} 1"), "{text}");
        assert!(text.contains("verb=\"WATCH\",group=\"apps\""), "{text}");
        assert!(
            text.contains("apiserver_request_duration_seconds_bucket{"),
            "{text}"
        );
    }
}
