//! The patch strategies of the built-in kinds: upstream's `patchStrategy`/`patchMergeKey` struct
//! tags (its OpenAPI `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key`), as data.
//!
//! Read off the Go types of the served (GA) API versions: `k8s.io/api` `*/v1/types.go` (and
//! `autoscaling/v2`), `k8s.io/apimachinery` `pkg/apis/meta/v1/types.go`,
//! `k8s.io/apiextensions-apiserver` `pkg/apis/apiextensions/v1/types_jsonschema.go` and
//! `k8s.io/kube-aggregator` `pkg/apis/apiregistration/v1/types.go`. Fields of an inlined Go
//! struct appear under the OpenAPI definition that inlines them (`EphemeralContainerCommon` →
//! `EphemeralContainer`). A test checks every row names a property that exists in the generated
//! schemas, so a typo cannot silently turn a merge list into a replaced one.

use serde_json::{Map, Value};

/// How one field of one definition is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldStrategy {
    /// The OpenAPI definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// The JSON property name, e.g. `containers`.
    pub property: &'static str,
    /// Upstream's strategy string: `merge`, `replace`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// The merge key of a list of objects (`""` for lists of scalars and maps).
    pub merge_key: &'static str,
}

impl FieldStrategy {
    /// Whether the field's list is merged (rather than replaced).
    pub fn merges(&self) -> bool {
        self.strategy.split(',').any(|s| s == "merge")
    }

    /// Whether the field's map is replaced whole (rather than merged).
    pub fn replaces(&self) -> bool {
        self.strategy.split(',').any(|s| s == "replace")
    }
}

const fn row(
    definition: &'static str,
    property: &'static str,
    strategy: &'static str,
    merge_key: &'static str,
) -> FieldStrategy {
    FieldStrategy {
        definition,
        property,
        strategy,
        merge_key,
    }
}

macro_rules! rows {
    ($( $prefix:literal $def:literal . $prop:literal => $strategy:literal $( by $key:literal )? ; )*) => {
        &[ $( row(concat!($prefix, $def), $prop, $strategy, rows!(@key $($key)?)) ),* ]
    };
    (@key $key:literal) => { $key };
    (@key) => { "" };
}

