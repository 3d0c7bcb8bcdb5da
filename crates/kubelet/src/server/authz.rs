//! Who may use the kubelet's API: each request is checked with a SubjectAccessReview on the
//! node object, as upstream's kubelet does (`pkg/kubelet/server/auth.go`), verb from the HTTP
//! method and subresource from the path; answers are cached (allowed 5 min, denied 30 s).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::Method;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;

use super::authn::User;

/// How long an allowed answer is kept (upstream's `--authorization-webhook-cache-authorized-ttl`).
const ALLOWED_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a denied answer is kept (`--authorization-webhook-cache-unauthorized-ttl`).
const DENIED_TTL: Duration = Duration::from_secs(30);
/// Entries beyond which expired answers are dropped.
const PRUNE_ABOVE: usize = 1024;

/// What a request asks of the node object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeAttributes {
    pub verb: &'static str,
    /// The subresource to check, in order: the request is allowed when one of them is.
    pub subresources: Vec<&'static str>,
}

/// Whether `path` is `prefix` or below it.
fn is_subpath(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The attributes of a request (upstream's `GetRequestAttributes`): the verb from the method,
/// the subresource from the path — `stats`, `metrics`, `log`, `spec`, `checkpoint`, and, as
/// upstream's fine-grained kubelet authorization, `healthz`, `pods` and `configz` with `proxy`
/// as the fallback; `proxy` for everything else (exec, attach, port-forward, container logs).
pub fn attributes(method: &Method, path: &str) -> NodeAttributes {
    let verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    let subresources = [
        ("/stats", "stats"),
        ("/metrics", "metrics"),
        ("/logs", "log"),
        ("/spec", "spec"),
        ("/checkpoint", "checkpoint"),
    ]
    .iter()
    .find(|(prefix, _)| is_subpath(path, prefix))
    .map(|(_, sub)| vec![*sub])
    .or_else(|| {
        [
            ("/healthz", "healthz"),
            ("/pods", "pods"),
            ("/configz", "configz"),
        ]
        .iter()
        .find(|(prefix, _)| is_subpath(path, prefix))
        .map(|(_, sub)| vec![*sub, "proxy"])
    })
    .unwrap_or_else(|| vec!["proxy"]);
    NodeAttributes { verb, subresources }
}

/// Upstream's 403 text.
pub fn forbidden_message(user: &str, verb: &str, subresource: &str) -> String {
    format!("Forbidden (user={user}, verb={verb}, resource=nodes, subresource={subresource})")
}

/// A SubjectAccessReview that could not be made.
#[derive(Debug, thiserror::Error)]
#[error("subjectaccessreview for {user}: {source}")]
pub struct AuthzError {
    pub user: String,
    #[source]
    pub source: kube::Error,
}

type Key = (User, &'static str, &'static str);

/// Asks the API server, through the kubelet's client, whether a user may do something to the
/// node, and remembers the answers for a while.
pub struct Authorizer {
    client: kube::Client,
    node: String,
    cache: Mutex<HashMap<Key, (bool, Instant)>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    pub fn new(client: kube::Client, node: String) -> Self {
        Authorizer {
            client,
            node,
            cache: Mutex::default(),
        }
    }

    /// `Ok(None)` when allowed, `Ok(Some(message))` with the 403 text when not.
    pub async fn authorize(
        &self,
        user: &User,
        attributes: &NodeAttributes,
    ) -> Result<Option<String>, AuthzError> {
        let mut last = "proxy";
        for subresource in &attributes.subresources {
            last = subresource;
            if self.allowed(user, attributes.verb, subresource).await? {
                return Ok(None);
            }
        }
        Ok(Some(forbidden_message(&user.name, attributes.verb, last)))
    }

    async fn allowed(
        &self,
        user: &User,
        verb: &'static str,
        subresource: &'static str,
    ) -> Result<bool, AuthzError> {
        let key = (user.clone(), verb, subresource);
        if let Some((allowed, until)) = self.lock().get(&key) {
            if Instant::now() < *until {
                return Ok(*allowed);
            }
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty())
                    .then(|| user.extra.clone().into_iter().collect::<BTreeMap<_, _>>()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_owned()),
                    group: Some(String::new()),
                    version: Some("v1".to_owned()),
                    resource: Some("nodes".to_owned()),
                    subresource: Some(subresource.to_owned()),
                    name: Some(self.node.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = kube::Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| AuthzError {
                user: user.name.clone(),
                source,
            })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
        let mut cache = self.lock();
        if cache.len() > PRUNE_ABOVE {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(key, (allowed, Instant::now() + ttl));
        Ok(allowed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (bool, Instant)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_subresources_as_upstream() {
        let cases = [
            (Method::GET, "/stats/summary", "get", vec!["stats"]),
            (Method::GET, "/stats", "get", vec!["stats"]),
            (Method::GET, "/statsfoo", "get", vec!["proxy"]),
            (Method::GET, "/metrics/resource", "get", vec!["metrics"]),
            (Method::GET, "/logs/", "get", vec!["log"]),
            (Method::GET, "/spec/", "get", vec!["spec"]),
            (
                Method::POST,
                "/checkpoint/ns/pod/c",
                "create",
                vec!["checkpoint"],
            ),
            (Method::GET, "/healthz", "get", vec!["healthz", "proxy"]),
            (Method::HEAD, "/pods", "get", vec!["pods", "proxy"]),
            (Method::GET, "/configz", "get", vec!["configz", "proxy"]),
            (
                Method::GET,
                "/containerLogs/default/web/app",
                "get",
                vec!["proxy"],
            ),
            (
                Method::POST,
                "/exec/default/web/app",
                "create",
                vec!["proxy"],
            ),
            (Method::PUT, "/x", "update", vec!["proxy"]),
            (Method::PATCH, "/x", "patch", vec!["proxy"]),
            (Method::DELETE, "/x", "delete", vec!["proxy"]),
            (Method::OPTIONS, "/x", "", vec!["proxy"]),
        ];
        for (method, path, verb, subresources) in cases {
            assert_eq!(
                attributes(&method, path),
                NodeAttributes { verb, subresources },
                "{method} {path}"
            );
        }
    }

    #[test]
    fn forbidden_text() {
        assert_eq!(
            forbidden_message("system:serviceaccount:default:x", "get", "proxy"),
            "Forbidden (user=system:serviceaccount:default:x, verb=get, resource=nodes, subresource=proxy)"
        );
    }
}
