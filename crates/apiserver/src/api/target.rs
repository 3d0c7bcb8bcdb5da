//! Parses an API path into what it addresses, as kube-apiserver's `RequestInfo` does.
//!
//! `/api/v1/namespaces/default/pods/web/status` → core group, version `v1`, namespace `default`,
//! resource `pods`, name `web`, subresource `status`. `/api/v1/namespaces/default` is the
//! namespace object itself. Discovery paths (`/api`, `/apis`, `/apis/apps`, `/apis/apps/v1`) are
//! told apart from resource paths.

/// What an API path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every group.
    Groups,
    /// `/apis/<group>`: one group.
    Group { group: String },
    /// `/api/v1` or `/apis/<group>/<version>`: the resources of a group version.
    GroupVersion { group: String, version: String },
    /// A resource collection, object, or subresource.
    Resource(ResourcePath),
}

/// A path below a group version that names a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub(crate) group: String,
    pub(crate) version: String,
    /// The namespace in the path (`namespaces/<ns>/...`), if any.
    pub(crate) namespace: Option<String>,
    /// The plural resource name.
    pub(crate) resource: String,
    /// The object name, if the path names one.
    pub(crate) name: Option<String>,
    /// The subresource (`status`, `scale`, `log`, ...), if any.
    pub(crate) subresource: Option<String>,
}

/// Parses `path` (already stripped of its query). `None` when it is not an API path.
pub(crate) fn parse(path: &str) -> Option<Target> {
    let trimmed = path.trim_matches('/');
    let mut parts = trimmed.split('/').filter(|s| !s.is_empty());
    let (group, version) = match parts.next()? {
        "api" => match parts.next() {
            None => return Some(Target::CoreVersions),
            Some(version) => (String::new(), version.to_owned()),
        },
        "apis" => match (parts.next(), parts.next()) {
            (None, _) => return Some(Target::Groups),
            (Some(group), None) => {
                return Some(Target::Group {
                    group: group.to_owned(),
                })
            }
            (Some(group), Some(version)) => (group.to_owned(), version.to_owned()),
        },
        _ => return None,
    };
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        return Some(Target::GroupVersion { group, version });
    }
    let mut path = ResourcePath {
        group,
        version,
        namespace: None,
        resource: String::new(),
        name: None,
        subresource: None,
    };
    // `namespaces/<ns>/<resource>/...` is namespaced; `namespaces`, `namespaces/<ns>` and
    // `namespaces/<ns>/status|finalize` address the namespace objects themselves.
    let rest: &[&str] = if rest[0] == "namespaces" && rest.len() >= 3 && !is_namespace_sub(rest[2])
    {
        path.namespace = Some(rest[1].to_owned());
        &rest[2..]
    } else {
        &rest
    };
    match rest {
        [resource] => path.resource = (*resource).to_owned(),
        [resource, name] => {
            path.resource = (*resource).to_owned();
            path.name = Some((*name).to_owned());
        }
        [resource, name, sub, ..] => {
            path.resource = (*resource).to_owned();
            path.name = Some((*name).to_owned());
            // Proxy subresources carry a path of their own; it is kept whole.
            path.subresource = Some(rest[2..].join("/"));
            let _ = sub;
        }
        [] => return None,
    }
    Some(Target::Resource(path))
}

/// Subresources of a namespace object, which must not be read as `namespaces/<ns>/<resource>`.
fn is_namespace_sub(segment: &str) -> bool {
    matches!(segment, "status" | "finalize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse(path) {
            Some(Target::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("/api"), Some(Target::CoreVersions));
        assert_eq!(parse("/apis/"), Some(Target::Groups));
        assert_eq!(
            parse("/apis/apps"),
            Some(Target::Group {
                group: "apps".into()
            })
        );
        assert_eq!(
            parse("/api/v1"),
            Some(Target::GroupVersion {
                group: String::new(),
                version: "v1".into()
            })
        );
        assert_eq!(parse("/healthz"), None);
    }

    #[test]
    fn resource_paths() {
        let r = resource("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (Some("default"), "pods", Some("web"), Some("status"))
        );
        let r = resource("/apis/apps/v1/deployments");
        assert_eq!(
            (r.group.as_str(), r.namespace, r.name),
            ("apps", None, None)
        );
        let r = resource("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let r = resource("/api/v1/namespaces/x/finalize");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let r = resource("/api/v1/namespaces/x/pods");
        assert_eq!(
            (r.namespace.as_deref(), r.resource.as_str(), r.name),
            (Some("x"), "pods", None)
        );
        let r = resource("/api/v1/namespaces/x/services/web/proxy/a/b");
        assert_eq!(r.subresource.as_deref(), Some("proxy/a/b"));
    }
}
