//! Field errors in upstream's shape: `spec.containers[0].image: Required value`.

use std::fmt;

/// Why a field is wrong; the names are upstream's `field.ErrorType` reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `FieldValueRequired`: "Required value".
    Required,
    /// `FieldValueInvalid`: "Invalid value".
    Invalid,
    /// `FieldValueNotSupported`: "Unsupported value".
    NotSupported,
    /// `FieldValueDuplicate`: "Duplicate value".
    Duplicate,
    /// `FieldValueForbidden`: "Forbidden".
    Forbidden,
    /// `FieldValueTooLong`: "Too long".
    TooLong,
    /// `FieldValueTooMany`: "Too many".
    TooMany,
    /// `FieldValueNotFound`: "Not found".
    NotFound,
}

impl FieldErrorKind {
    /// The `reason` of the `StatusCause`.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::NotFound => "FieldValueNotFound",
        }
    }

    /// The words upstream prints for this kind.
    pub fn words(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::NotFound => "Not found",
        }
    }
}

/// A path to a field, printed as upstream does: `spec.containers[0].ports[1].containerPort`,
/// `metadata.labels[app.kubernetes.io/name]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of a top-level field.
    pub fn new(field: &str) -> FieldPath {
        FieldPath(field.to_owned())
    }

    /// The path of a child field.
    pub fn child(&self, field: &str) -> FieldPath {
        if self.0.is_empty() {
            FieldPath(field.to_owned())
        } else {
            FieldPath(format!("{}.{field}", self.0))
        }
    }

    /// The path of a list element.
    pub fn index(&self, index: usize) -> FieldPath {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// The path of a map entry.
    pub fn key(&self, key: &str) -> FieldPath {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// The printed path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One thing wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// Where.
    pub field: FieldPath,
    /// The offending value as upstream quotes it (`"Foo"`, `70000`), when there is one.
    pub value: Option<String>,
    /// Upstream's detail text, e.g. `must be between 1 and 65535, inclusive`.
    pub detail: String,
}

impl FieldError {
    /// A `Required value` error.
    pub fn required(field: FieldPath, detail: impl Into<String>) -> FieldError {
        FieldError {
            kind: FieldErrorKind::Required,
            field,
            value: None,
            detail: detail.into(),
        }
    }

    /// An `Invalid value` error quoting `value` (a JSON value is printed as JSON: strings quoted).
    pub fn invalid(
        field: FieldPath,
        value: &serde_json::Value,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            kind: FieldErrorKind::Invalid,
            field,
            value: Some(value.to_string()),
            detail: detail.into(),
        }
    }

    /// An error of any other kind.
    pub fn new(
        kind: FieldErrorKind,
        field: FieldPath,
        value: Option<&serde_json::Value>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            kind,
            field,
            value: value.map(|v| v.to_string()),
            detail: detail.into(),
        }
    }

    /// The cause message, without the field: `Invalid value: 70000: must be between …`.
    pub fn message(&self) -> String {
        let mut out = self.kind.words().to_owned();
        if let Some(value) = &self.value {
            out.push_str(": ");
            out.push_str(value);
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }
}

impl fmt::Display for FieldError {
    /// `spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_upstream() {
        let path = FieldPath::new("spec").child("ports").index(0).child("port");
        let err = FieldError::invalid(
            path,
            &serde_json::json!(70000),
            "must be between 1 and 65535, inclusive",
        );
        assert_eq!(
            err.to_string(),
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let err = FieldError::required(
            FieldPath::new("spec")
                .child("containers")
                .index(0)
                .child("image"),
            "",
        );
        assert_eq!(err.to_string(), "spec.containers[0].image: Required value");
        assert_eq!(
            FieldPath::new("metadata")
                .child("labels")
                .key("a/b")
                .to_string(),
            "metadata.labels[a/b]"
        );
    }
}
