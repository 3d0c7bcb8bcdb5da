//! The files of a downwardAPI volume (upstream's `downwardapi.CollectData`, `fieldpath` and
//! `resource` helpers): pod metadata fields and container resources, formatted as upstream does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::atomic_writer::{FileProjection, Payload};

/// A field or resource the downward API cannot give (upstream's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownwardApiError {
    #[error("unsupported fieldPath: {0}")]
    UnsupportedField(String),
    #[error("fieldPath \"{0}\" does not support subscript")]
    NoSubscript(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    #[error("invalid quantity {value:?} in {what}")]
    Quantity { what: String, value: String },
    /// Several items failed: upstream's aggregate, `[first, second]`.
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<DownwardApiError>),
}

/// Resources of the node a container without a limit is limited by.
pub type NodeAllocatable = BTreeMap<String, Quantity>;

/// The files of a downwardAPI volume or projection.
pub(crate) fn collect(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    default_mode: i32,
    node_allocatable: &NodeAllocatable,
) -> Result<Payload, DownwardApiError> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let mode = u32::try_from(item.mode.unwrap_or(default_mode)).unwrap_or(0) & 0o7777;
        let value = if let Some(field) = &item.field_ref {
            field_path_value(pod, &field.field_path)
        } else if let Some(resource) = &item.resource_field_ref {
            resource_value(pod, resource, node_allocatable)
        } else {
            Ok(String::new())
        };
        let data = match value {
            Ok(value) => value.into_bytes(),
            Err(err) => {
                errors.push(err);
                Vec::new()
            }
        };
        payload.insert(
            item.path.clone(),
            FileProjection {
                data,
                mode,
                fs_user: None,
            },
        );
    }
    match errors.len() {
        0 => Ok(payload),
        1 => Err(errors.remove(0)),
        _ => Err(DownwardApiError::Aggregate(errors)),
    }
}

/// `metadata.labels['key']` → `("metadata.labels", "key")`.
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let inner = field_path.strip_suffix("']")?;
    let (path, key) = inner.split_once("['")?;
    (!path.is_empty()).then_some((path, key))
}

/// The value of a pod metadata field as the downward API writes it.
pub(crate) fn field_path_value(pod: &Pod, field_path: &str) -> Result<String, DownwardApiError> {
    let meta = &pod.metadata;
    if let Some((path, key)) = split_subscript(field_path) {
        return match path {
            "metadata.annotations" => Ok(meta
                .annotations
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default()),
            "metadata.labels" => Ok(meta
                .labels
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default()),
            _ => Err(DownwardApiError::NoSubscript(field_path.to_owned())),
        };
    }
    let empty = BTreeMap::new();
    match field_path {
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref().unwrap_or(&empty))),
        "metadata.labels" => Ok(format_map(meta.labels.as_ref().unwrap_or(&empty))),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(DownwardApiError::UnsupportedField(field_path.to_owned())),
    }
}

/// Labels or annotations as upstream's `FormatMap`: one `key="value"` line per key, sorted, the
/// value quoted as Go's `%q` does, no trailing newline.
pub(crate) fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(key, value)| format!("{key}={}", go_quote(value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A string quoted as Go's `strconv.Quote`: `"` and `\` escaped, the usual short escapes, other
/// control and invisible characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub(crate) fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if u32::from(c) < 0x80 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) < 0x10000 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`, near enough: ASCII space and graphic characters; not controls, other
/// spaces, line/paragraph separators or the common invisible format characters.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

fn quantity(
    what: &str,
    q: &Quantity,
    parse: fn(&str) -> Option<i64>,
) -> Result<i64, DownwardApiError> {
    parse(&q.0).ok_or_else(|| DownwardApiError::Quantity {
        what: what.to_owned(),
        value: q.0.clone(),
    })
}

/// A container resource as the downward API writes it: the limit (the node's allocatable
/// when the container sets none) or request, divided by the divisor and rounded up.
pub(crate) fn resource_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    node_allocatable: &NodeAllocatable,
) -> Result<String, DownwardApiError> {
    let container_name = selector.container_name.as_deref().unwrap_or_default();
    let container = find_container(pod, container_name)
        .ok_or_else(|| DownwardApiError::ContainerNotFound(container_name.to_owned()))?;
    let resources = container.resources.as_ref();
    let (kind, name) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| DownwardApiError::UnsupportedResource(selector.resource.clone()))?;
    let list = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(DownwardApiError::UnsupportedResource(
                selector.resource.clone(),
            ))
        }
    };
    let supported =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !supported {
        return Err(DownwardApiError::UnsupportedResource(
            selector.resource.clone(),
        ));
    }
    let zero = Quantity("0".to_owned());
    let mut amount = list.and_then(|l| l.get(name)).unwrap_or(&zero);
    // Hugepages are never overcommitted, so they always have a limit of their own.
    if kind == "limits"
        && !name.starts_with("hugepages-")
        && k3rs_api::quantity::milli_value(&amount.0).unwrap_or(0) == 0
    {
        if let Some(allocatable) = node_allocatable.get(name) {
            amount = allocatable;
        }
    }
    let divisor = selector
        .divisor
        .as_ref()
        .filter(|d| k3rs_api::quantity::milli_value(&d.0).unwrap_or(0) != 0)
        .cloned()
        .unwrap_or_else(|| Quantity("1".to_owned()));
    let value = if name == "cpu" {
        let milli = quantity(&selector.resource, amount, k3rs_api::quantity::milli_value)?;
        let divisor = quantity("divisor", &divisor, k3rs_api::quantity::milli_value)?;
        div_ceil(milli, divisor)
    } else {
        let value = quantity(&selector.resource, amount, k3rs_api::quantity::value)?;
        let divisor = quantity("divisor", &divisor, k3rs_api::quantity::value)?;
        div_ceil(value, divisor)
    };
    Ok(value.to_string())
}

