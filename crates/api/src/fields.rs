//! Field selectors: `a=b,c!=d` with upstream's escaping, the fields each kind supports, matching.
//!
//! A request's `fieldSelector` goes through three steps, as upstream: [`FieldSelector::parse`]
//! (syntax), [`FieldSelector::for_resource`] (upstream's per-kind field label conversion: an
//! unsupported field is a 400 with upstream's message, and legacy names are renamed), and
//! [`FieldSelector::matches`] against the object's field set from [`fields_of`].

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::resources::ResourceInfo;
use crate::selector::go_quote;

/// Why a field selector was rejected; the message is upstream's, word for word.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax {
        /// The whole selector.
        selector: String,
        /// The term that has no `=`, `==` or `!=`.
        term: String,
    },
    /// A `\` followed by something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// An unescaped `,` or `=` in a value; upstream prints the character's code point.
    #[error("invalid field selector: unescaped character in value: {}", *.0 as u32)]
    UnescapedCharacter(char),
    /// A field the kind does not support selecting on (upstream's conversion error).
    #[error("{0}")]
    UnsupportedField(String),
}

/// How a term compares the field with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`
    Equals,
    /// `!=`
    NotEquals,
}

/// One `field=value` or `field!=value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field, e.g. `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

impl FieldRequirement {
    /// Whether `fields` satisfy the term; a field missing from the set counts as `""`.
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        let have = fields.get(&self.field).map(String::as_str).unwrap_or("");
        match self.operator {
            FieldOperator::Equals => have == self.value,
            FieldOperator::NotEquals => have != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A field selector: terms that must all hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses upstream's field selector syntax: terms separated by `,`, each `field=value`,
    /// `field==value` or `field!=value`, with `\`, `,` and `=` escaped by `\` in values.
    pub fn parse(selector: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut terms = split_terms(selector);
        // Upstream sorts the raw terms before parsing them, so errors come in that order.
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, value)) = split_term(term) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_owned(),
                    term: term.to_owned(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value: unescape_value(value)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Parses `selector` and checks it against the fields `resource` supports (both steps the
    /// API server takes for `?fieldSelector=`).
    pub fn parse_for(
        resource: &ResourceInfo,
        selector: &str,
    ) -> Result<FieldSelector, FieldSelectorError> {
        FieldSelector::parse(selector)?.for_resource(resource)
    }

    /// Checks every field against what `resource` supports and renames legacy fields
    /// (`spec.host` on pods, `regarding.*` on events.k8s.io events) to the names
    /// [`fields_of`] uses; an unsupported field is upstream's error.
    pub fn for_resource(
        &self,
        resource: &ResourceInfo,
    ) -> Result<FieldSelector, FieldSelectorError> {
        if let Some(custom) = &resource.custom {
            return self.for_custom_resource(&custom.selectable_fields);
        }
        let mut requirements = Vec::with_capacity(self.requirements.len());
        for r in &self.requirements {
            let field = convert_field_label(resource.group, resource.kind, &r.field)?;
            requirements.push(FieldRequirement {
                field,
                operator: r.operator,
                value: r.value.clone(),
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Checks every field against a custom resource's `selectableFields` (their `jsonPath`s,
    /// e.g. `.spec.color`) besides `metadata.name` and `metadata.namespace`.
    pub fn for_custom_resource(
        &self,
        selectable_fields: &[String],
    ) -> Result<FieldSelector, FieldSelectorError> {
        for r in &self.requirements {
            let known = matches!(r.field.as_str(), "metadata.name" | "metadata.namespace")
                || selectable_fields
                    .iter()
                    .any(|path| path.trim_start_matches('.') == r.field);
            if !known {
                return Err(if selectable_fields.is_empty() {
                    default_field_error(&r.field)
                } else {
                    FieldSelectorError::UnsupportedField(format!(
                        "field label not supported: {}",
                        r.field
                    ))
                });
            }
        }
        Ok(self.clone())
    }

    /// Whether the selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in upstream's order (sorted by their text).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether `fields` (from [`fields_of`]) satisfy every term.
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(fields))
    }

    /// Whether `object`, of `resource`, satisfies every term.
    pub fn matches_object(&self, resource: &ResourceInfo, object: &Value) -> bool {
        self.is_empty() || self.matches(&fields_of(resource, object))
    }

    /// The one value `field` must have, when a `field=value` term pins it (the API server can
    /// then narrow a list, e.g. to one name).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` in a field selector value.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`]; an unknown escape or a bare `,`/`=` is an error.
pub fn unescape_value(value: &str) -> Result<String, FieldSelectorError> {
    if !value.contains(['\\', ',', '=']) {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError::InvalidEscape(format!("\\{c}")));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedCharacter(c)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscape("\\".to_owned()));
    }
    Ok(out)
}

/// Splits at every `,` not escaped by `\`.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at its first operator (`!=`, `==`, `=`, tried in that order at each position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn default_field_error(label: &str) -> FieldSelectorError {
    FieldSelectorError::UnsupportedField(format!(
        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        go_quote(label)
    ))
}

fn not_supported(label: &str) -> FieldSelectorError {
    FieldSelectorError::UnsupportedField(format!("field label not supported: {label}"))
}

/// Upstream's field label conversion for the kind: the supported fields, renamed where upstream
/// renames them; kinds without their own list support only `metadata.name` and
/// `metadata.namespace`.
pub fn convert_field_label(
    group: &str,
    kind: &str,
    label: &str,
) -> Result<String, FieldSelectorError> {
    let supported = |list: &[&str]| {
        if list.contains(&label) {
            Ok(label.to_owned())
        } else {
            Err(not_supported(label))
        }
    };
    match (group, kind) {
        ("", "Pod") => match label {
            // Old v1 clients select on `spec.host`.
            "spec.host" => Ok("spec.nodeName".to_owned()),
            _ => supported(&[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ]),
        },
        ("", "Node") => supported(&["metadata.name", "spec.unschedulable"]),
        ("", "ReplicationController") => {
            supported(&["metadata.name", "metadata.namespace", "status.replicas"])
        }
        ("", "Event") => supported(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ]),
        ("", "Namespace") => supported(&["status.phase", "metadata.name"]),
        ("", "Secret") => supported(&["type", "metadata.namespace", "metadata.name"]),
        ("", "Service") => supported(&[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ]),
        ("batch", "Job") => match label {
            "metadata.name" | "metadata.namespace" | "status.successful" => Ok(label.to_owned()),
            _ => Err(FieldSelectorError::UnsupportedField(format!(
                "field label {} not supported for batchv1.Job",
                go_quote(label)
            ))),
        },
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            supported(&["metadata.name", "spec.signerName"])
        }
        // events.k8s.io names map onto the core Event field set.
        ("events.k8s.io", "Event") => {
            let mapped = match label {
                "reason" | "source" | "type" | "metadata.namespace" | "metadata.name" => label,
                "reportingController" => "reportingComponent",
                _ => match label.strip_prefix("regarding.") {
                    Some(
                        rest @ ("kind" | "namespace" | "name" | "uid" | "apiVersion"
                        | "resourceVersion" | "fieldPath"),
                    ) => return Ok(format!("involvedObject.{rest}")),
                    _ => return Err(not_supported(label)),
                },
            };
            Ok(mapped.to_owned())
        }
        ("resource.k8s.io", "ResourceSlice") => match label {
            "metadata.name" | "spec.nodeName" | "spec.driver" => Ok(label.to_owned()),
            _ => Err(FieldSelectorError::UnsupportedField(format!(
                "field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: {label}"
            ))),
        },
        _ => match label {
            "metadata.name" | "metadata.namespace" => Ok(label.to_owned()),
            _ => Err(default_field_error(label)),
        },
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn integer(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn boolean(object: &Value, pointer: &str) -> bool {
    object
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The selectable fields of `object` (a `resource` as stored), with upstream's values:
/// `metadata.name`, `metadata.namespace` for namespaced kinds, and each kind's own fields
/// (`spec.nodeName`, `status.phase`, `spec.unschedulable` as `true`/`false`, …).
pub fn fields_of(resource: &ResourceInfo, object: &Value) -> BTreeMap<String, String> {
    if let Some(custom) = &resource.custom {
        return custom_resource_fields(resource.namespaced, &custom.selectable_fields, object);
    }
    let mut fields = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        fields.insert(k.to_owned(), v);
    };
    put("metadata.name", text(object, "/metadata/name").to_owned());
    if resource.namespaced {
        put(
            "metadata.namespace",
            text(object, "/metadata/namespace").to_owned(),
        );
    }
    let t = |p: &str| text(object, p).to_owned();
    match (resource.group, resource.kind) {
        ("", "Pod") => {
            put("spec.nodeName", t("/spec/nodeName"));
            put("spec.restartPolicy", t("/spec/restartPolicy"));
            put("spec.schedulerName", t("/spec/schedulerName"));
            put("spec.serviceAccountName", t("/spec/serviceAccountName"));
            put(
                "spec.hostNetwork",
                boolean(object, "/spec/hostNetwork").to_string(),
            );
            put("status.phase", t("/status/phase"));
            // The first of podIPs; a status with only the legacy podIP converts to that.
            let pod_ip = object
                .pointer("/status/podIPs/0/ip")
                .and_then(Value::as_str)
                .unwrap_or_else(|| text(object, "/status/podIP"));
            put("status.podIP", pod_ip.to_owned());
            put("status.nominatedNodeName", t("/status/nominatedNodeName"));
        }
        ("", "Node") => {
            put(
                "spec.unschedulable",
                boolean(object, "/spec/unschedulable").to_string(),
            );
        }
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            put(
                "status.replicas",
                integer(object, "/status/replicas").to_string(),
            );
        }
        ("", "Event") => {
            for f in [
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            ] {
                put(
                    &format!("involvedObject.{f}"),
                    t(&format!("/involvedObject/{f}")),
                );
            }
            put("reason", t("/reason"));
            put("reportingComponent", t("/reportingComponent"));
            put("source", t("/source/component"));
            put("type", t("/type"));
        }
        ("events.k8s.io", "Event") => {
            for f in [
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            ] {
                put(
                    &format!("involvedObject.{f}"),
                    t(&format!("/regarding/{f}")),
                );
            }
            put("reason", t("/reason"));
            put("reportingComponent", t("/reportingController"));
            put("source", t("/deprecatedSource/component"));
            put("type", t("/type"));
        }
        ("", "Namespace") => {
            put("status.phase", t("/status/phase"));
            // Upstream keeps this bare field for backwards compatibility.
            put("name", t("/metadata/name"));
        }
        ("", "Secret") => put("type", t("/type")),
        ("", "Service") => {
            put("spec.clusterIP", t("/spec/clusterIP"));
            put("spec.type", t("/spec/type"));
        }
        ("batch", "Job") => {
            put(
                "status.successful",
                integer(object, "/status/succeeded").to_string(),
            );
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            put("spec.signerName", t("/spec/signerName"));
        }
        ("resource.k8s.io", "ResourceSlice") => {
            put("spec.nodeName", t("/spec/nodeName"));
            put("spec.driver", t("/spec/driver"));
        }
        _ => {}
    }
    fields
}

/// The selectable fields of a custom resource: `metadata.*` plus each of the CRD version's
/// `selectableFields` (`jsonPath`s like `.spec.color`), scalars printed as upstream does.
pub fn custom_resource_fields(
    namespaced: bool,
    selectable_fields: &[String],
    object: &Value,
) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    fields.insert(
        "metadata.name".to_owned(),
        text(object, "/metadata/name").to_owned(),
    );
    if namespaced {
        fields.insert(
            "metadata.namespace".to_owned(),
            text(object, "/metadata/namespace").to_owned(),
        );
    }
    for path in selectable_fields {
        let field = path.trim_start_matches('.');
        let pointer: String = field.split('.').flat_map(|p| ["/", p]).collect();
        let value = match object.pointer(&pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        fields.insert(field.to_owned(), value);
    }
    fields
}

#[cfg(test)]
mod tests;
