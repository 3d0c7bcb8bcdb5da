//! Columns and cells of the built-in kinds, as upstream's `pkg/printers/internalversion`.
//!
//! Objects are read as the versioned JSON the API stores; where upstream reads the internal
//! type, the v1 → internal conversion and defaulting are applied by hand (a missing
//! `spec.replicas` counts as 1, a missing service type as `ClusterIP`, `podIP` stands in
//! for an empty `podIPs`, and so on).

use std::collections::BTreeSet;

use serde_json::Value;

use super::time::{human_duration, since, timestamp, Nanos};
use super::{Column, Row, RowCondition, CREATION_TIMESTAMP_DESCRIPTION, NAME_DESCRIPTION};
use crate::selector::{format_label_selector, format_labels, Selector};
use crate::well_known;

/// How one kind is printed.
pub(super) struct Printer {
    pub(super) columns: fn() -> Vec<Column>,
    pub(super) row: fn(&Value, Nanos) -> Row,
}

/// The printer of a built-in kind, or `None` for upstream's default table.
pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    macro_rules! p {
        ($columns:ident, $row:ident) => {
            Printer {
                columns: $columns,
                row: $row,
            }
        };
    }
    Some(match (group, kind) {
        ("", "Pod") => p!(pod_columns, pod_row),
        ("", "PodTemplate") => p!(pod_template_columns, pod_template_row),
        ("", "ReplicationController") => p!(replica_set_columns, replication_controller_row),
        ("", "Service") => p!(service_columns, service_row),
        ("", "Endpoints") => p!(endpoints_columns, endpoints_row),
        ("", "Node") => p!(node_columns, node_row),
        ("", "Event") => p!(event_columns, event_row),
        ("events.k8s.io", "Event") => p!(event_columns, events_v1_row),
        ("", "Namespace") => p!(namespace_columns, namespace_row),
        ("", "Secret") => p!(secret_columns, secret_row),
        ("", "ServiceAccount") => p!(service_account_columns, service_account_row),
        ("", "PersistentVolume") => p!(pv_columns, pv_row),
        ("", "PersistentVolumeClaim") => p!(pvc_columns, pvc_row),
        ("", "ComponentStatus") => p!(component_status_columns, component_status_row),
        ("", "ConfigMap") => p!(config_map_columns, config_map_row),
        ("", "ResourceQuota") => p!(resource_quota_columns, resource_quota_row),
        ("apps", "Deployment") => p!(deployment_columns, deployment_row),
        ("apps", "ReplicaSet") => p!(replica_set_columns, replica_set_row),
        ("apps", "DaemonSet") => p!(daemon_set_columns, daemon_set_row),
        ("apps", "StatefulSet") => p!(stateful_set_columns, stateful_set_row),
        ("apps", "ControllerRevision") => p!(controller_revision_columns, controller_revision_row),
        ("batch", "Job") => p!(job_columns, job_row),
        ("batch", "CronJob") => p!(cron_job_columns, cron_job_row),
        ("autoscaling", "HorizontalPodAutoscaler") => p!(hpa_columns, hpa_row),
        ("policy", "PodDisruptionBudget") => p!(pdb_columns, pdb_row),
        ("networking.k8s.io", "Ingress") => p!(ingress_columns, ingress_row),
        ("networking.k8s.io", "IngressClass") => p!(ingress_class_columns, ingress_class_row),
        ("networking.k8s.io", "NetworkPolicy") => p!(network_policy_columns, network_policy_row),
        ("networking.k8s.io", "ServiceCIDR") => p!(service_cidr_columns, service_cidr_row),
        ("networking.k8s.io", "IPAddress") => p!(ip_address_columns, ip_address_row),
        ("discovery.k8s.io", "EndpointSlice") => p!(endpoint_slice_columns, endpoint_slice_row),
        ("rbac.authorization.k8s.io", "RoleBinding") => p!(role_binding_columns, binding_row),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            p!(cluster_role_binding_columns, binding_row)
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => p!(csr_columns, csr_row),
        ("coordination.k8s.io", "Lease") => p!(lease_columns, lease_row),
        ("storage.k8s.io", "StorageClass") => p!(storage_class_columns, storage_class_row),
        ("storage.k8s.io", "VolumeAttributesClass") => p!(vac_columns, vac_row),
        ("storage.k8s.io", "VolumeAttachment") => {
            p!(volume_attachment_columns, volume_attachment_row)
        }
        ("storage.k8s.io", "CSINode") => p!(csi_node_columns, csi_node_row),
        ("storage.k8s.io", "CSIDriver") => p!(csi_driver_columns, csi_driver_row),
        ("storage.k8s.io", "CSIStorageCapacity") => {
            p!(csi_storage_capacity_columns, csi_storage_capacity_row)
        }
        ("scheduling.k8s.io", "PriorityClass") => p!(priority_class_columns, priority_class_row),
        ("node.k8s.io", "RuntimeClass") => p!(runtime_class_columns, runtime_class_row),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            p!(webhook_columns, webhook_row)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            p!(validating_policy_columns, validating_policy_row)
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => {
            p!(mutating_policy_columns, mutating_policy_row)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding")
        | ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding") => {
            p!(policy_binding_columns, policy_binding_row)
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => p!(flow_schema_columns, flow_schema_row),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
            p!(priority_level_columns, priority_level_row)
        }
        ("resource.k8s.io", "DeviceClass") | ("resource.k8s.io", "ResourceClaimTemplate") => {
            p!(name_age_columns, name_age_row)
        }
        ("resource.k8s.io", "ResourceClaim") => p!(resource_claim_columns, resource_claim_row),
        ("resource.k8s.io", "ResourceSlice") => p!(resource_slice_columns, resource_slice_row),
        ("apiregistration.k8s.io", "APIService") => p!(api_service_columns, api_service_row),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading JSON.

fn get<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|v| !v.is_null())
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    get(v, pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, pointer: &str) -> i64 {
    get(v, pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn b(v: &Value, pointer: &str) -> bool {
    get(v, pointer).and_then(Value::as_bool).unwrap_or(false)
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    get(v, pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Entries of a map or items of a list.
fn count(v: &Value, pointer: &str) -> i64 {
    match get(v, pointer) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

fn name(v: &Value) -> Value {
    Value::from(s(v, "/metadata/name"))
}

fn age(v: &Value, now: Nanos) -> Value {
    Value::from(since(
        timestamp(v.pointer("/metadata/creationTimestamp")),
        now,
    ))
}

fn deleting(v: &Value) -> bool {
    get(v, "/metadata/deletionTimestamp").is_some()
}

fn or<'a>(text: &'a str, default: &'a str) -> &'a str {
    if text.is_empty() {
        default
    } else {
        text
    }
}

/// A string field that may be absent, with upstream's placeholder.
fn opt_s<'a>(v: &'a Value, pointer: &str, placeholder: &'a str) -> &'a str {
    get(v, pointer)
        .and_then(Value::as_str)
        .unwrap_or(placeholder)
}

/// Upstream's `printBoolPtr`: `True`, `False` or `<unset>`.
fn bool_ptr(v: &Value, pointer: &str) -> &'static str {
    match get(v, pointer).and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// The desired replicas of a workload: v1 defaulting makes an absent count 1.
fn replicas(v: &Value) -> i64 {
    get(v, "/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn condition<'a>(v: &'a Value, pointer: &str, kind: &str) -> Option<&'a Value> {
    arr(v, pointer).iter().find(|c| s(c, "/type") == kind)
}

/// Upstream's `layoutContainerCells`: names and images joined by `,`.
fn containers(v: &Value, pointer: &str) -> (Value, Value) {
    let list = arr(v, pointer);
    let names: Vec<&str> = list.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = list.iter().map(|c| s(c, "/image")).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

/// Upstream's `listWithMoreString`: up to 3 items, then `+ N more...`, or `<unset>`.
fn list_with_more(items: &[String], max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if items.len() > max {
        return format!("{shown} + {} more...", items.len() - max);
    }
    or(&shown, "<unset>").to_owned()
}

fn col(name: &str, kind: &str, description: &str) -> Column {
    Column::new(name, kind, description)
}

fn name_col() -> Column {
    Column::new("Name", "string", NAME_DESCRIPTION).format("name")
}

fn age_col() -> Column {
    Column::new("Age", "string", CREATION_TIMESTAMP_DESCRIPTION)
}

const CONTAINERS_DESCRIPTION: &str = "Names of each container in the template.";
const IMAGES_DESCRIPTION: &str = "Images referenced by each container in the template.";

fn container_cols(selector: Option<&str>) -> Vec<Column> {
    let mut cols = vec![
        col("Containers", "string", CONTAINERS_DESCRIPTION).wide(),
        col("Images", "string", IMAGES_DESCRIPTION).wide(),
    ];
    if let Some(description) = selector {
        cols.push(col("Selector", "string", description).wide());
    }
    cols
}

// ---------------------------------------------------------------------------------------------
// Pods.

fn pod_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        age_col(),
        col("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
        col("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName.").wide(),
        col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.").wide(),
        col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
    ]
}

fn later(a: Option<Nanos>, b: Option<Nanos>) -> Option<Nanos> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// When the container's previous run ended, if it ended.
fn last_termination(status: &Value) -> Option<Nanos> {
    get(status, "/lastState/terminated").and_then(|t| timestamp(t.get("finishedAt")))
}

fn exit_reason(terminated: &Value, prefix: &str) -> String {
    let reason = s(terminated, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = i(terminated, "/signal");
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", i(terminated, "/exitCode"))
    }
}

fn pod_row(pod: &Value, now: Nanos) -> Row {
    let phase = s(pod, "/status/phase");
    let mut reason = or(s(pod, "/status/reason"), phase).to_owned();
    let conditions = arr(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }
    let mut row_conditions = Vec::new();
    let completed = |reason: &str, message: &str| RowCondition {
        kind: "Completed".to_owned(),
        status: "True".to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
    };
    match phase {
        "Succeeded" => row_conditions.push(completed(
            "Succeeded",
            "The pod has completed successfully.",
        )),
        "Failed" => row_conditions.push(completed("Failed", "The pod failed.")),
        _ => {}
    }

    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
    };
    let total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let mut initializing = false;
    for (index, status) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        let count = i(status, "/restartCount");
        restarts += count;
        let ended = last_termination(status);
        last_restart = later(last_restart, ended);
        let sidecar = restartable(s(status, "/name"));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, ended);
        }
        let terminated = get(status, "/state/terminated");
        let waiting = get(status, "/state/waiting");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && b(status, "/started") {
            if b(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        if let Some(terminated) = terminated {
            reason = exit_reason(terminated, "Init:");
        } else if let Some(w) = waiting.filter(|w| {
            let r = s(w, "/reason");
            !r.is_empty() && r != "PodInitializing"
        }) {
            reason = format!("Init:{}", s(w, "/reason"));
        } else {
            reason = format!("Init:{index}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .find(|c| s(c, "/type") == "Initialized")
        .is_some_and(|c| s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(status, "/restartCount");
            last_restart = later(last_restart, last_termination(status));
            let waiting = get(status, "/state/waiting");
            let terminated = get(status, "/state/terminated");
            if let Some(w) = waiting.filter(|w| !s(w, "/reason").is_empty()) {
                reason = s(w, "/reason").to_owned();
            } else if let Some(t) = terminated {
                reason = exit_reason(t, "");
            } else if b(status, "/ready") && get(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_owned();
        }
    }

    if deleting(pod) && s(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_owned();
    }

    let mut restarts_text = restarts.to_string();
    if restarts != 0 {
        if let Some(at) = last_restart {
            restarts_text = format!("{restarts} ({} ago)", human_duration(now - at));
        }
    }

    let pod_ip = get(pod, "/status/podIPs/0/ip")
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(pod, "/status/podIP"));
    let gates = arr(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let true_conditions = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == s(g, "/conditionType"))
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{true_conditions}/{}", gates.len())
    };
    Row {
        cells: vec![
            name(pod),
            Value::from(format!("{ready}/{total}")),
            Value::from(reason),
            Value::from(restarts_text),
            age(pod, now),
            Value::from(or(pod_ip, "<none>")),
            Value::from(or(s(pod, "/spec/nodeName"), "<none>")),
            Value::from(or(s(pod, "/status/nominatedNodeName"), "<none>")),
            Value::from(readiness_gates),
        ],
        conditions: row_conditions,
    }
}

fn pod_template_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Containers", "string", CONTAINERS_DESCRIPTION),
        col("Images", "string", IMAGES_DESCRIPTION),
        col("Pod Labels", "string", "The labels for the pod template."),
    ]
}

fn pod_template_row(v: &Value, _now: Nanos) -> Row {
    let (names, images) = containers(v, "/template/spec/containers");
    Row::new(vec![
        name(v),
        names,
        images,
        Value::from(format_labels(get(v, "/template/metadata/labels"))),
    ])
}

// ---------------------------------------------------------------------------------------------
// Workloads.

fn deployment_columns() -> Vec<Column> {
    let mut cols = vec![
        name_col(),
        col("Ready", "string", "Number of the pod with ready state"),
        col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        age_col(),
    ];
    cols.extend(container_cols(Some("Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.")));
    cols
}

/// A `LabelSelector` printed as upstream's `selector.String()` (`<invalid>` when invalid).
fn selector_string(v: &Value, pointer: &str) -> String {
    match Selector::from_label_selector(get(v, pointer).unwrap_or(&Value::Null)) {
        Ok(selector) => selector.to_string(),
        Err(_) => "<invalid>".to_owned(),
    }
}

fn deployment_row(v: &Value, now: Nanos) -> Row {
    let (names, images) = containers(v, "/spec/template/spec/containers");
    Row::new(vec![
        name(v),
        Value::from(format!("{}/{}", i(v, "/status/readyReplicas"), replicas(v))),
        Value::from(i(v, "/status/updatedReplicas")),
        Value::from(i(v, "/status/availableReplicas")),
        age(v, now),
        names,
        images,
        Value::from(selector_string(v, "/spec/selector")),
    ])
}

fn replica_set_columns() -> Vec<Column> {
    let mut cols = vec![
        name_col(),
        col(
            "Desired",
            "integer",
            "Replicas is the number of desired replicas.",
        ),
        col(
            "Current",
            "integer",
            "Replicas is the most recently observed number of replicas.",
        ),
        col(
            "Ready",
            "integer",
            "The number of ready replicas for this replica set.",
        ),
        age_col(),
    ];
    cols.extend(container_cols(Some(
        "Selector is a label query over pods that should match the replica count.",
    )));
    cols
}

fn replica_set_row(v: &Value, now: Nanos) -> Row {
    let (names, images) = containers(v, "/spec/template/spec/containers");
    Row::new(vec![
        name(v),
        Value::from(replicas(v)),
        Value::from(i(v, "/status/replicas")),
        Value::from(i(v, "/status/readyReplicas")),
        age(v, now),
        names,
        images,
        Value::from(format_label_selector(
            get(v, "/spec/selector").unwrap_or(&Value::Null),
        )),
    ])
}

fn replication_controller_row(v: &Value, now: Nanos) -> Row {
    let (names, images) = containers(v, "/spec/template/spec/containers");
    Row::new(vec![
        name(v),
        Value::from(replicas(v)),
        Value::from(i(v, "/status/replicas")),
        Value::from(i(v, "/status/readyReplicas")),
        age(v, now),
        names,
        images,
        Value::from(format_labels(get(v, "/spec/selector"))),
    ])
}

fn daemon_set_columns() -> Vec<Column> {
    let mut cols = vec![
        name_col(),
        col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
        col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
        col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
        col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
        col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
        col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
        age_col(),
    ];
    cols.extend(container_cols(Some(
        "A label query over pods that are managed by the daemon set.",
    )));
    cols
}

fn daemon_set_row(v: &Value, now: Nanos) -> Row {
    let (names, images) = containers(v, "/spec/template/spec/containers");
    Row::new(vec![
        name(v),
        Value::from(i(v, "/status/desiredNumberScheduled")),
        Value::from(i(v, "/status/currentNumberScheduled")),
        Value::from(i(v, "/status/numberReady")),
        Value::from(i(v, "/status/updatedNumberScheduled")),
        Value::from(i(v, "/status/numberAvailable")),
        Value::from(format_labels(get(v, "/spec/template/spec/nodeSelector"))),
        age(v, now),
        names,
        images,
        Value::from(format_label_selector(
            get(v, "/spec/selector").unwrap_or(&Value::Null),
        )),
    ])
}

fn stateful_set_columns() -> Vec<Column> {
    let mut cols = vec![
        name_col(),
        col("Ready", "string", "Number of the pod with ready state"),
        age_col(),
    ];
    cols.extend(container_cols(None));
    cols
}

fn stateful_set_row(v: &Value, now: Nanos) -> Row {
    let (names, images) = containers(v, "/spec/template/spec/containers");
    Row::new(vec![
        name(v),
        Value::from(format!("{}/{}", i(v, "/status/readyReplicas"), replicas(v))),
        age(v, now),
        names,
        images,
    ])
}

fn controller_revision_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Controller", "string", "Controller of the object"),
        col(
            "Revision",
            "string",
            "Revision indicates the revision of the state represented by Data.",
        ),
        age_col(),
    ]
}

fn controller_revision_row(v: &Value, now: Nanos) -> Row {
    let controller = arr(v, "/metadata/ownerReferences")
        .iter()
        .find(|r| b(r, "/controller"))
        .map(|r| {
            let api_version = s(r, "/apiVersion");
            let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = s(r, "/kind");
            let group_kind = if group.is_empty() {
                kind.to_owned()
            } else {
                format!("{kind}.{group}")
            };
            format!("{}/{}", group_kind.to_lowercase(), s(r, "/name"))
        })
        .unwrap_or_else(|| "<none>".to_owned());
    Row::new(vec![
        name(v),
        Value::from(controller),
        Value::from(i(v, "/revision")),
        age(v, now),
    ])
}

fn job_columns() -> Vec<Column> {
    let mut cols = vec![
        name_col(),
        col("Status", "string", "Status of the job."),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded.",
        ),
        col("Duration", "string", "Time required to complete the job."),
        age_col(),
    ];
    cols.extend(container_cols(Some(
        "A label query over pods that should match the pod count.",
    )));
    cols
}

fn job_condition(v: &Value, kind: &str) -> bool {
    condition(v, "/status/conditions", kind).is_some_and(|c| s(c, "/status") == "True")
}

fn job_row(v: &Value, now: Nanos) -> Row {
    let succeeded = i(v, "/status/succeeded");
    let completions = match get(v, "/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = i(v, "/spec/parallelism");
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = timestamp(v.pointer("/status/startTime"));
    let completion = timestamp(v.pointer("/status/completionTime"));
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let status = if job_condition(v, "Complete") {
        "Complete"
    } else if job_condition(v, "Failed") {
        "Failed"
    } else if deleting(v) {
        "Terminating"
    } else if job_condition(v, "Suspended") {
        "Suspended"
    } else if job_condition(v, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(v, "/spec/template/spec/containers");
    Row::new(vec![
        name(v),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        age(v, now),
        names,
        images,
        Value::from(format_label_selector(
            get(v, "/spec/selector").unwrap_or(&Value::Null),
        )),
    ])
}

fn cron_job_columns() -> Vec<Column> {
    let mut cols = vec![
        name_col(),
        col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
        col("Active", "integer", "A list of pointers to currently running jobs."),
        col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
        age_col(),
    ];
    cols.extend(container_cols(Some(
        "A label query over pods that should match the pod count.",
    )));
    cols
}

fn cron_job_row(v: &Value, now: Nanos) -> Row {
    let last_schedule = match get(v, "/status/lastScheduleTime") {
        Some(t) => since(timestamp(Some(t)), now),
        None => "<none>".to_owned(),
    };
    let (names, images) = containers(v, "/spec/jobTemplate/spec/template/spec/containers");
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/schedule")),
        Value::from(opt_s(v, "/spec/timeZone", "<none>")),
        Value::from(bool_ptr(v, "/spec/suspend")),
        Value::from(count(v, "/status/active")),
        Value::from(last_schedule),
        age(v, now),
        names,
        images,
        Value::from(format_label_selector(
            get(v, "/spec/jobTemplate/spec/selector").unwrap_or(&Value::Null),
        )),
    ])
}

fn hpa_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Reference", "string", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
        col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
        col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
        col("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
        col("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler."),
        age_col(),
    ]
}

