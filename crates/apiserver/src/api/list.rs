//! Collection verbs: list (with paging and resourceVersion semantics) and deletecollection.

use http::{Response, StatusCode};
use k3rs_store::{ListOptions, StoreError};
use serde_json::{json, Value};

use super::error::ApiError;
use super::objects::{collection_prefix, decode, meta_str};
use super::selection::Selection;
use super::{crud, table, Call, Format};
use crate::response::{json as json_response, ResponseBody};

/// The revision a list reads at, from `resourceVersion` and `resourceVersionMatch`.
fn list_revision(call: &Call<'_>) -> Result<Option<i64>, ApiError> {
    let rv = call.query.get("resourceVersion");
    let rv_match = call.query.get("resourceVersionMatch");
    if call.query.get("continue").is_some() {
        if rv.is_some_and(|rv| rv != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        return Ok(None);
    }
    let parse = |raw: &str| {
        raw.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {raw:?}: must be an integer"
            ))
        })
    };
    match (rv, rv_match) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        (Some("0"), Some("Exact")) => Err(ApiError::bad_request(
            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
        )),
        (Some(raw), Some("Exact")) => Ok(Some(parse(raw)?)),
        (Some(raw), None | Some("NotOlderThan")) => {
            let wanted = parse(raw)?;
            let current = call.state.store.current_revision();
            if wanted > current {
                return Err(ApiError::too_large_resource_version(wanted, current));
            }
            Ok(None)
        }
        (Some(_), Some(other)) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// Reads matching objects at one revision: up to `limit` of them, starting at `continue_token`.
/// Returns the objects, the revision, and the continue token of the next page.
pub(crate) async fn collect(
    call: &Call<'_>,
    selection: &Selection,
    limit: Option<usize>,
    continue_token: Option<String>,
    revision: Option<i64>,
) -> Result<(Vec<Value>, i64, Option<String>), ApiError> {
    let prefix = collection_prefix(&call.resource, call.namespace());
    let mut items = Vec::new();
    let mut token = continue_token;
    let mut at = revision;
    loop {
        let wanted = limit.map(|limit| limit - items.len());
        let page = call
            .state
            .store
            .list(
                &prefix,
                ListOptions {
                    limit: wanted,
                    continue_token: token.clone(),
                    revision: if token.is_some() { None } else { at },
                },
            )
            .await
            .map_err(|err| list_error(call, err))?;
        at = Some(page.revision);
        for kv in &page.items {
            let object = decode(&call.resource, kv)?;
            if selection.matches(&object) {
                items.push(object);
            }
        }
        token = page.continue_token;
        let full = limit.is_some_and(|limit| items.len() >= limit);
        if token.is_none() || full {
            return Ok((items, page.revision, token));
        }
    }
}

fn list_error(call: &Call<'_>, err: StoreError) -> ApiError {
    match err {
        StoreError::Compacted {
            requested,
            compacted,
        } => {
            if call.query.get("continue").is_some() {
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            } else {
                ApiError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                ))
            }
        }
        StoreError::InvalidContinue { reason } => {
            ApiError::bad_request(format!("continue key is not valid: {reason}"))
        }
        StoreError::FutureRevision { requested, current } => {
            ApiError::too_large_resource_version(requested, current)
        }
        other => ApiError::internal(other),
    }
}

pub(crate) async fn list(call: &Call<'_>) -> Result<Response<ResponseBody>, ApiError> {
    let selection = Selection::from_query(call)?;
    let limit = call
        .query
        .integer("limit")?
        .filter(|limit| *limit > 0)
        .map(|limit| limit as usize);
    let revision = list_revision(call)?;
    let (items, revision, token) = collect(
        call,
        &selection,
        limit,
        call.query.get("continue").map(str::to_owned),
        revision,
    )
    .await?;
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let (Some(token), Some(map)) = (token, metadata.as_object_mut()) {
        map.insert("continue".into(), Value::from(token));
    }
    Ok(match call.format {
        Format::Table => json_response(StatusCode::OK, &table::table(call, &items, Some(metadata))),
        Format::Json => json_response(
            StatusCode::OK,
            &json!({
                "kind": call.resource.list_kind,
                "apiVersion": call.resource.api_version,
                "metadata": metadata,
                "items": items,
            }),
        ),
    })
}

pub(crate) async fn delete_collection(
    call: &Call<'_>,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let selection = Selection::from_query(call)?;
    let (items, _, _) = collect(call, &selection, None, None, None).await?;
    let names: Vec<(Option<String>, String)> = items
        .iter()
        .filter_map(|object| {
            let name = meta_str(object, "name")?.to_owned();
            Some((meta_str(object, "namespace").map(str::to_owned), name))
        })
        .collect();
    crud::delete_many(call, &names, body).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    ))
}
