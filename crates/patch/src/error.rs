//! Why a patch could not be applied, naming the operation or field path that failed.

/// A patch that could not be applied. Every variant is the client's fault (bad patch or a patch
/// that does not fit the object): the API server answers it with a 4xx `Status`.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body of a JSON patch is not a list of RFC 6902 operations.
    #[error("invalid json patch: {source}")]
    JsonPatchFormat {
        /// Why the operations could not be read.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON patch with more operations than the API server allows.
    #[error("the allowed number of operations in a json patch is {max}, but found {count}")]
    TooManyOperations {
        /// Operations in the patch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One operation of a JSON patch failed (bad path, failed `test`, ...).
    #[error("json patch operation {index} ({op}) failed at path \"{path}\": {reason}")]
    JsonPatchOperation {
        /// Zero-based index of the failing operation.
        index: usize,
        /// The operation's name: `add`, `remove`, `replace`, `move`, `copy` or `test`.
        op: &'static str,
        /// The operation's `path`.
        path: String,
        /// What went wrong, in json-patch's words.
        reason: String,
    },
    /// The `copy` operations of a JSON patch copy more than the API allows.
    #[error("json patch operation {index} (copy) to path \"{path}\" copies more than the allowed {max} bytes in total")]
    CopyTooLarge {
        /// Zero-based index of the operation that passed the limit.
        index: usize,
        /// The operation's `path`.
        path: String,
        /// The limit in bytes.
        max: usize,
    },
    /// A JSON patch builds an object nested deeper than can be stored and read back.
    #[error(
        "json patch operation {index} at path \"{path}\" nests the object deeper than {max} levels"
    )]
    TooDeep {
        /// Zero-based index of the operation that passed the limit.
        index: usize,
        /// The operation's `path`.
        path: String,
        /// The limit.
        max: usize,
    },
    /// A merge or strategic merge patch (or the object it applies to) is not a JSON object.
    #[error("{what} must be a json object")]
    NotAnObject {
        /// `merge patch`, `strategic merge patch` or `object`.
        what: &'static str,
    },
    /// Strategic merge patch asked for a kind whose schema is unknown (custom resources have no
    /// patch strategies: upstream answers 415 for them).
    #[error("strategic merge patch is not supported for {schema}")]
    UnknownSchema {
        /// The OpenAPI definition name that was asked for.
        schema: String,
    },
    /// A strategic merge patch that is malformed or does not fit the object.
    #[error("strategic merge patch failed at {path}: {kind}")]
    Strategic {
        /// Dotted field path in the object, e.g. `spec.template.spec.containers[name=web].env`.
        path: String,
        /// What is wrong there.
        kind: StrategicError,
    },
}

/// What is wrong with a strategic merge patch at one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// `$patch` with a value other than `replace` or `delete` in a map.
    #[error("unknown patch directive \"$patch: {0}\" in a map (want replace or delete)")]
    UnknownMapDirective(String),
    /// `$patch` with an unknown value in a list element.
    #[error("unknown patch directive \"$patch: {0}\" in a list (want replace or delete)")]
    UnknownListDirective(String),
    /// `$patch: merge` in a list element (upstream does not support it either).
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// A list element (in the patch or the object) lacks the list's merge key.
    #[error("list element does not contain declared merge key \"{0}\"")]
    MissingMergeKey(String),
    /// A merging list of objects whose field has no merge key.
    #[error("cannot merge a list of objects without a merge key")]
    NoMergeKey,
    /// A list of lists in a merging list.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merging list whose elements are not all of one JSON type.
    #[error("list element types are not identical")]
    MixedElementTypes,
    /// `$retainKeys` is not a list, or the patch sets a field that it does not list.
    #[error("invalid $retainKeys: {0}")]
    RetainKeys(String),
    /// A `$setElementOrder/<field>` that is not a list, or disagrees with the patch list.
    #[error("invalid $setElementOrder: {0}")]
    SetElementOrder(String),
    /// A `$deleteFromPrimitiveList` or `$setElementOrder` key without `/<field>`.
    #[error("invalid directive key \"{0}\" (want {1}/<field>)")]
    DirectiveKey(String, &'static str),
    /// A directive's value or a merged field of the wrong JSON type.
    #[error("{0}")]
    WrongType(String),
}

impl PatchError {
    /// The HTTP status upstream's API server answers this error with (where upstream answers a
    /// client's bad patch with 500, 422 instead: the client never sees a 500 for its own input).
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::JsonPatchFormat { .. } | PatchError::NotAnObject { .. } => 400,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::UnknownSchema { .. } => 415,
            PatchError::JsonPatchOperation { .. }
            | PatchError::CopyTooLarge { .. }
            | PatchError::TooDeep { .. } => 422,
            PatchError::Strategic { kind, .. } => match kind {
                StrategicError::RetainKeys(_)
                | StrategicError::SetElementOrder(_)
                | StrategicError::DirectiveKey(..) => 400,
                _ => 422,
            },
        }
    }

    pub(crate) fn strategic(path: &str, kind: StrategicError) -> PatchError {
        let path = if path.is_empty() { "<root>" } else { path };
        PatchError::Strategic {
            path: path.to_owned(),
            kind,
        }
    }
}