/// One metric of an HPA (autoscaling/v2 shape), as upstream's `formatHPAMetrics` prints it.
fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    let unknown = "<unknown>".to_owned();
    let quantity = |v: Option<&Value>| -> Option<String> {
        v.filter(|v| !v.is_null()).map(|q| match q {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let current = |source: &str, field: &str| -> Option<String> {
        quantity(status.and_then(|st| st.pointer(&format!("/{source}/current/{field}"))))
    };
    match s(spec, "/type") {
        kind @ ("External" | "Object") => {
            let source = if kind == "External" {
                "external"
            } else {
                "object"
            };
            let target = get(spec, &format!("/{source}/target/averageValue"));
            if target.is_some() {
                format!(
                    "{}/{} (avg)",
                    current(source, "averageValue").unwrap_or(unknown),
                    quantity(target).unwrap_or_default()
                )
            } else {
                format!(
                    "{}/{}",
                    current(source, "value").unwrap_or(unknown),
                    quantity(get(spec, &format!("/{source}/target/value"))).unwrap_or_default()
                )
            }
        }
        "Pods" => format!(
            "{}/{}",
            current("pods", "averageValue").unwrap_or(unknown),
            quantity(get(spec, "/pods/target/averageValue")).unwrap_or_default()
        ),
        kind @ ("Resource" | "ContainerResource") => {
            let source = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let resource_name = s(spec, &format!("/{source}/name"));
            if let Some(target) = get(spec, &format!("/{source}/target/averageValue")) {
                format!(
                    "{resource_name}: {}/{}",
                    current(source, "averageValue").unwrap_or(unknown),
                    quantity(Some(target)).unwrap_or_default()
                )
            } else {
                let now = status
                    .and_then(|st| get(st, &format!("/{source}/current/averageUtilization")))
                    .and_then(Value::as_i64)
                    .map(|u| format!("{u}%"))
                    .unwrap_or(unknown);
                let target = get(spec, &format!("/{source}/target/averageUtilization"))
                    .and_then(Value::as_i64)
                    .map(|u| format!("{u}%"))
                    .unwrap_or_else(|| "<auto>".to_owned());
                format!("{resource_name}: {now}/{target}")
            }
        }
        _ => "<unknown type>".to_owned(),
    }
}

fn hpa_row(v: &Value, now: Nanos) -> Row {
    let reference = format!(
        "{}/{}",
        s(v, "/spec/scaleTargetRef/kind"),
        s(v, "/spec/scaleTargetRef/name")
    );
    let specs = arr(v, "/spec/metrics");
    let statuses = arr(v, "/status/currentMetrics");
    let targets = if specs.is_empty() {
        // autoscaling/v1 keeps one CPU target outside the metrics list.
        match get(v, "/spec/targetCPUUtilizationPercentage").and_then(Value::as_i64) {
            Some(target) => {
                let current = get(v, "/status/currentCPUUtilizationPercentage")
                    .and_then(Value::as_i64)
                    .map(|u| format!("{u}%"))
                    .unwrap_or_else(|| "<unknown>".to_owned());
                format!("cpu: {current}/{target}%")
            }
            None => "<none>".to_owned(),
        }
    } else {
        let list: Vec<String> = specs
            .iter()
            .enumerate()
            .map(|(n, spec)| hpa_metric(spec, statuses.get(n)))
            .collect();
        let shown = list.iter().take(2).cloned().collect::<Vec<_>>().join(", ");
        if list.len() > 2 {
            format!("{shown} + {} more...", list.len() - 2)
        } else {
            shown
        }
    };
    let min_pods = get(v, "/spec/minReplicas")
        .and_then(Value::as_i64)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "<unset>".to_owned());
    Row::new(vec![
        name(v),
        Value::from(reference),
        Value::from(targets),
        Value::from(min_pods),
        Value::from(i(v, "/spec/maxReplicas")),
        Value::from(i(v, "/status/currentReplicas")),
        age(v, now),
    ])
}

fn pdb_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        age_col(),
    ]
}

