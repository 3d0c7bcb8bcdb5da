//! What a request asks to do, in authorization terms: upstream's `RequestInfo` and
//! `authorizer.Attributes` (verb, API group, resource, subresource, namespace, name, or a
//! non-resource path).

use http::Method;

use crate::api::query::Query;
use crate::api::target::{self, Target};

/// The authorization attributes of one request (or of a review's question).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`, ... for resources; the lower-cased HTTP method for non-resource paths.
    pub(crate) verb: String,
    /// Whether this addresses a resource (as opposed to a path such as `/healthz` or `/api`).
    pub(crate) resource_request: bool,
    /// The request path (non-resource requests).
    pub(crate) path: String,
    pub(crate) namespace: String,
    pub(crate) api_group: String,
    pub(crate) api_version: String,
    pub(crate) resource: String,
    pub(crate) subresource: String,
    pub(crate) name: String,
}

impl Attributes {
    /// Attributes of a resource request.
    pub(crate) fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: api_group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Attributes::default()
        }
    }

    /// Attributes of a non-resource request.
    pub(crate) fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }

    /// The attributes of an HTTP request, as kube-apiserver's `RequestInfoFactory` derives them.
    pub(crate) fn from_request(method: &Method, path: &str, query: Option<&str>) -> Attributes {
        let resource_path = match target::parse(path) {
            Some(Target::Resource(resource_path)) => resource_path,
            // Discovery documents and everything outside /api and /apis are paths.
            _ => return Attributes::non_resource(&method.as_str().to_ascii_lowercase(), path),
        };
        let query = Query::parse(query);
        let mut name = resource_path.name.clone().unwrap_or_default();
        let verb = match *method {
            Method::GET | Method::HEAD => {
                let watch = query.flag("watch");
                match (name.is_empty(), watch) {
                    (_, true) => "watch",
                    (true, false) => "list",
                    (false, false) => "get",
                }
            }
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        // A list or watch restricted to one name by `fieldSelector=metadata.name=<n>` is
        // authorized as a request for that name, as upstream does.
        if matches!(verb, "list" | "watch") && name.is_empty() {
            if let Some(selector) = query.get("fieldSelector") {
                if let Some(only) = single_name(selector) {
                    name = only.to_owned();
                }
            }
        }
        // The namespace object's own namespace is itself (`/api/v1/namespaces/<ns>`).
        let namespace = match &resource_path.namespace {
            Some(namespace) => namespace.clone(),
            None if resource_path.group.is_empty() && resource_path.resource == "namespaces" => {
                name.clone()
            }
            None => String::new(),
        };
        Attributes {
            verb: verb.into(),
            resource_request: true,
            path: path.into(),
            namespace,
            api_group: resource_path.group,
            api_version: resource_path.version,
            resource: resource_path.resource,
            // A proxy subresource's remainder is not part of what is authorized.
            subresource: resource_path
                .subresource
                .map(|s| s.split('/').next().unwrap_or("").to_owned())
                .unwrap_or_default(),
            name,
        }
    }

    /// `pods` or `pods/log`.
    pub(crate) fn resource_and_subresource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Upstream's explanation of a denial, without the `<resource> is forbidden: ` prefix.
    pub(crate) fn forbidden_reason(&self, user: &str) -> String {
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let resource = self.resource_and_subresource();
        if self.namespace.is_empty() {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                self.verb, self.api_group
            )
        } else {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                self.verb, self.api_group, self.namespace
            )
        }
    }
}

/// `metadata.name=<n>` (or `==`) as the only term of a field selector.
fn single_name(selector: &str) -> Option<&str> {
    if selector.contains(',') {
        return None;
    }
    let rest = selector.trim().strip_prefix("metadata.name")?;
    let value = rest.strip_prefix("==").or_else(|| rest.strip_prefix('='))?;
    (!value.is_empty() && !value.starts_with('=')).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: Option<&str>) -> Attributes {
        Attributes::from_request(&method, path, query)
    }

    #[test]
    fn resource_requests() {
        let a = attrs(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.resource.as_str()),
            ("list", "default", "pods")
        );
        assert!(a.resource_request);
        let a = attrs(Method::GET, "/api/v1/pods", Some("watch=true"));
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", ""));
        let a = attrs(
            Method::GET,
            "/api/v1/namespaces/x/pods",
            Some("fieldSelector=metadata.name%3Dweb"),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "web"));
        let a = attrs(
            Method::PATCH,
            "/apis/apps/v1/namespaces/x/deployments/d/scale",
            None,
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.api_group.as_str(),
                a.resource_and_subresource().as_str(),
                a.name.as_str()
            ),
            ("patch", "apps", "deployments/scale", "d")
        );
        let a = attrs(Method::DELETE, "/api/v1/namespaces/x/configmaps", None);
        assert_eq!(a.verb, "deletecollection");
        let a = attrs(Method::DELETE, "/api/v1/namespaces/x", None);
        assert_eq!(
            (
                a.verb.as_str(),
                a.resource.as_str(),
                a.namespace.as_str(),
                a.name.as_str()
            ),
            ("delete", "namespaces", "x", "x")
        );
        let a = attrs(
            Method::POST,
            "/api/v1/namespaces/x/serviceaccounts/sa/token",
            None,
        );
        assert_eq!(
            (a.verb.as_str(), a.resource_and_subresource().as_str()),
            ("create", "serviceaccounts/token")
        );
        let a = attrs(
            Method::GET,
            "/api/v1/namespaces/x/services/s/proxy/a/b",
            None,
        );
        assert_eq!(a.subresource, "proxy");
    }

    #[test]
    fn non_resource_requests() {
        for path in [
            "/healthz",
            "/api",
            "/apis/apps/v1",
            "/version",
            "/openapi/v2",
        ] {
            let a = attrs(Method::GET, path, None);
            assert!(!a.resource_request, "{path}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", path));
        }
    }

    #[test]
    fn forbidden_messages_match_upstream() {
        let a = attrs(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            a.forbidden_reason("bob"),
            r#"User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let a = attrs(Method::GET, "/api/v1/nodes", None);
        assert_eq!(
            a.forbidden_reason("bob"),
            r#"User "bob" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        let a = attrs(Method::GET, "/metrics", None);
        assert_eq!(
            a.forbidden_reason("bob"),
            r#"User "bob" cannot get path "/metrics""#
        );
    }
}
