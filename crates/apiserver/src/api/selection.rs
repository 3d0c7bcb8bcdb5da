//! Which objects a list, watch or deletecollection selects: label selector, field selector, and
//! the single name of a watch on one object.

use k3rs_api::{FieldSelector, LabelSelector};
use serde_json::Value;

use super::error::ApiError;
use super::objects::meta_str;
use super::Call;

/// The compiled selection of a request.
#[derive(Debug)]
pub(crate) struct Selection {
    resource: std::sync::Arc<k3rs_api::ResourceInfo>,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    /// The object name in the path (a watch of one object).
    name: Option<String>,
}

impl Selection {
    /// The selection a request's query (and path) asks for; bad selectors are 400s with
    /// upstream's messages.
    pub(crate) fn from_query(call: &Call<'_>) -> Result<Selection, ApiError> {
        let labels = call
            .query
            .get("labelSelector")
            .map(LabelSelector::parse)
            .transpose()
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        let fields = call
            .query
            .get("fieldSelector")
            .map(|raw| FieldSelector::parse_for(&call.resource, raw))
            .transpose()
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        Ok(Selection {
            resource: call.resource.clone(),
            labels,
            fields,
            name: call.path.name.clone(),
        })
    }

    /// A selection by labels only.
    #[cfg(test)]
    pub(crate) fn for_labels(
        resource: std::sync::Arc<k3rs_api::ResourceInfo>,
        labels: LabelSelector,
    ) -> Selection {
        Selection {
            resource,
            labels: Some(labels),
            fields: None,
            name: None,
        }
    }

    /// Whether an object with this `metadata` is selected, when the metadata alone decides
    /// (no field selector); `None` when the whole object is needed.
    pub(crate) fn matches_metadata(
        &self,
        metadata: &serde_json::Map<String, Value>,
    ) -> Option<bool> {
        if self.fields.is_some() {
            return None;
        }
        let name = metadata.get("name").and_then(Value::as_str);
        if self
            .name
            .as_deref()
            .is_some_and(|wanted| name != Some(wanted))
        {
            return Some(false);
        }
        let Some(labels) = &self.labels else {
            return Some(true);
        };
        let empty = serde_json::Map::new();
        let map = metadata
            .get("labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        Some(labels.matches(map))
    }

    /// Whether `object` is selected.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.name
            .as_deref()
            .is_none_or(|name| meta_str(object, "name") == Some(name))
            && self
                .labels
                .as_ref()
                .is_none_or(|l| l.matches_object(object))
            && self
                .fields
                .as_ref()
                .is_none_or(|f| f.matches_object(&self.resource, object))
    }
}