/// An int-or-string as upstream's `IntOrString.String()`, `N/A` when absent.
fn int_or_string(v: &Value, pointer: &str) -> String {
    match get(v, pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "N/A".to_owned(),
    }
}

fn pdb_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(int_or_string(v, "/spec/minAvailable")),
        Value::from(int_or_string(v, "/spec/maxUnavailable")),
        Value::from(i(v, "/status/disruptionsAllowed")),
        age(v, now),
    ])
}

// ---------------------------------------------------------------------------------------------
// Networking.

fn service_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
        col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
        col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        col("Port(s)", "string", "The list of ports that are exposed by this service."),
        age_col(),
        col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.").wide(),
    ]
}

/// Load-balancer ingress addresses: IPs or hostnames, sorted and de-duplicated.
fn load_balancer_addresses(v: &Value, pointer: &str) -> String {
    let set: BTreeSet<&str> = arr(v, pointer)
        .iter()
        .filter_map(|ing| {
            let ip = s(ing, "/ip");
            let host = s(ing, "/hostname");
            (!ip.is_empty())
                .then_some(ip)
                .or((!host.is_empty()).then_some(host))
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn service_row(v: &Value, now: Nanos) -> Row {
    let kind = or(s(v, "/spec/type"), "ClusterIP");
    let cluster_ip = get(v, "/spec/clusterIPs/0")
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(v, "/spec/clusterIP"));
    let external_ips: Vec<&str> = arr(v, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match kind {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_owned()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_addresses(v, "/status/loadBalancer/ingress");
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|x| !x.is_empty()).collect();
                all.extend(external_ips.iter());
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_owned()
            }
        }
        "ExternalName" => s(v, "/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    };
    let ports: Vec<String> = arr(v, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = or(s(p, "/protocol"), "TCP");
            let node_port = i(p, "/nodePort");
            if node_port > 0 {
                format!("{}:{node_port}/{protocol}", i(p, "/port"))
            } else {
                format!("{}/{protocol}", i(p, "/port"))
            }
        })
        .collect();
    Row::new(vec![
        name(v),
        Value::from(kind),
        Value::from(or(cluster_ip, "<none>")),
        Value::from(external),
        Value::from(or(&ports.join(","), "<none>").to_owned()),
        age(v, now),
        Value::from(format_labels(get(v, "/spec/selector"))),
    ])
}

fn endpoints_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets.",
        ),
        age_col(),
    ]
}