/// `ceil(a / b)` for the non-negative quantities of resources (b ≥ 1).
fn div_ceil(a: i64, b: i64) -> i64 {
    let b = b.max(1);
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectFieldSelector, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_owned())
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("1234-abcd".into()),
                labels: Some(
                    [
                        ("tier".to_owned(), "front".to_owned()),
                        ("app".to_owned(), "web".to_owned()),
                    ]
                    .into(),
                ),
                annotations: Some([("note".to_owned(), "say \"hi\"\nbye".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "app".into(),
                        resources: Some(ResourceRequirements {
                            limits: Some(
                                [
                                    ("cpu".to_owned(), q("500m")),
                                    ("memory".to_owned(), q("128Mi")),
                                ]
                                .into(),
                            ),
                            requests: Some(
                                [
                                    ("cpu".to_owned(), q("250m")),
                                    ("memory".to_owned(), q("64Mi")),
                                ]
                                .into(),
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Container {
                        name: "sidecar".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn resource(container: &str, resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            container_name: Some(container.into()),
            resource: resource.into(),
            divisor: divisor.map(q),
        }
    }

    #[test]
    fn metadata_fields() {
        let pod = pod();
        assert_eq!(field_path_value(&pod, "metadata.name").unwrap(), "web");
        assert_eq!(
            field_path_value(&pod, "metadata.namespace").unwrap(),
            "prod"
        );
        assert_eq!(field_path_value(&pod, "metadata.uid").unwrap(), "1234-abcd");
        assert_eq!(
            field_path_value(&pod, "metadata.labels").unwrap(),
            "app=\"web\"\ntier=\"front\""
        );
        assert_eq!(
            field_path_value(&pod, "metadata.annotations").unwrap(),
            "note=\"say \\\"hi\\\"\\nbye\""
        );
        assert_eq!(
            field_path_value(&pod, "metadata.labels['tier']").unwrap(),
            "front"
        );
        assert_eq!(
            field_path_value(&pod, "metadata.labels['missing']").unwrap(),
            ""
        );
        assert_eq!(
            field_path_value(&pod, "spec.nodeName")
                .unwrap_err()
                .to_string(),
            "unsupported fieldPath: spec.nodeName"
        );
        assert_eq!(
            field_path_value(&pod, "metadata.name['x']")
                .unwrap_err()
                .to_string(),
            "fieldPath \"metadata.name['x']\" does not support subscript"
        );
        assert_eq!(
            field_path_value(&Pod::default(), "metadata.labels").unwrap(),
            ""
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\tb\\c"), "\"a\\tb\\\\c\"");
        assert_eq!(go_quote("\u{1}\u{7f}"), "\"\\x01\\x7f\"");
        assert_eq!(go_quote("héllo ✓"), "\"héllo ✓\"");
        assert_eq!(go_quote("\u{a0}\u{feff}"), "\"\\u00a0\\ufeff\"");
    }

    #[test]
    fn resources_with_divisors_and_allocatable_defaults() {
        let pod = pod();
        let allocatable: NodeAllocatable =
            [("cpu".to_owned(), q("4")), ("memory".to_owned(), q("8Gi"))].into();
        let cases = [
            (resource("app", "limits.cpu", None), "1"),
            (resource("app", "limits.cpu", Some("1m")), "500"),
            (resource("app", "requests.cpu", Some("100m")), "3"),
            (resource("app", "limits.memory", Some("1Mi")), "128"),
            (resource("app", "requests.memory", None), "67108864"),
            (resource("sidecar", "limits.cpu", None), "4"),
            (resource("sidecar", "limits.memory", Some("1Gi")), "8"),
            (resource("sidecar", "requests.memory", None), "0"),
            (resource("sidecar", "limits.ephemeral-storage", None), "0"),
        ];
        for (selector, want) in cases {
            assert_eq!(
                resource_value(&pod, &selector, &allocatable).unwrap(),
                want,
                "{selector:?}"
            );
        }
        assert_eq!(
            resource_value(&pod, &resource("nope", "limits.cpu", None), &allocatable)
                .unwrap_err()
                .to_string(),
            "container nope not found"
        );
        assert_eq!(
            resource_value(&pod, &resource("app", "limits.gpu", None), &allocatable)
                .unwrap_err()
                .to_string(),
            "unsupported container resource : limits.gpu"
        );
    }

    #[test]
    fn collect_modes_and_aggregate_errors() {
        let pod = pod();
        let field = |path: &str, field: &str, mode: Option<i32>| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                ..Default::default()
            }),
            mode,
            ..Default::default()
        };
        let items = [
            field("name", "metadata.name", None),
            field("meta/labels", "metadata.labels", Some(0o400)),
        ];
        let payload = collect(&items, &pod, 0o644, &NodeAllocatable::new()).unwrap();
        assert_eq!(payload["name"].data, b"web");
        assert_eq!(payload["name"].mode, 0o644);
        assert_eq!(payload["meta/labels"].mode, 0o400);

        let bad = [field("a", "spec.x", None), field("b", "status.y", None)];
        let err = collect(&bad, &pod, 0o644, &NodeAllocatable::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[unsupported fieldPath: spec.x, unsupported fieldPath: status.y]"
        );
    }
}
