//! The `paths` of both documents: every endpoint of a served resource, with its operations.

use serde_json::{json, Map, Value};

use super::schema::Format;
use super::{Served, DELETE_OPTIONS, GVK_EXTENSION, PATCH, STATUS, WATCH_EVENT};
use crate::resources::Verb;

/// What an operation takes as its body.
#[derive(Clone, Copy, Debug)]
enum Body<'a> {
    /// No body.
    None,
    /// The named definition, required.
    Object(&'a str),
    /// DeleteOptions, optional.
    DeleteOptions,
    /// A patch in one of the patch content types.
    Patch { strategic: bool },
}

/// What a successful operation returns.
#[derive(Clone, Copy, Debug)]
enum Reply<'a> {
    /// The named definition.
    Object(&'a str),
    /// A plain string (logs, connect streams).
    Text,
}

/// Query parameters, by the operation they belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Query {
    None,
    List,
    Watch,
    Write,
    Patch,
    Delete,
    DeleteCollection,
    Log,
}

/// One operation on a path.
#[derive(Clone, Copy, Debug)]
struct Operation<'a> {
    /// HTTP method, lowercase.
    method: &'static str,
    /// `x-kubernetes-action`.
    action: &'static str,
    /// The operation id: upstream's `<verb><Group><Version><Scope><Kind><Suffix>` scheme.
    id: &'a str,
    description: &'a str,
    /// The kind the operation is about (`x-kubernetes-group-version-kind`).
    gvk: (&'a str, &'a str, &'a str),
    body: Body<'a>,
    reply: Reply<'a>,
    query: Query,
    /// Status codes of success besides 200.
    also: &'static [&'static str],
}

const BOOLEAN: &str = "boolean";
const INTEGER: &str = "integer";
const STRING: &str = "string";