/// IPv6 addresses get brackets in `host:port`, as Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn endpoints_row(v: &Value, now: Nanos) -> Row {
    let subsets = arr(v, "/subsets");
    let text = if subsets.is_empty() {
        "<none>".to_owned()
    } else {
        let max = 3;
        let mut list = Vec::new();
        let mut count = 0;
        for subset in subsets {
            let addresses = arr(subset, "/addresses");
            let ports = arr(subset, "/ports");
            if ports.is_empty() {
                count += addresses.len();
                for a in addresses {
                    if list.len() == max {
                        break;
                    }
                    list.push(s(a, "/ip").to_owned());
                }
                continue;
            }
            for port in ports {
                count += addresses.len();
                for a in addresses {
                    if list.len() == max {
                        break;
                    }
                    list.push(join_host_port(s(a, "/ip"), i(port, "/port")));
                }
            }
        }
        let joined = list.join(",");
        if count > max {
            format!("{joined} + {} more...", count - max)
        } else {
            joined
        }
    };
    Row::new(vec![name(v), Value::from(text), age(v, now)])
}

fn endpoint_slice_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        col(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        col(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
        ),
        age_col(),
    ]
}

fn endpoint_slice_row(v: &Value, now: Nanos) -> Row {
    let ports: Vec<String> = arr(v, "/ports")
        .iter()
        .map(|p| match get(p, "/port").and_then(Value::as_i64) {
            Some(port) => port.to_string(),
            None => get(p, "/name")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_owned(),
        })
        .collect();
    let addresses: Vec<String> = arr(v, "/endpoints")
        .iter()
        .flat_map(|e| arr(e, "/addresses").iter())
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect();
    Row::new(vec![
        name(v),
        Value::from(s(v, "/addressType")),
        Value::from(list_with_more(&ports, 3)),
        Value::from(list_with_more(&addresses, 3)),
        age(v, now),
    ])
}

