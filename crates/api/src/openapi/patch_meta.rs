//! Upstream's strategic-merge-patch tags (`patchStrategy`, `patchMergeKey`) for the built-in kinds.
//!
//! k8s-openapi's schemas leave these out, but kubectl's client-side `apply` reads them from the
//! OpenAPI documents to compute its patch: without them a changed container list would be sent
//! whole and merged by name on the server, so a removed container would never go away. The
//! table is the Go struct tags of `k8s.io/api` for the served versions; a test checks that every
//! entry names an existing field.

/// One field with a patch strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchMeta {
    /// The OpenAPI definition holding the field, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// The field's JSON name, e.g. `containers`.
    pub field: &'static str,
    /// `merge`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// The key identifying list elements; `None` for a merged list of scalars.
    pub merge_key: Option<&'static str>,
}

const fn merge(definition: &'static str, field: &'static str, key: &'static str) -> PatchMeta {
    PatchMeta {
        definition,
        field,
        strategy: "merge",
        merge_key: Some(key),
    }
}

const fn merge_retain(
    definition: &'static str,
    field: &'static str,
    key: &'static str,
) -> PatchMeta {
    PatchMeta {
        definition,
        field,
        strategy: "merge,retainKeys",
        merge_key: Some(key),
    }
}

const fn merge_scalars(definition: &'static str, field: &'static str) -> PatchMeta {
    PatchMeta {
        definition,
        field,
        strategy: "merge",
        merge_key: None,
    }
}

const fn conditions(definition: &'static str) -> PatchMeta {
    merge(definition, "conditions", "type")
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const POD_STATUS: &str = "io.k8s.api.core.v1.PodStatus";
const CONTAINER: &str = "io.k8s.api.core.v1.Container";
const EPHEMERAL_CONTAINER: &str = "io.k8s.api.core.v1.EphemeralContainer";

/// Every field of a served kind with an upstream patch strategy.
pub const PATCH_META: &[PatchMeta] = &[
    merge_scalars(OBJECT_META, "finalizers"),
    merge(OBJECT_META, "ownerReferences", "uid"),
    // core/v1 pods
    merge(POD_SPEC, "containers", "name"),
    merge(POD_SPEC, "ephemeralContainers", "name"),
    merge(POD_SPEC, "hostAliases", "ip"),
    merge(POD_SPEC, "imagePullSecrets", "name"),
    merge(POD_SPEC, "initContainers", "name"),
    merge_retain(POD_SPEC, "resourceClaims", "name"),
    merge(POD_SPEC, "schedulingGates", "name"),
    merge(POD_SPEC, "topologySpreadConstraints", "topologyKey"),
    merge_retain(POD_SPEC, "volumes", "name"),
    merge(CONTAINER, "env", "name"),
    merge(CONTAINER, "ports", "containerPort"),
    merge(CONTAINER, "volumeDevices", "devicePath"),
    merge(CONTAINER, "volumeMounts", "mountPath"),
    merge(EPHEMERAL_CONTAINER, "env", "name"),
    merge(EPHEMERAL_CONTAINER, "ports", "containerPort"),
    merge(EPHEMERAL_CONTAINER, "volumeDevices", "devicePath"),
    merge(EPHEMERAL_CONTAINER, "volumeMounts", "mountPath"),
    conditions(POD_STATUS),
    merge(POD_STATUS, "hostIPs", "ip"),
    merge(POD_STATUS, "podIPs", "ip"),
    merge_retain(POD_STATUS, "resourceClaimStatuses", "name"),
    // core/v1, other kinds
    conditions("io.k8s.api.core.v1.ComponentStatus"),
    conditions("io.k8s.api.core.v1.NamespaceStatus"),
    merge_scalars("io.k8s.api.core.v1.NodeSpec", "podCIDRs"),
    merge("io.k8s.api.core.v1.NodeStatus", "addresses", "type"),
    conditions("io.k8s.api.core.v1.NodeStatus"),
    conditions("io.k8s.api.core.v1.PersistentVolumeClaimStatus"),
    conditions("io.k8s.api.core.v1.ReplicationControllerStatus"),
    merge("io.k8s.api.core.v1.ServiceAccount", "secrets", "name"),
    merge("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
    // apps/v1
    PatchMeta {
        definition: "io.k8s.api.apps.v1.DeploymentSpec",
        field: "strategy",
        strategy: "retainKeys",
        merge_key: None,
    },
    conditions("io.k8s.api.apps.v1.DaemonSetStatus"),
    conditions("io.k8s.api.apps.v1.DeploymentStatus"),
    conditions("io.k8s.api.apps.v1.ReplicaSetStatus"),
    conditions("io.k8s.api.apps.v1.StatefulSetStatus"),
    // other groups
    conditions("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus"),
    conditions("io.k8s.api.batch.v1.JobStatus"),
    conditions("io.k8s.api.flowcontrol.v1.FlowSchemaStatus"),
    conditions("io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus"),
    conditions("io.k8s.api.policy.v1.PodDisruptionBudgetStatus"),
];

/// The patch strategy of `field` in `definition`, if upstream gives it one.
pub fn patch_meta(definition: &str, field: &str) -> Option<&'static PatchMeta> {
    PATCH_META
        .iter()
        .find(|m| m.definition == definition && m.field == field)
}