/// Every patch strategy of the served built-in types, sorted by definition then property.
///
/// Left out because k3rs does not serve their kinds (off by default upstream, behind feature
/// gates): `certificates.k8s.io/v1` `PodCertificateRequestStatus.conditions` and `resource.k8s.io/v1`
/// `DeviceTaintRuleStatus.conditions` (both `merge` by `type`). Add them when the kinds are served.
pub const PATCH_STRATEGIES: &[FieldStrategy] = rows! {
    // admissionregistration.k8s.io/v1
    "io.k8s.api.admissionregistration.v1." "MutatingAdmissionPolicySpec"."matchConditions" => "merge" by "name";
    "io.k8s.api.admissionregistration.v1." "MutatingWebhook"."matchConditions" => "merge" by "name";
    "io.k8s.api.admissionregistration.v1." "MutatingWebhookConfiguration"."webhooks" => "merge" by "name";
    "io.k8s.api.admissionregistration.v1." "ValidatingAdmissionPolicySpec"."matchConditions" => "merge" by "name";
    "io.k8s.api.admissionregistration.v1." "ValidatingAdmissionPolicySpec"."variables" => "merge" by "name";
    "io.k8s.api.admissionregistration.v1." "ValidatingWebhook"."matchConditions" => "merge" by "name";
    "io.k8s.api.admissionregistration.v1." "ValidatingWebhookConfiguration"."webhooks" => "merge" by "name";
    // apps/v1
    "io.k8s.api.apps.v1." "DaemonSetStatus"."conditions" => "merge" by "type";
    "io.k8s.api.apps.v1." "DeploymentSpec"."strategy" => "retainKeys";
    "io.k8s.api.apps.v1." "DeploymentStatus"."conditions" => "merge" by "type";
    "io.k8s.api.apps.v1." "ReplicaSetStatus"."conditions" => "merge" by "type";
    "io.k8s.api.apps.v1." "StatefulSetStatus"."conditions" => "merge" by "type";
    // autoscaling/v2
    "io.k8s.api.autoscaling.v2." "HorizontalPodAutoscalerStatus"."conditions" => "merge" by "type";
    // batch/v1
    "io.k8s.api.batch.v1." "JobSchedulingConfiguration"."resourceClaims" => "merge" by "name";
    "io.k8s.api.batch.v1." "JobStatus"."conditions" => "merge" by "type";
    // core/v1
    "io.k8s.api.core.v1." "ComponentStatus"."conditions" => "merge" by "type";
    "io.k8s.api.core.v1." "Container"."env" => "merge" by "name";
    "io.k8s.api.core.v1." "Container"."ports" => "merge" by "containerPort";
    "io.k8s.api.core.v1." "Container"."volumeDevices" => "merge" by "devicePath";
    "io.k8s.api.core.v1." "Container"."volumeMounts" => "merge" by "mountPath";
    "io.k8s.api.core.v1." "ContainerStatus"."allocatedResourcesStatus" => "merge" by "name";
    "io.k8s.api.core.v1." "ContainerStatus"."volumeMounts" => "merge" by "mountPath";
    "io.k8s.api.core.v1." "EphemeralContainer"."env" => "merge" by "name";
    "io.k8s.api.core.v1." "EphemeralContainer"."ports" => "merge" by "containerPort";
    "io.k8s.api.core.v1." "EphemeralContainer"."volumeDevices" => "merge" by "devicePath";
    "io.k8s.api.core.v1." "EphemeralContainer"."volumeMounts" => "merge" by "mountPath";
    "io.k8s.api.core.v1." "NamespaceStatus"."conditions" => "merge" by "type";
    "io.k8s.api.core.v1." "NodeAllocatableResourceClaimStatus"."mapping" => "merge" by "name";
    "io.k8s.api.core.v1." "NodeAllocatableResourceClaimStatus"."overhead" => "merge" by "name";
    "io.k8s.api.core.v1." "NodeSpec"."podCIDRs" => "merge";
    "io.k8s.api.core.v1." "NodeStatus"."addresses" => "merge" by "type";
    "io.k8s.api.core.v1." "NodeStatus"."conditions" => "merge" by "type";
    "io.k8s.api.core.v1." "PersistentVolumeClaimStatus"."conditions" => "merge" by "type";
    "io.k8s.api.core.v1." "PodSpec"."containers" => "merge" by "name";
    "io.k8s.api.core.v1." "PodSpec"."ephemeralContainers" => "merge" by "name";
    "io.k8s.api.core.v1." "PodSpec"."evictionResponders" => "merge" by "name";
    "io.k8s.api.core.v1." "PodSpec"."hostAliases" => "merge" by "ip";
    "io.k8s.api.core.v1." "PodSpec"."imagePullSecrets" => "merge" by "name";
    "io.k8s.api.core.v1." "PodSpec"."initContainers" => "merge" by "name";
    "io.k8s.api.core.v1." "PodSpec"."resourceClaims" => "merge,retainKeys" by "name";
    "io.k8s.api.core.v1." "PodSpec"."schedulingGates" => "merge" by "name";
    "io.k8s.api.core.v1." "PodSpec"."topologySpreadConstraints" => "merge" by "topologyKey";
    "io.k8s.api.core.v1." "PodSpec"."volumes" => "merge,retainKeys" by "name";
    "io.k8s.api.core.v1." "PodStatus"."conditions" => "merge" by "type";
    "io.k8s.api.core.v1." "PodStatus"."hostIPs" => "merge" by "ip";
    "io.k8s.api.core.v1." "PodStatus"."nodeAllocatableResourceClaimStatuses" => "merge" by "resourceClaimName";
    "io.k8s.api.core.v1." "PodStatus"."podIPs" => "merge" by "ip";
    "io.k8s.api.core.v1." "PodStatus"."resourceClaimStatuses" => "merge,retainKeys" by "name";
    "io.k8s.api.core.v1." "PodVolumeHealth"."healthConditions" => "merge" by "status";
    "io.k8s.api.core.v1." "ReplicationControllerStatus"."conditions" => "merge" by "type";
    "io.k8s.api.core.v1." "ServiceAccount"."secrets" => "merge" by "name";
    "io.k8s.api.core.v1." "ServiceSpec"."ports" => "merge" by "port";
    "io.k8s.api.core.v1." "ServiceStatus"."conditions" => "merge" by "type";
    "io.k8s.api.core.v1." "VolumeHealthStatus"."healthConditions" => "merge" by "status";
    // flowcontrol.apiserver.k8s.io/v1
    "io.k8s.api.flowcontrol.v1." "FlowSchemaStatus"."conditions" => "merge" by "type";
    "io.k8s.api.flowcontrol.v1." "PriorityLevelConfigurationStatus"."conditions" => "merge" by "type";
    // networking.k8s.io/v1
    "io.k8s.api.networking.v1." "ServiceCIDRStatus"."conditions" => "merge" by "type";
    // policy/v1
    "io.k8s.api.policy.v1." "PodDisruptionBudgetSpec"."selector" => "replace";
    "io.k8s.api.policy.v1." "PodDisruptionBudgetStatus"."conditions" => "merge" by "type";
    // resource.k8s.io/v1
    "io.k8s.api.resource.v1." "ResourceClaimStatus"."reservedFor" => "merge" by "uid";
    // storage.k8s.io/v1
    "io.k8s.api.storage.v1." "CSINodeSpec"."drivers" => "merge" by "name";
    "io.k8s.api.storage.v1." "CSINodeStatus"."storageHealth" => "merge" by "name";
    // apiextensions.k8s.io/v1
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1." "JSONSchemaProps"."x-kubernetes-validations" => "merge" by "rule";
    // meta/v1 (every object's metadata)
    "io.k8s.apimachinery.pkg.apis.meta.v1." "ObjectMeta"."finalizers" => "merge";
    "io.k8s.apimachinery.pkg.apis.meta.v1." "ObjectMeta"."ownerReferences" => "merge" by "uid";
    // apiregistration.k8s.io/v1
    "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1." "APIServiceStatus"."conditions" => "merge" by "type";
};