fn ingress_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", "Ports of TLS configurations that open"),
        age_col(),
    ]
}

fn ingress_row(v: &Value, now: Nanos) -> Row {
    let rules = arr(v, "/spec/rules");
    let max = 3;
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == max {
            more = true;
        }
        let host = s(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_owned()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - max)
    } else {
        hosts.join(",")
    };
    let ports = if arr(v, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    Row::new(vec![
        name(v),
        Value::from(opt_s(v, "/spec/ingressClassName", "<none>")),
        Value::from(hosts),
        Value::from(load_balancer_addresses(v, "/status/loadBalancer/ingress")),
        Value::from(ports),
        age(v, now),
    ])
}

fn ingress_class_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        age_col(),
    ]
}

fn ingress_class_row(v: &Value, now: Nanos) -> Row {
    let parameters = match get(v, "/spec/parameters") {
        None => "<none>".to_owned(),
        Some(p) => {
            let mut text = s(p, "/kind").to_owned();
            if let Some(group) = get(p, "/apiGroup").and_then(Value::as_str) {
                text = format!("{text}.{group}");
            }
            format!("{text}/{}", s(p, "/name"))
        }
    };
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/controller")),
        Value::from(parameters),
        age(v, now),
    ])
}

fn network_policy_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Pod-Selector",
            "string",
            "Selects the pods to which this NetworkPolicy object applies.",
        ),
        age_col(),
    ]
}

fn network_policy_row(v: &Value, now: Nanos) -> Row {
    // The pod selector is not a pointer upstream: an absent one is empty and selects everything.
    let selector = get(v, "/spec/podSelector")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    Row::new(vec![
        name(v),
        Value::from(format_label_selector(&selector)),
        age(v, now),
    ])
}

fn service_cidr_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("CIDRs", "string", "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs."),
        age_col(),
    ]
}

fn service_cidr_row(v: &Value, now: Nanos) -> Row {
    let cidrs: Vec<&str> = arr(v, "/spec/cidrs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Row::new(vec![name(v), Value::from(cidrs.join(",")), age(v, now)])
}

fn ip_address_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "ParentRef",
            "string",
            "ParentRef references the resource that an IPAddress is attached to.",
        ),
    ]
}

fn ip_address_row(v: &Value, now: Nanos) -> Row {
    let parent = match get(v, "/spec/parentRef") {
        None => "<none>".to_owned(),
        Some(p) => {
            let resource = s(p, "/resource");
            let group = s(p, "/group");
            let mut text = if group.is_empty() {
                resource.to_lowercase()
            } else {
                format!("{resource}.{group}").to_lowercase()
            };
            let namespace = s(p, "/namespace");
            if !namespace.is_empty() {
                text = format!("{text}/{namespace}");
            }
            format!("{text}/{}", s(p, "/name"))
        }
    };
    // Upstream prints the age too, although it declares only two columns.
    Row::new(vec![name(v), Value::from(parent), age(v, now)])
}

// ---------------------------------------------------------------------------------------------
// Cluster.

fn node_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        age_col(),
        col("Version", "string", "Kubelet Version reported by the node."),
        col("Internal-IP", "string", "List of addresses reachable to the node.").wide(),
        col("External-IP", "string", "List of addresses reachable to the node.").wide(),
        col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
        col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
        col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
    ]
}

fn node_row(v: &Value, now: Nanos) -> Row {
    // Upstream keeps the last condition of each type.
    let ready = arr(v, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if s(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if b(v, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = get(v, "/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("");
            if let Some(role) = key.strip_prefix(well_known::LABEL_NODE_ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role.to_owned());
                }
            } else if key == "kubernetes.io/role" && !value.is_empty() {
                roles.insert(value.to_owned());
            }
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    let address = |kind: &str| {
        arr(v, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == kind)
            .map(|a| s(a, "/address"))
            .unwrap_or("<none>")
            .to_owned()
    };
    Row::new(vec![
        name(v),
        Value::from(status.join(",")),
        Value::from(or(&roles, "<none>").to_owned()),
        age(v, now),
        Value::from(s(v, "/status/nodeInfo/kubeletVersion")),
        Value::from(address("InternalIP")),
        Value::from(address("ExternalIP")),
        Value::from(or(s(v, "/status/nodeInfo/osImage"), "<unknown>")),
        Value::from(or(s(v, "/status/nodeInfo/kernelVersion"), "<unknown>")),
        Value::from(or(
            s(v, "/status/nodeInfo/containerRuntimeVersion"),
            "<unknown>",
        )),
    ])
}

fn namespace_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", "The status of the namespace"),
        age_col(),
    ]
}

fn namespace_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(s(v, "/status/phase")),
        age(v, now),
    ])
}

fn component_status_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", "Status of the component conditions"),
        col("Message", "string", "Message of the component conditions"),
        col("Error", "string", "Error of the component conditions"),
    ]
}

fn component_status_row(v: &Value, _now: Nanos) -> Row {
    let healthy = condition(v, "/conditions", "Healthy");
    let status = match healthy {
        Some(c) if s(c, "/status") == "True" => "Healthy",
        Some(_) => "Unhealthy",
        None => "Unknown",
    };
    let field = |f: &str| healthy.map(|c| s(c, f)).unwrap_or("");
    Row::new(vec![
        name(v),
        Value::from(status),
        Value::from(field("/message")),
        Value::from(field("/error")),
    ])
}

fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
        col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", "The object that this event is about."),
        col("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].").wide(),
        col("Source", "string", "The component reporting this event. Should be a short machine understandable string.").wide(),
        col("Message", "string", "A human-readable description of the status of this operation."),
        col("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)").wide(),
        col("Count", "string", "The number of times this event has occurred.").wide(),
        Column::new("Name", "string", NAME_DESCRIPTION).format("name").wide(),
    ]
}

/// A core/v1 Event's fields, wherever its API version keeps them.
struct EventFields<'a> {
    involved: Option<&'a Value>,
    source: Option<&'a Value>,
    message: &'a str,
    first: Option<&'a Value>,
    last: Option<&'a Value>,
    count: i64,
}

fn event_row(v: &Value, now: Nanos) -> Row {
    let fields = EventFields {
        involved: get(v, "/involvedObject"),
        source: get(v, "/source"),
        message: s(v, "/message"),
        first: v.pointer("/firstTimestamp"),
        last: v.pointer("/lastTimestamp"),
        count: i(v, "/count"),
    };
    print_event(v, &fields, now)
}

/// events.k8s.io/v1 Events print as the core Event they convert to.
fn events_v1_row(v: &Value, now: Nanos) -> Row {
    let fields = EventFields {
        involved: get(v, "/regarding"),
        source: get(v, "/deprecatedSource"),
        message: s(v, "/note"),
        first: v.pointer("/deprecatedFirstTimestamp"),
        last: v.pointer("/deprecatedLastTimestamp"),
        count: i(v, "/deprecatedCount"),
    };
    print_event(v, &fields, now)
}

fn print_event(v: &Value, fields: &EventFields<'_>, now: Nanos) -> Row {
    let first_at = timestamp(fields.first);
    let first = if first_at.is_some() {
        since(first_at, now)
    } else {
        since(timestamp(v.pointer("/eventTime")), now)
    };
    let mut last = match timestamp(fields.last) {
        Some(at) => since(Some(at), now),
        None => first.clone(),
    };
    let mut count = fields.count;
    if let Some(series) = get(v, "/series") {
        last = since(timestamp(series.get("lastObservedTime")), now);
        count = i(series, "/count");
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let empty = Value::Null;
    let involved = fields.involved.unwrap_or(&empty);
    let kind = s(involved, "/kind").to_lowercase();
    let target = match s(involved, "/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let source = fields.source.unwrap_or(&empty);
    let component = or(s(source, "/component"), s(v, "/reportingController"));
    let instance = or(s(source, "/host"), s(v, "/reportingInstance"));
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    Row::new(vec![
        Value::from(last),
        Value::from(s(v, "/type")),
        Value::from(s(v, "/reason")),
        Value::from(target),
        Value::from(s(involved, "/fieldPath")),
        Value::from(source),
        Value::from(fields.message.trim()),
        Value::from(first),
        Value::from(count),
        name(v),
    ])
}

fn lease_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        age_col(),
    ]
}

fn lease_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/holderIdentity")),
        age(v, now),
    ])
}

fn csr_columns() -> Vec<Column> {
    vec![
        name_col(),
        age_col(),
        col("SignerName", "string", "Requested signer for the request."),
        col("Requestor", "string", "Name of the user that created the CertificateSigningRequest."),
        col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate."),
        col("Condition", "string", "Conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
    ]
}

fn csr_row(v: &Value, now: Nanos) -> Row {
    let kinds: Vec<&str> = arr(v, "/status/conditions")
        .iter()
        .map(|c| s(c, "/type"))
        .collect();
    let mut status = if kinds.contains(&"Denied") {
        "Denied"
    } else if kinds.contains(&"Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if kinds.contains(&"Failed") {
        status.push_str(",Failed");
    }
    if !s(v, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    let requested = get(v, "/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map(|secs| human_duration(i128::from(secs) * 1_000_000_000))
        .unwrap_or_else(|| "<none>".to_owned());
    Row::new(vec![
        name(v),
        age(v, now),
        Value::from(or(s(v, "/spec/signerName"), "<none>")),
        Value::from(s(v, "/spec/username")),
        Value::from(requested),
        Value::from(status),
    ])
}

fn api_service_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Service",
            "string",
            "The reference to the service that hosts this API endpoint.",
        ),
        col("Available", "string", "Whether this service is available."),
        age_col(),
    ]
}

fn api_service_row(v: &Value, now: Nanos) -> Row {
    let service = match get(v, "/spec/service") {
        Some(svc) => format!("{}/{}", s(svc, "/namespace"), s(svc, "/name")),
        None => "Local".to_owned(),
    };
    let available = match condition(v, "/status/conditions", "Available") {
        None => "Unknown".to_owned(),
        Some(c) if s(c, "/status") == "True" => "True".to_owned(),
        Some(c) if !s(c, "/reason").is_empty() => {
            format!("{} ({})", s(c, "/status"), s(c, "/reason"))
        }
        Some(c) => s(c, "/status").to_owned(),
    };
    Row::new(vec![
        name(v),
        Value::from(service),
        Value::from(available),
        age(v, now),
    ])
}

// ---------------------------------------------------------------------------------------------
// Configuration and RBAC.

fn config_map_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Data", "string", "Data contains the configuration data."),
        age_col(),
    ]
}

fn config_map_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(count(v, "/data") + count(v, "/binaryData")),
        age(v, now),
    ])
}

fn secret_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data.",
        ),
        col("Data", "string", "Data contains the secret data."),
        age_col(),
    ]
}

fn secret_row(v: &Value, now: Nanos) -> Row {
    // stringData merges into data when the object converts.
    let mut keys = BTreeSet::new();
    for pointer in ["/data", "/stringData"] {
        if let Some(map) = get(v, pointer).and_then(Value::as_object) {
            keys.extend(map.keys());
        }
    }
    Row::new(vec![
        name(v),
        Value::from(or(s(v, "/type"), "Opaque")),
        Value::from(keys.len() as i64),
        age(v, now),
    ])
}

fn service_account_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
        age_col(),
    ]
}

fn service_account_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(count(v, "/secrets")),
        age(v, now),
    ])
}

fn resource_quota_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        age_col(),
    ]
}