/// (name, type, description) of each query parameter.
const LIST_PARAMS: &[(&str, &str, &str)] = &[
    ("allowWatchBookmarks", BOOLEAN, "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion."),
    ("continue", STRING, "The continue option should be set when retrieving more results from the server."),
    ("fieldSelector", STRING, "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
    ("labelSelector", STRING, "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
    ("limit", INTEGER, "limit is a maximum number of responses to return for a list call."),
    ("resourceVersion", STRING, "resourceVersion sets a constraint on what resource versions a request may be served from."),
    ("resourceVersionMatch", STRING, "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    ("sendInitialEvents", BOOLEAN, "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins with synthetic events for the current state of the objects, then a bookmark."),
    ("timeoutSeconds", INTEGER, "Timeout for the list/watch call."),
    ("watch", BOOLEAN, "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
];
const WRITE_PARAMS: &[(&str, &str, &str)] = &[
    ("dryRun", STRING, "When present, indicates that modifications should not be persisted. The only valid value is All."),
    ("fieldManager", STRING, "fieldManager is a name associated with the actor or entity that is making these changes."),
    ("fieldValidation", STRING, "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict."),
];
const FORCE_PARAM: (&str, &str, &str) = ("force", BOOLEAN, "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.");
const DELETE_PARAMS: &[(&str, &str, &str)] = &[
    ("dryRun", STRING, "When present, indicates that modifications should not be persisted. The only valid value is All."),
    ("gracePeriodSeconds", INTEGER, "The duration in seconds before the object should be deleted. Zero means delete immediately."),
    ("ignoreStoreReadErrorWithClusterBreakingPotential", BOOLEAN, "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error."),
    ("orphanDependents", BOOLEAN, "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned."),
    ("propagationPolicy", STRING, "Whether and how garbage collection will be performed: Orphan, Background or Foreground."),
];
const LOG_PARAMS: &[(&str, &str, &str)] = &[
    ("container", STRING, "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
    ("follow", BOOLEAN, "Follow the log stream of the pod. Defaults to false."),
    ("insecureSkipTLSVerifyBackend", BOOLEAN, "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to."),
    ("limitBytes", INTEGER, "If set, the number of bytes to read from the server before terminating the log output."),
    ("previous", BOOLEAN, "Return previous terminated container logs. Defaults to false."),
    ("sinceSeconds", INTEGER, "A relative time in seconds before the current time from which to show logs."),
    ("stream", STRING, "Specify which container log stream to return to the client: All, Stdout or Stderr."),
    ("tailLines", INTEGER, "If set, the number of lines from the end of the logs to show."),
    ("timestamps", BOOLEAN, "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output."),
];

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
const REPLY_TYPES: &[&str] = &["application/json", "application/yaml"];
const LIST_REPLY_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];
const WATCH_REPLY_TYPES: &[&str] = &["application/json", "application/json;stream=watch"];

impl Query {
    fn params(self) -> Vec<(&'static str, &'static str, &'static str)> {
        match self {
            Query::None => Vec::new(),
            Query::List | Query::Watch => LIST_PARAMS.to_vec(),
            Query::Write => WRITE_PARAMS.to_vec(),
            Query::Patch => WRITE_PARAMS
                .iter()
                .copied()
                .chain(std::iter::once(FORCE_PARAM))
                .collect(),
            Query::Delete => DELETE_PARAMS.to_vec(),
            Query::DeleteCollection => {
                let mut params: Vec<_> = DELETE_PARAMS
                    .iter()
                    .chain(LIST_PARAMS)
                    .filter(|(name, _, _)| !matches!(*name, "allowWatchBookmarks" | "watch"))
                    .copied()
                    .collect();
                params.sort_by_key(|(name, _, _)| *name);
                params.dedup_by_key(|(name, _, _)| *name);
                params
            }
            Query::Log => LOG_PARAMS.to_vec(),
        }
    }
}

fn parameter(format: Format, name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut param = Map::new();
    param.insert("name".into(), name.into());
    param.insert("in".into(), location.into());
    param.insert("description".into(), description.into());
    match format {
        Format::V2 => {
            param.insert("type".into(), ty.into());
            param.insert("uniqueItems".into(), true.into());
        }
        Format::V3 => {
            param.insert("schema".into(), json!({"type": ty, "uniqueItems": true}));
        }
    }
    if location == "path" {
        param.insert("required".into(), true.into());
    }
    Value::Object(param)
}

fn schema_of(format: Format, reply: Reply<'_>) -> Value {
    match reply {
        Reply::Object(name) => format.reference(name),
        Reply::Text => json!({"type": "string"}),
    }
}

fn responses(format: Format, op: &Operation<'_>) -> Value {
    let types = match (op.query, op.reply) {
        (Query::Watch, _) => WATCH_REPLY_TYPES,
        (Query::List, _) => LIST_REPLY_TYPES,
        (_, Reply::Text) => &["*/*"][..],
        _ => REPLY_TYPES,
    };
    let schema = schema_of(format, op.reply);
    let mut responses = Map::new();
    for code in std::iter::once(&"200").chain(op.also) {
        let description = match *code {
            "201" => "Created",
            "202" => "Accepted",
            _ => "OK",
        };
        let response = match format {
            Format::V2 => json!({"description": description, "schema": schema}),
            Format::V3 => {
                let content: Map<String, Value> = types
                    .iter()
                    .map(|t| ((*t).to_owned(), json!({"schema": schema})))
                    .collect();
                json!({"description": description, "content": content})
            }
        };
        responses.insert((*code).into(), response);
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(responses)
}

fn operation(format: Format, op: &Operation<'_>, tag: &str) -> Value {
    let (group, version, kind) = op.gvk;
    let mut out = Map::new();
    out.insert("description".into(), op.description.into());
    out.insert("operationId".into(), op.id.into());
    out.insert("tags".into(), json!([tag]));
    let mut params: Vec<Value> = op
        .query
        .params()
        .into_iter()
        .map(|(name, ty, description)| parameter(format, name, "query", ty, description))
        .collect();
    let patch_types = |strategic: bool| -> Vec<&'static str> {
        PATCH_TYPES
            .iter()
            .copied()
            .filter(|t| strategic || !t.contains("strategic"))
            .collect()
    };
    match (format, op.body) {
        (_, Body::None) => {}
        (Format::V2, body) => {
            let (schema, required) = match body {
                Body::Object(name) => (format.reference(name), true),
                Body::DeleteOptions => (format.reference(DELETE_OPTIONS), false),
                Body::Patch { .. } => (format.reference(PATCH), true),
                Body::None => (Value::Null, false),
            };
            let mut param = json!({"name": "body", "in": "body", "schema": schema});
            if required {
                param["required"] = true.into();
            }
            params.insert(0, param);
            if let Body::Patch { strategic } = body {
                out.insert("consumes".into(), json!(patch_types(strategic)));
            }
        }
        (Format::V3, body) => {
            let (types, schema, required) = match body {
                Body::Object(name) => (vec!["*/*"], format.reference(name), true),
                Body::DeleteOptions => (vec!["*/*"], format.reference(DELETE_OPTIONS), false),
                Body::Patch { strategic } => {
                    (patch_types(strategic), format.reference(PATCH), true)
                }
                Body::None => (Vec::new(), Value::Null, false),
            };
            let content: Map<String, Value> = types
                .into_iter()
                .map(|t| (t.to_owned(), json!({"schema": schema})))
                .collect();
            out.insert(
                "requestBody".into(),
                json!({"content": content, "required": required}),
            );
        }
    }
    if format == Format::V2 {
        if !matches!(op.body, Body::Patch { .. }) {
            out.insert("consumes".into(), json!(["*/*"]));
        }
        let produces = match (op.query, op.reply) {
            (Query::Watch, _) => WATCH_REPLY_TYPES,
            (Query::List, _) => LIST_REPLY_TYPES,
            (_, Reply::Text) => &["*/*"][..],
            _ => REPLY_TYPES,
        };
        out.insert("produces".into(), json!(produces));
        out.insert("schemes".into(), json!(["https"]));
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("responses".into(), responses(format, op));
    out.insert("x-kubernetes-action".into(), op.action.into());
    out.insert(
        GVK_EXTENSION.into(),
        json!({"group": group, "kind": kind, "version": version}),
    );
    Value::Object(out)
}

/// Upstream's operation-id spelling of a group: `rbac.authorization.k8s.io` → `RbacAuthorization`,
/// the core group → `Core`, `stable.example.com` → `StableExampleCom`.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let group = group.strip_suffix(".k8s.io").unwrap_or(group);
    group
        .split(['.', '-'])
        .map(capitalize)
        .collect::<Vec<_>>()
        .join("")
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The tag grouping a group-version's operations, e.g. `core_v1`, `rbacAuthorization_v1`.
fn tag(group: &str, version: &str) -> String {
    let camel = group_camel(group);
    let mut chars = camel.chars();
    let lower: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

/// The URL prefix of a group-version: `/api/v1` or `/apis/<group>/<version>`.
pub(crate) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// One path and its operations, collected before rendering.
struct Route<'a> {
    path: String,
    path_params: Vec<(&'static str, &'static str)>,
    operations: Vec<Operation<'a>>,
}

/// Adds every path of `served` to `paths`.
pub(crate) fn add_paths(format: Format, served: &Served, paths: &mut Map<String, Value>) {
    let s = served;
    let prefix = prefix(&s.group, &s.version);
    let gv = format!("{}{}", group_camel(&s.group), capitalize(&s.version));
    let scope = if s.namespaced { "Namespaced" } else { "" };
    let kind = s.kind.as_str();
    let gvk = (s.group.as_str(), s.version.as_str(), kind);
    let plural = s.plural.as_str();
    let (collection, ns_params) = if s.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{plural}"),
            vec![(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            )],
        )
    } else {
        (format!("{prefix}/{plural}"), Vec::new())
    };
    let name_param = ("name", "name of the resource");
    let item_params = {
        let mut p = vec![name_param];
        p.extend(ns_params.iter().copied());
        p
    };
    let item = format!("{collection}/{{name}}");
    let id = |verb: &str, suffix: &str| format!("{verb}{gv}{scope}{kind}{suffix}");
    // Operation ids are built first so the operations can borrow them.
    let ids: Vec<String> = vec![
        id("list", ""),                                 // 0
        id("create", ""),                               // 1
        id("deleteCollection", ""),                     // 2
        id("read", ""),                                 // 3
        id("replace", ""),                              // 4
        id("patch", ""),                                // 5
        id("delete", ""),                               // 6
        format!("list{gv}{kind}ForAllNamespaces"),      // 7
        id("watch", "List"),                            // 8
        id("watch", ""),                                // 9
        format!("watch{gv}{kind}ListForAllNamespaces"), // 10
    ];
    let list_def = s.list_definition.as_deref();
    let def = s.definition.as_str();
    let has = |verb: Verb| s.verbs.contains(&verb);
    let mut routes: Vec<Route<'_>> = Vec::new();

    let mut ops = Vec::new();
    if let (true, Some(list_def)) = (has(Verb::List), list_def) {
        ops.push(Operation {
            method: "get",
            action: "list",
            id: &ids[0],
            description: "list or watch objects of the kind",
            gvk,
            body: Body::None,
            reply: Reply::Object(list_def),
            query: Query::List,
            also: &[],
        });
    }
    if has(Verb::Create) {
        ops.push(Operation {
            method: "post",
            action: "post",
            id: &ids[1],
            description: "create an object of the kind",
            gvk,
            body: Body::Object(def),
            reply: Reply::Object(def),
            query: Query::Write,
            also: &["201", "202"],
        });
    }
    if has(Verb::DeleteCollection) {
        ops.push(Operation {
            method: "delete",
            action: "deletecollection",
            id: &ids[2],
            description: "delete collection of objects of the kind",
            gvk,
            body: Body::DeleteOptions,
            reply: Reply::Object(STATUS),
            query: Query::DeleteCollection,
            also: &[],
        });
    }
    routes.push(Route {
        path: collection.clone(),
        path_params: ns_params.clone(),
        operations: ops,
    });

    let mut ops = Vec::new();
    if has(Verb::Get) {
        ops.push(Operation {
            method: "get",
            action: "get",
            id: &ids[3],
            description: "read the specified object",
            gvk,
            body: Body::None,
            reply: Reply::Object(def),
            query: Query::None,
            also: &[],
        });
    }
    if has(Verb::Update) {
        ops.push(Operation {
            method: "put",
            action: "put",
            id: &ids[4],
            description: "replace the specified object",
            gvk,
            body: Body::Object(def),
            reply: Reply::Object(def),
            query: Query::Write,
            also: &["201"],
        });
    }
    if has(Verb::Patch) {
        ops.push(Operation {
            method: "patch",
            action: "patch",
            id: &ids[5],
            description: "partially update the specified object",
            gvk,
            body: Body::Patch {
                strategic: !s.custom,
            },
            reply: Reply::Object(def),
            query: Query::Patch,
            also: &["201"],
        });
    }
    if has(Verb::Delete) {
        ops.push(Operation {
            method: "delete",
            action: "delete",
            id: &ids[6],
            description: "delete the specified object",
            gvk,
            body: Body::DeleteOptions,
            reply: Reply::Object(STATUS),
            query: Query::Delete,
            also: &["202"],
        });
    }
    routes.push(Route {
        path: item.clone(),
        path_params: item_params.clone(),
        operations: ops,
    });

    if s.namespaced && has(Verb::List) {
        if let Some(list_def) = list_def {
            routes.push(Route {
                path: format!("{prefix}/{plural}"),
                path_params: Vec::new(),
                operations: vec![Operation {
                    method: "get",
                    action: "list",
                    id: &ids[7],
                    description: "list or watch objects of the kind",
                    gvk,
                    body: Body::None,
                    reply: Reply::Object(list_def),
                    query: Query::List,
                    also: &[],
                }],
            });
        }
    }
    if has(Verb::Watch) {
        let watch_prefix = format!("{prefix}/watch");
        let watch_collection = collection.replacen(&prefix, &watch_prefix, 1);
        let watch = |i: usize, action: &'static str, description: &'static str| Operation {
            method: "get",
            action,
            id: &ids[i],
            description,
            gvk,
            body: Body::None,
            reply: Reply::Object(WATCH_EVENT),
            query: Query::Watch,
            also: &[],
        };
        routes.push(Route {
            path: watch_collection.clone(),
            path_params: ns_params.clone(),
            operations: vec![watch(
                8,
                "watchlist",
                "watch individual changes to a list of the kind. deprecated: use the 'watch' parameter with a list operation instead.",
            )],
        });
        routes.push(Route {
            path: format!("{watch_collection}/{{name}}"),
            path_params: item_params.clone(),
            operations: vec![watch(
                9,
                "watch",
                "watch changes to an object of the kind. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.",
            )],
        });
        if s.namespaced {
            routes.push(Route {
                path: format!("{watch_prefix}/{plural}"),
                path_params: Vec::new(),
                operations: vec![watch(
                    10,
                    "watchlist",
                    "watch individual changes to a list of the kind. deprecated: use the 'watch' parameter with a list operation instead.",
                )],
            });
        }
    }

    let tag = tag(&s.group, &s.version);
    for route in routes.into_iter().filter(|r| !r.operations.is_empty()) {
        paths.insert(
            route.path,
            render(format, &route.path_params, &route.operations, &tag),
        );
    }
    for sub in &s.subresources {
        add_subresource(format, s, sub, &item, &item_params, &gv, &tag, paths);
    }
}

fn render(
    format: Format,
    path_params: &[(&str, &str)],
    operations: &[Operation<'_>],
    tag: &str,
) -> Value {
    let mut out = Map::new();
    for op in operations {
        out.insert(op.method.into(), operation(format, op, tag));
    }
    let mut params: Vec<Value> = path_params
        .iter()
        .map(|(name, description)| parameter(format, name, "path", STRING, description))
        .collect();
    params.push(parameter(
        format,
        "pretty",
        "query",
        STRING,
        "If 'true', then the output is pretty printed.",
    ));
    out.insert("parameters".into(), Value::Array(params));
    Value::Object(out)
}

/// Read, replace and patch of the object through a subresource (status, approval, …).
fn read_replace_patch<'a>(
    ids: &'a [String; 3],
    gvk: (&'a str, &'a str, &'a str),
    def: &'a str,
    strategic: bool,
    description: &'a str,
) -> Vec<Operation<'a>> {
    vec![
        Operation {
            method: "get",
            action: "get",
            id: &ids[0],
            description,
            gvk,
            body: Body::None,
            reply: Reply::Object(def),
            query: Query::None,
            also: &[],
        },
        Operation {
            method: "put",
            action: "put",
            id: &ids[1],
            description,
            gvk,
            body: Body::Object(def),
            reply: Reply::Object(def),
            query: Query::Write,
            also: &["201"],
        },
        Operation {
            method: "patch",
            action: "patch",
            id: &ids[2],
            description,
            gvk,
            body: Body::Patch { strategic },
            reply: Reply::Object(def),
            query: Query::Patch,
            also: &["201"],
        },
    ]
}

#[allow(clippy::too_many_arguments)] // one call site; the pieces are computed once by the caller
fn add_subresource(
    format: Format,
    s: &Served,
    sub: &str,
    item: &str,
    item_params: &[(&'static str, &'static str)],
    gv: &str,
    tag: &str,
    paths: &mut Map<String, Value>,
) {
    let scope = if s.namespaced { "Namespaced" } else { "" };
    let kind = s.kind.as_str();
    let suffix = capitalize(sub);
    let id = |verb: &str| format!("{verb}{gv}{scope}{kind}{suffix}");
    let gvk = (s.group.as_str(), s.version.as_str(), kind);
    let path = format!("{item}/{sub}");
    let strategic = !s.custom;
    let single = |method: &'static str,
                  action: &'static str,
                  id: &'_ str,
                  gvk: (&'static str, &'static str, &'static str),
                  def: &'static str| {
        let op = Operation {
            method,
            action,
            id,
            description: "create a subresource of the object",
            gvk,
            body: Body::Object(def),
            reply: Reply::Object(def),
            query: Query::Write,
            also: &["201", "202"],
        };
        render(format, item_params, &[op], tag)
    };
    let connect_kind = |sub: &str| -> Option<&'static str> {
        Some(match (kind, sub) {
            ("Pod", "attach") => "PodAttachOptions",
            ("Pod", "exec") => "PodExecOptions",
            ("Pod", "portforward") => "PodPortForwardOptions",
            ("Pod", "proxy") => "PodProxyOptions",
            ("Service", "proxy") => "ServiceProxyOptions",
            ("Node", "proxy") => "NodeProxyOptions",
            _ => return None,
        })
    };
    let value = match sub {
        "status" | "approval" | "ephemeralcontainers" | "resize" => {
            let ids = [id("read"), id("replace"), id("patch")];
            let description = match sub {
                "status" => "read, replace or patch the status of the specified object",
                _ => "read, replace or patch the specified object through a subresource",
            };
            let ops = read_replace_patch(&ids, gvk, &s.definition, strategic, description);
            render(format, item_params, &ops, tag)
        }
        "scale" => {
            let ids = [id("read"), id("replace"), id("patch")];
            let ops = read_replace_patch(
                &ids,
                ("autoscaling", "v1", "Scale"),
                super::SCALE,
                strategic,
                "read, replace or patch the scale of the specified object",
            );
            render(format, item_params, &ops, tag)
        }
        "finalize" => {
            let replace = id("replace");
            let op = Operation {
                method: "put",
                action: "put",
                id: &replace,
                description: "replace finalize of the specified Namespace",
                gvk,
                body: Body::Object(&s.definition),
                reply: Reply::Object(&s.definition),
                query: Query::Write,
                also: &["201"],
            };
            render(format, item_params, &[op], tag)
        }
        "binding" => single(
            "post",
            "post",
            &id("create"),
            ("", "v1", "Binding"),
            "io.k8s.api.core.v1.Binding",
        ),
        "eviction" => single(
            "post",
            "post",
            &id("create"),
            ("policy", "v1", "Eviction"),
            "io.k8s.api.policy.v1.Eviction",
        ),
        "token" => single(
            "post",
            "post",
            &id("create"),
            ("authentication.k8s.io", "v1", "TokenRequest"),
            "io.k8s.api.authentication.v1.TokenRequest",
        ),
        "log" => {
            let read = id("read");
            let op = Operation {
                method: "get",
                action: "get",
                id: &read,
                description: "read log of the specified Pod",
                gvk,
                body: Body::None,
                reply: Reply::Text,
                query: Query::Log,
                also: &[],
            };
            render(format, item_params, &[op], tag)
        }
        _ => {
            let Some(options) = connect_kind(sub) else {
                return;
            };
            let methods: &[(&str, &str)] = if sub == "proxy" {
                &[
                    ("delete", "Delete"),
                    ("get", "Get"),
                    ("head", "Head"),
                    ("options", "Options"),
                    ("patch", "Patch"),
                    ("post", "Post"),
                    ("put", "Put"),
                ]
            } else {
                &[("get", "Get"), ("post", "Post")]
            };
            for with_path in [false, true] {
                if with_path && sub != "proxy" {
                    continue;
                }
                let tail = if with_path { "WithPath" } else { "" };
                let ids: Vec<String> = methods
                    .iter()
                    .map(|(_, m)| format!("connect{gv}{m}{scope}{kind}{suffix}{tail}"))
                    .collect();
                let ops: Vec<Operation<'_>> = methods
                    .iter()
                    .zip(&ids)
                    .map(|((method, _), id)| Operation {
                        method,
                        action: "connect",
                        id,
                        description: "connect to the specified object through a subresource",
                        gvk: (s.group.as_str(), s.version.as_str(), options),
                        body: Body::None,
                        reply: Reply::Text,
                        query: Query::None,
                        also: &[],
                    })
                    .collect();
                let mut params = item_params.to_vec();
                let full_path = if with_path {
                    params.push(("path", "path to the resource"));
                    format!("{path}/{{path}}")
                } else {
                    path.clone()
                };
                paths.insert(full_path, render(format, &params, &ops, tag));
            }
            return;
        }
    };
    paths.insert(path, value);
}

/// A discovery endpoint: one `get` with no kind.
fn discovery_operation(format: Format, id: &str, definition: &str, tag: &str) -> Value {
    let schema = format.reference(definition);
    let ok = match format {
        Format::V2 => json!({"description": "OK", "schema": schema}),
        Format::V3 => {
            let content: Map<String, Value> = REPLY_TYPES
                .iter()
                .map(|t| ((*t).to_owned(), json!({"schema": schema})))
                .collect();
            json!({"description": "OK", "content": content})
        }
    };
    let mut op = json!({
        "description": "get available resources",
        "operationId": id,
        "tags": [tag],
        "responses": {"200": ok, "401": {"description": "Unauthorized"}},
    });
    if format == Format::V2 {
        op["consumes"] = json!(REPLY_TYPES);
        op["produces"] = json!(REPLY_TYPES);
        op["schemes"] = json!(["https"]);
    }
    json!({"get": op})
}

/// The discovery endpoints of the whole server (`/api/`, `/apis/`, `/version/`): only the v2
/// document has them (upstream's v3 publishes them as separate documents kubectl never reads).
pub(crate) fn add_root_discovery(format: Format, paths: &mut Map<String, Value>) {
    paths.insert(
        "/api/".into(),
        discovery_operation(
            format,
            "getCoreAPIVersions",
            "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions",
            "core",
        ),
    );
    paths.insert(
        "/apis/".into(),
        discovery_operation(
            format,
            "getAPIVersions",
            "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList",
            "apis",
        ),
    );
    paths.insert(
        "/version/".into(),
        discovery_operation(
            format,
            "getCodeVersion",
            "io.k8s.apimachinery.pkg.version.Info",
            "version",
        ),
    );
}

/// The discovery endpoints of one group-version: its resource list and (v2, named groups) its
/// group.
pub(crate) fn add_discovery(
    format: Format,
    group: &str,
    version: &str,
    paths: &mut Map<String, Value>,
) {
    let gv = format!("{}{}", group_camel(group), capitalize(version));
    let tag = tag(group, version);
    paths.insert(
        format!("{}/", prefix(group, version)),
        discovery_operation(
            format,
            &format!("get{gv}APIResources"),
            super::API_RESOURCE_LIST,
            &tag,
        ),
    );
    if format == Format::V2 && !group.is_empty() {
        let group_tag = tag.split('_').next().unwrap_or_default().to_owned();
        paths.insert(
            format!("/apis/{group}/"),
            discovery_operation(
                format,
                &format!("get{}APIGroup", group_camel(group)),
                "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup",
                &group_tag,
            ),
        );
    }
}