/// The patch strategy of `property` in the OpenAPI definition `definition`, if upstream tags it.
pub fn patch_strategy(definition: &str, property: &str) -> Option<&'static FieldStrategy> {
    PATCH_STRATEGIES
        .iter()
        .find(|row| row.definition == definition && row.property == property)
}

/// Writes `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` into the properties of
/// OpenAPI `definitions` (name → schema), as upstream's published spec carries them. Client-side
/// `kubectl apply` reads them from `/openapi/v2` to compute its strategic merge patches.
pub fn annotate_openapi_definitions(definitions: &mut Map<String, Value>) {
    for row in PATCH_STRATEGIES {
        let merge_key = (!row.merge_key.is_empty())
            .then(|| ("x-kubernetes-patch-merge-key", Value::from(row.merge_key)));
        let strategy = ("x-kubernetes-patch-strategy", Value::from(row.strategy));
        crate::openapi::annotate_property(
            definitions,
            row.definition,
            row.property,
            [strategy].into_iter().chain(merge_key),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_sorted_and_unique() {
        for pair in PATCH_STRATEGIES.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                (a.definition, a.property) < (b.definition, b.property),
                "{}.{} then {}.{}",
                a.definition,
                a.property,
                b.definition,
                b.property
            );
        }
    }

    #[test]
    fn annotates_openapi_like_upstream() {
        let mut definitions: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "io.k8s.api.core.v1.PodSpec": {"properties": {"containers": {"type": "array"}}},
            "io.k8s.api.apps.v1.DeploymentSpec": {"properties": {"strategy": {}}},
        }))
        .unwrap();
        annotate_openapi_definitions(&mut definitions);
        assert_eq!(
            definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"],
            serde_json::json!({
                "type": "array",
                "x-kubernetes-patch-strategy": "merge",
                "x-kubernetes-patch-merge-key": "name",
            })
        );
        assert_eq!(
            definitions["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"],
            serde_json::json!({"x-kubernetes-patch-strategy": "retainKeys"})
        );
    }
}