fn resource_quota_row(v: &Value, now: Nanos) -> Row {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    if let Some(hard) = get(v, "/status/hard").and_then(Value::as_object) {
        // serde_json maps iterate in key order: upstream sorts the names too.
        for (resource, hard) in hard {
            let used = get(
                v,
                &format!(
                    "/status/used/{}",
                    resource.replace('~', "~0").replace('/', "~1")
                ),
            )
            .and_then(Value::as_str)
            .unwrap_or("0");
            let entry = format!("{resource}: {used}/{}", hard.as_str().unwrap_or(""));
            let pieces: Vec<&str> = resource.split('.').collect();
            if pieces.len() > 1 && pieces[0] == "limits" {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    Row::new(vec![
        name(v),
        Value::from(requests.join(", ")),
        Value::from(limits.join(", ")),
        age(v, now),
    ])
}

fn role_binding_columns() -> Vec<Column> {
    binding_columns("roleBinding", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.")
}

fn cluster_role_binding_columns() -> Vec<Column> {
    binding_columns(
        "clusterRoleBinding",
        "RoleRef can only reference a ClusterRole in the global namespace.",
    )
}

fn binding_columns(what: &str, role_description: &str) -> Vec<Column> {
    vec![
        name_col(),
        col("Role", "string", role_description),
        age_col(),
        col("Users", "string", &format!("Users in the {what}")).wide(),
        col("Groups", "string", &format!("Groups in the {what}")).wide(),
        col(
            "ServiceAccounts",
            "string",
            &format!("ServiceAccounts in the {what}"),
        )
        .wide(),
    ]
}

fn binding_row(v: &Value, now: Nanos) -> Row {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in arr(v, "/subjects") {
        match s(subject, "/kind") {
            "ServiceAccount" => service_accounts.push(format!(
                "{}/{}",
                s(subject, "/namespace"),
                s(subject, "/name")
            )),
            "User" => users.push(s(subject, "/name").to_owned()),
            "Group" => groups.push(s(subject, "/name").to_owned()),
            _ => {}
        }
    }
    Row::new(vec![
        name(v),
        Value::from(format!(
            "{}/{}",
            s(v, "/roleRef/kind"),
            s(v, "/roleRef/name")
        )),
        age(v, now),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(service_accounts.join(", ")),
    ])
}

fn priority_class_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Value", "integer", "value represents the integer value of this priority class."),
        col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
        age_col(),
        col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority."),
    ]
}

fn priority_class_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(i(v, "/value")),
        Value::from(b(v, "/globalDefault")),
        age(v, now),
        Value::from(s(v, "/preemptionPolicy")),
    ])
}

fn runtime_class_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Handler", "string", "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class."),
        age_col(),
    ]
}

fn runtime_class_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![name(v), Value::from(s(v, "/handler")), age(v, now)])
}

fn webhook_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        age_col(),
    ]
}

fn webhook_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(count(v, "/webhooks")),
        age(v, now),
    ])
}

const PARAM_KIND_DESCRIPTION: &str =
    "ParamKind specifies the kind of resources used to parameterize this policy";

fn validating_policy_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Validations",
            "integer",
            "Validations indicates the number of validation rules defined in this configuration",
        ),
        col("ParamKind", "string", PARAM_KIND_DESCRIPTION),
        age_col(),
    ]
}

fn mutating_policy_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Mutations",
            "integer",
            "Mutation indicates the number of mutations rules defined in this configuration",
        ),
        col("ParamKind", "string", PARAM_KIND_DESCRIPTION),
        age_col(),
    ]
}

fn param_kind(v: &Value) -> String {
    match get(v, "/spec/paramKind") {
        Some(p) => format!("{}/{}", s(p, "/apiVersion"), s(p, "/kind")),
        None => "<unset>".to_owned(),
    }
}

fn validating_policy_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(count(v, "/spec/validations")),
        Value::from(param_kind(v)),
        age(v, now),
    ])
}

fn mutating_policy_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(count(v, "/spec/mutations")),
        Value::from(param_kind(v)),
        age(v, now),
    ])
}

fn policy_binding_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "PolicyName",
            "string",
            "PolicyName indicates the policy definition which the policy binding binded to",
        ),
        col(
            "ParamRef",
            "string",
            "ParamRef indicates the param resource which sets the configration param",
        ),
        age_col(),
    ]
}

fn policy_binding_row(v: &Value, now: Nanos) -> Row {
    let param = match get(v, "/spec/paramRef") {
        None => "<unset>".to_owned(),
        Some(p) => {
            let param_name = s(p, "/name");
            if !param_name.is_empty() {
                match s(p, "/namespace") {
                    "" => format!("*/{param_name}"),
                    ns => format!("{ns}/{param_name}"),
                }
            } else if let Some(selector) = get(p, "/selector") {
                Selector::from_label_selector(selector)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            } else {
                "<unset>".to_owned()
            }
        }
    };
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/policyName")),
        Value::from(param),
        age(v, now),
    ])
}

fn flow_schema_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("PriorityLevel", "string", "`name` is the name of the priority level configuration being referenced Required."),
        col("MatchingPrecedence", "string", "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request."),
        col("DistinguisherMethod", "string", "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema."),
        age_col(),
        col("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration"),
    ]
}

fn flow_schema_row(v: &Value, now: Nanos) -> Row {
    let dangling = condition(v, "/status/conditions", "Dangling")
        .map(|c| s(c, "/status"))
        .unwrap_or("?");
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/priorityLevelConfiguration/name")),
        Value::from(i(v, "/spec/matchingPrecedence")),
        Value::from(opt_s(v, "/spec/distinguisherMethod/type", "<none>")),
        age(v, now),
        Value::from(dangling),
    ])
}

fn priority_level_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Type", "string", "`type` indicates whether this priority level is subject to limitation on request execution."),
        col("NominalConcurrencyShares", "string", "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level."),
        col("Queues", "string", "`queues` is the number of queues for this priority level."),
        col("HandSize", "string", "`handSize` is a small positive number that configures the shuffle sharding of requests into queues."),
        col("QueueLengthLimit", "string", "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time."),
        age_col(),
    ]
}

fn priority_level_row(v: &Value, now: Nanos) -> Row {
    let none = || Value::from("<none>");
    let (mut shares, mut queues, mut hand, mut limit) = (none(), none(), none(), none());
    if let Some(limited) = get(v, "/spec/limited") {
        shares = Value::from(i(limited, "/nominalConcurrencyShares"));
        if let Some(q) = get(limited, "/limitResponse/queuing") {
            queues = Value::from(i(q, "/queues"));
            hand = Value::from(i(q, "/handSize"));
            limit = Value::from(i(q, "/queueLengthLimit"));
        }
    }
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/type")),
        shares,
        queues,
        hand,
        limit,
        age(v, now),
    ])
}

fn name_age_columns() -> Vec<Column> {
    vec![name_col(), age_col()]
}

fn name_age_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![name(v), age(v, now)])
}

fn resource_claim_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "State",
            "string",
            "A summary of the current state (allocated, pending, reserved, etc.).",
        ),
        age_col(),
    ]
}

fn resource_claim_row(v: &Value, now: Nanos) -> Row {
    let mut states = Vec::new();
    if deleting(v) {
        states.push("deleted");
    }
    if get(v, "/status/allocation").is_none() {
        if !deleting(v) {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if !arr(v, "/status/reservedFor").is_empty() {
            states.push("reserved");
        }
    }
    Row::new(vec![name(v), Value::from(states.join(",")), age(v, now)])
}

fn resource_slice_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Node",
            "string",
            "NodeName identifies the node which provides the resources in this pool.",
        ),
        col(
            "Driver",
            "string",
            "Driver identifies the DRA driver providing the capacity information.",
        ),
        col("Pool", "string", "Name is used to identify the pool."),
        age_col(),
    ]
}

