//! Which objects a list, watch or deletecollection selects: label selector, field selector, and
//! the single name of a watch on one object.

use serde_json::Value;

use super::error::ApiError;
use super::objects::meta_str;
use super::Call;

/// The compiled selection of a request.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// `metadata.name` must equal this (a watch of one object, or `fieldSelector=metadata.name=`).
    name: Option<String>,
    /// `metadata.namespace` must equal this (`fieldSelector=metadata.namespace=`).
    namespace: Option<String>,
}

impl Selection {
    /// The selection a request's query (and path) asks for.
    pub(crate) fn from_query(call: &Call<'_>) -> Result<Selection, ApiError> {
        let mut selection = Selection {
            name: call.path.name.clone(),
            namespace: None,
        };
        if let Some(raw) = call.query.get("labelSelector") {
            return Err(ApiError::bad_request(format!(
                "unable to parse requirement: label selectors are not served yet ({raw:?})"
            )));
        }
        if let Some(raw) = call.query.get("fieldSelector") {
            for term in raw.split(',') {
                match term.split_once('=') {
                    Some(("metadata.name", value)) => {
                        selection.name = Some(value.trim_start_matches('=').to_owned())
                    }
                    Some(("metadata.namespace", value)) => {
                        selection.namespace = Some(value.trim_start_matches('=').to_owned())
                    }
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {term}"
                        )))
                    }
                }
            }
        }
        Ok(selection)
    }

    /// Whether `object` is selected.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let name_ok = self
            .name
            .as_deref()
            .is_none_or(|name| meta_str(object, "name") == Some(name));
        let namespace_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| meta_str(object, "namespace").unwrap_or("") == ns);
        name_ok && namespace_ok
    }
}
