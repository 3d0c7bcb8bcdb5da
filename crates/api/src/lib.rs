//! What k3rs knows about each Kubernetes kind, as pure functions over JSON objects.
//!
//! The resource table ([`resources`]) lists every built-in resource k3rs serves with its group,
//! version, kind, plural, scope, verbs, short names, categories, subresources and schema. Around
//! it: label and field selectors, defaulting and validation of built-in kinds (validation reports
//! [`FieldError`]s in upstream's wording, which the API server turns into 422 `Status` causes),
//! server-side Table printing for `kubectl get`, the patch strategies and list/map topology
//! (`+listType`, `+mapType`, ...) of the built-in types, the OpenAPI v2/v3 documents, and the JSON
//! wire form kube-apiserver writes ([`wire`]: Go's field order and zero values).
//!
//! **Invariants**
//! - No I/O, no clock reads hidden in helpers (the caller passes "now"), no store access: every
//!   function here is deterministic in its inputs, so it can be snapshot-tested and fuzzed.
//! - The API server decides *when* to call these; this crate only knows *what* a kind means.

#![forbid(unsafe_code)]

pub mod cidr;
pub mod conversion;
pub mod cron;
pub mod custom;
pub mod defaults;
pub mod field_error;
pub mod fields;
pub mod go_json;
pub mod openapi;
pub mod patch_strategy;
pub mod quantity;
pub mod resources;
pub mod schema_topology;
pub mod selector;
pub mod strict;
pub mod table;
pub mod validation;
pub mod well_known;
pub mod wire;

pub use cron::{CronError, CronSchedule, UnknownTimeZone};
pub use custom::{CustomResource, ScaleSubresource};
pub use defaults::apply_defaults;
pub use field_error::{FieldError, FieldErrorKind, FieldPath};
pub use fields::{fields_of, FieldSelector, FieldSelectorError};
pub use openapi::{
    openapi_v2, openapi_v3_documents, openapi_v3_group_version, openapi_v3_group_versions,
    openapi_v3_index, CustomResourceSchema,
};
pub use resources::{builtin_resources, ResourceInfo, Verb};
pub use selector::{Selector as LabelSelector, SelectorError};
pub use table::{table_for, table_for_custom, Column, PrinterColumn, Row, Table};
pub use validation::{
    generation_changes, prepare_update, tracks_generation, validate_create, validate_update,
    UpdateEndpoint,
};