fn resource_slice_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/nodeName")),
        Value::from(s(v, "/spec/driver")),
        Value::from(s(v, "/spec/pool/name")),
        age(v, now),
    ])
}

// ---------------------------------------------------------------------------------------------
// Storage.

/// Upstream's `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, de-duplicated.
fn access_modes(v: &Value, pointer: &str) -> String {
    let modes: Vec<&str> = arr(v, pointer).iter().filter_map(Value::as_str).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class of a PV or PVC: the beta annotation wins over `spec.storageClassName`.
fn storage_class_of(v: &Value) -> &str {
    get(
        v,
        "/metadata/annotations/volume.beta.kubernetes.io~1storage-class",
    )
    .and_then(Value::as_str)
    .unwrap_or_else(|| s(v, "/spec/storageClassName"))
}

fn pv_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
        col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
        col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        col("StorageClass", "string", "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        age_col(),
        col("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.").wide(),
    ]
}

fn pv_row(v: &Value, now: Nanos) -> Row {
    let claim = match get(v, "/spec/claimRef") {
        Some(c) => format!("{}/{}", s(c, "/namespace"), s(c, "/name")),
        None => String::new(),
    };
    let phase = if deleting(v) {
        "Terminating"
    } else {
        s(v, "/status/phase")
    };
    Row::new(vec![
        name(v),
        Value::from(opt_s(v, "/spec/capacity/storage", "0")),
        Value::from(access_modes(v, "/spec/accessModes")),
        Value::from(s(v, "/spec/persistentVolumeReclaimPolicy")),
        Value::from(phase),
        Value::from(claim),
        Value::from(storage_class_of(v)),
        Value::from(opt_s(v, "/spec/volumeAttributesClassName", "<unset>")),
        Value::from(s(v, "/status/reason")),
        age(v, now),
        Value::from(opt_s(v, "/spec/volumeMode", "<unset>")),
    ])
}

fn pvc_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
        col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
        col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
        col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has."),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        age_col(),
        col("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.").wide(),
    ]
}

fn pvc_row(v: &Value, now: Nanos) -> Row {
    let phase = if deleting(v) {
        "Terminating"
    } else {
        s(v, "/status/phase")
    };
    let volume = s(v, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            opt_s(v, "/status/capacity/storage", "0").to_owned(),
            access_modes(v, "/status/accessModes"),
        )
    };
    Row::new(vec![
        name(v),
        Value::from(phase),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(storage_class_of(v)),
        Value::from(opt_s(v, "/spec/volumeAttributesClassName", "<unset>")),
        age(v, now),
        Value::from(opt_s(v, "/spec/volumeMode", "<unset>")),
    ])
}

fn storage_class_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
        col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
        col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound. When unset, VolumeBindingImmediate is used."),
        col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
        age_col(),
    ]
}

fn is_default_class(v: &Value, annotations: &[&str]) -> bool {
    annotations.iter().any(|a| {
        get(
            v,
            &format!("/metadata/annotations/{}", a.replace('/', "~1")),
        )
        .and_then(Value::as_str)
            == Some("true")
    })
}

fn storage_class_row(v: &Value, now: Nanos) -> Row {
    let mut class_name = s(v, "/metadata/name").to_owned();
    if is_default_class(
        v,
        &[
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ],
    ) {
        class_name.push_str(" (default)");
    }
    Row::new(vec![
        Value::from(class_name),
        Value::from(s(v, "/provisioner")),
        Value::from(opt_s(v, "/reclaimPolicy", "Delete")),
        Value::from(opt_s(v, "/volumeBindingMode", "Immediate")),
        Value::from(b(v, "/allowVolumeExpansion")),
        age(v, now),
    ])
}

fn vac_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "DriverName",
            "string",
            "Name of the CSI driver This field is immutable.",
        ),
        age_col(),
    ]
}

fn vac_row(v: &Value, now: Nanos) -> Row {
    let mut class_name = s(v, "/metadata/name").to_owned();
    if is_default_class(
        v,
        &[
            "storage.kubernetes.io/is-default-class",
            "storageclass.kubernetes.io/is-default-class",
        ],
    ) {
        class_name.push_str(" (default)");
    }
    Row::new(vec![
        Value::from(class_name),
        Value::from(s(v, "/driverName")),
        age(v, now),
    ])
}

fn volume_attachment_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Attacher",
            "string",
            "attacher indicates the name of the volume driver that MUST handle this request.",
        )
        .format("name"),
        col(
            "PV",
            "string",
            "persistentVolumeName represents the name of the persistent volume to attach.",
        ),
        col(
            "Node",
            "string",
            "nodeName represents the node that the volume should be attached to.",
        ),
        col(
            "Attached",
            "boolean",
            "attached indicates the volume is successfully attached.",
        ),
        age_col(),
    ]
}

fn volume_attachment_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(s(v, "/spec/attacher")),
        Value::from(s(v, "/spec/source/persistentVolumeName")),
        Value::from(s(v, "/spec/nodeName")),
        Value::from(b(v, "/status/attached")),
        age(v, now),
    ])
}

fn csi_node_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Drivers",
            "integer",
            "Drivers indicates the number of CSI drivers registered on the node",
        ),
        age_col(),
    ]
}

fn csi_node_row(v: &Value, now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(count(v, "/spec/drivers")),
        age(v, now),
    ])
}

fn csi_driver_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation."),
        col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations."),
        col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report."),
        col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication."),
        col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume."),
        col("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports."),
        age_col(),
    ]
}

fn csi_driver_row(v: &Value, now: Nanos) -> Row {
    let modes: Vec<&str> = arr(v, "/spec/volumeLifecycleModes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let tokens = match get(v, "/spec/tokenRequests").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|t| s(t, "/audience"))
            .collect::<Vec<_>>()
            .join(","),
        None => "<unset>".to_owned(),
    };
    Row::new(vec![
        name(v),
        Value::from(
            get(v, "/spec/attachRequired")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        ),
        Value::from(b(v, "/spec/podInfoOnMount")),
        Value::from(b(v, "/spec/storageCapacity")),
        Value::from(tokens),
        Value::from(b(v, "/spec/requiresRepublish")),
        Value::from(or(&modes.join(","), "<none>").to_owned()),
        age(v, now),
    ])
}

fn csi_storage_capacity_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("StorageClassName", "string", "storageClassName represents the name of the StorageClass that the reported capacity applies to."),
        col("Capacity", "string", "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields."),
    ]
}

fn csi_storage_capacity_row(v: &Value, _now: Nanos) -> Row {
    Row::new(vec![
        name(v),
        Value::from(s(v, "/storageClassName")),
        Value::from(opt_s(v, "/capacity", "<unset>")),
    ])
}
