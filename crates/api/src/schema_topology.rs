//! The list and map topology of the built-in kinds: upstream's `+listType`, `+listMapKey`,
//! `+mapType` and `+structType` markers (its OpenAPI `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`), as data for server-side apply.
//!
//! Read off the Go types of every definition the served kinds reach: `k8s.io/api` at
//! `10b39a39bcee995dfe7cd5e8e7b922be5e46f1e2` (the GA `*/v1/types.go`, `autoscaling/v2`, and
//! `scheduling/v1alpha3`, whose `WorkloadPodGroup*` types `batch/v1` Jobs embed),
//! `k8s.io/apimachinery` `pkg/apis/meta/v1/types.go` at
//! `eed236ceee2c19c2753a3d93ac0631dc20750454`, `k8s.io/apiextensions-apiserver`
//! `pkg/apis/apiextensions/v1/types.go` and `types_jsonschema.go` at
//! `1aa2717a552ee6ca1e2a18f1f8ffccde981db923`, and `k8s.io/kube-aggregator`
//! `pkg/apis/apiregistration/v1/types.go` at `232ca687ab24bc9f9a378cba74716b5f7d6b82eb`. Only the
//! `+listType=`-style markers count: the `+k8s:listType=` declarative-validation tags next to them
//! do not reach the OpenAPI documents upstream. Fields of an inlined Go struct appear under the
//! definition that inlines them (`EphemeralContainerCommon` → `EphemeralContainer`, `Rule` →
//! `RuleWithOperations`).
//!
//! **Invariants** (tested): each table is sorted by definition then property, without
//! duplicates, which the lookups rely on (binary search); every row names a definition the
//! served documents carry, and a property of the right shape (a list row an array or, atomic, a
//! byte string; a map key a property of the elements; a set's elements scalars; a map-type row
//! an object); every `map` list has at least one key.
//!
//! A field without a row is, as upstream treats untagged fields, an atomic list or a granular
//! map or struct — unless its type is in [`ATOMIC_TYPES`]. A field-level [`MapType`] overrides
//! its type's (`PersistentVolumeSpec.claimRef` is granular although `ObjectReference` is atomic).

use serde_json::{Map, Value};

/// How a list field merges under server-side apply (`+listType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// The list is replaced whole; one manager owns it.
    Atomic,
    /// A list of distinct scalars; each element is owned on its own.
    Set,
    /// A list of objects keyed by these properties, in `+listMapKey` order; each element is
    /// owned on its own.
    Map(&'static [&'static str]),
}

impl ListType {
    /// Upstream's `x-kubernetes-list-type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ListType::Atomic => "atomic",
            ListType::Set => "set",
            ListType::Map(_) => "map",
        }
    }
}

/// How a map or struct merges under server-side apply (`+mapType`, `+structType`; upstream
/// publishes both as `x-kubernetes-map-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    /// Replaced whole; one manager owns it.
    Atomic,
    /// Each key (or struct field) is owned on its own.
    Granular,
}

impl MapType {
    /// Upstream's `x-kubernetes-map-type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MapType::Atomic => "atomic",
            MapType::Granular => "granular",
        }
    }
}

/// The list type of one list field of one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListField {
    /// The OpenAPI definition name, e.g. `io.k8s.api.core.v1.Container`.
    pub definition: &'static str,
    /// The JSON property name, e.g. `ports`.
    pub property: &'static str,
    /// How the list merges.
    pub list_type: ListType,
}

/// The map type of one map (or struct) field of one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapField {
    /// The OpenAPI definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// The JSON property name, e.g. `nodeSelector`.
    pub property: &'static str,
    /// How the map or struct merges.
    pub map_type: MapType,
}

/// Table rows, one macro call `$row!(definition, property, value)` each, written grouped by
/// definition prefix: `$row; "<prefix>" { "<Type>"."<property>" => <value>; ... } ...`.
macro_rules! rows {
    ($row:ident; $( $prefix:literal {
        $( $def:literal . $prop:literal => $value:ident $([ $($key:literal),+ ])? ; )*
    } )*) => {
        &[ $( $( $row!(concat!($prefix, $def), $prop, $value $([$($key),+])?), )* )* ]
    };
}

macro_rules! list_field {
    ($definition:expr, $property:literal, atomic) => {
        list_field!(@ $definition, $property, ListType::Atomic)
    };
    ($definition:expr, $property:literal, set) => {
        list_field!(@ $definition, $property, ListType::Set)
    };
    ($definition:expr, $property:literal, map [$($key:literal),+]) => {
        list_field!(@ $definition, $property, ListType::Map(&[$($key),+]))
    };
    (@ $definition:expr, $property:literal, $list_type:expr) => {
        ListField {
            definition: $definition,
            property: $property,
            list_type: $list_type,
        }
    };
}

macro_rules! map_field {
    ($definition:expr, $property:literal, atomic) => {
        map_field!(@ $definition, $property, MapType::Atomic)
    };
    ($definition:expr, $property:literal, granular) => {
        map_field!(@ $definition, $property, MapType::Granular)
    };
    (@ $definition:expr, $property:literal, $map_type:expr) => {
        MapField {
            definition: $definition,
            property: $property,
            map_type: $map_type,
        }
    };
}

/// Every `+listType` (with its `+listMapKey`s) of the served definitions, atomic ones included.
///
/// A Go `[]byte` (`APIServiceSpec.caBundle`) is a base64 string on the wire, but upstream still
/// tags it `atomic` in its spec, and so does this table.
///
/// Left out because k3rs does not serve their definitions: `certificates.k8s.io/v1`
/// `PodCertificateRequestStatus.conditions`, `resource.k8s.io/v1`
/// `DeviceTaintRuleStatus.conditions`, `core/v1` `AvoidPods`, `PodExecOptions` and
/// `PodPortForwardOptions`, and the meta/v1 and apiextensions types only sent as request options
/// or webhook bodies (`CreateOptions.dryRun`, `Table.rows`, `ConversionRequest.objects`, ...).
/// Add them when their kinds are served.
pub const LIST_TYPES: &[ListField] = rows! {
    list_field;
    // admissionregistration.k8s.io/v1
    "io.k8s.api.admissionregistration.v1." {
        "MatchResources"."excludeResourceRules" => atomic;
        "MatchResources"."resourceRules" => atomic;
        "MutatingAdmissionPolicySpec"."matchConditions" => map["name"];
        "MutatingAdmissionPolicySpec"."mutations" => atomic;
        "MutatingAdmissionPolicySpec"."variables" => atomic;
        "MutatingWebhook"."admissionReviewVersions" => atomic;
        "MutatingWebhook"."matchConditions" => map["name"];
        "MutatingWebhook"."rules" => atomic;
        "MutatingWebhookConfiguration"."webhooks" => map["name"];
        "NamedRuleWithOperations"."apiGroups" => atomic;
        "NamedRuleWithOperations"."apiVersions" => atomic;
        "NamedRuleWithOperations"."operations" => atomic;
        "NamedRuleWithOperations"."resourceNames" => atomic;
        "NamedRuleWithOperations"."resources" => atomic;
        "RuleWithOperations"."apiGroups" => atomic;
        "RuleWithOperations"."apiVersions" => atomic;
        "RuleWithOperations"."operations" => atomic;
        "RuleWithOperations"."resources" => atomic;
        "TypeChecking"."expressionWarnings" => atomic;
        "ValidatingAdmissionPolicyBindingSpec"."validationActions" => set;
        "ValidatingAdmissionPolicySpec"."auditAnnotations" => atomic;
        "ValidatingAdmissionPolicySpec"."matchConditions" => map["name"];
        "ValidatingAdmissionPolicySpec"."validations" => atomic;
        "ValidatingAdmissionPolicySpec"."variables" => map["name"];
        "ValidatingAdmissionPolicyStatus"."conditions" => map["type"];
        "ValidatingWebhook"."admissionReviewVersions" => atomic;
        "ValidatingWebhook"."matchConditions" => map["name"];
        "ValidatingWebhook"."rules" => atomic;
        "ValidatingWebhookConfiguration"."webhooks" => map["name"];
    }
    // apps/v1
    "io.k8s.api.apps.v1." {
        "DaemonSetStatus"."conditions" => map["type"];
        "DeploymentStatus"."conditions" => map["type"];
        "ReplicaSetStatus"."conditions" => map["type"];
        "StatefulSetSpec"."volumeClaimTemplates" => atomic;
        "StatefulSetStatus"."conditions" => map["type"];
    }
    // authentication.k8s.io/v1
    "io.k8s.api.authentication.v1." {
        "TokenRequestSpec"."audiences" => atomic;
        "TokenReviewSpec"."audiences" => atomic;
        "TokenReviewStatus"."audiences" => atomic;
        "UserInfo"."groups" => atomic;
    }
    // authorization.k8s.io/v1
    "io.k8s.api.authorization.v1." {
        "FieldSelectorAttributes"."requirements" => atomic;
        "LabelSelectorAttributes"."requirements" => atomic;
        "NonResourceRule"."nonResourceURLs" => atomic;
        "NonResourceRule"."verbs" => atomic;
        "ResourceRule"."apiGroups" => atomic;
        "ResourceRule"."resourceNames" => atomic;
        "ResourceRule"."resources" => atomic;
        "ResourceRule"."verbs" => atomic;
        "SubjectAccessReviewSpec"."groups" => atomic;
        "SubjectRulesReviewStatus"."nonResourceRules" => atomic;
        "SubjectRulesReviewStatus"."resourceRules" => atomic;
    }
    // autoscaling/v2
    "io.k8s.api.autoscaling.v2." {
        "HPAScalingRules"."policies" => atomic;
        "HorizontalPodAutoscalerSpec"."metrics" => atomic;
        "HorizontalPodAutoscalerStatus"."conditions" => map["type"];
        "HorizontalPodAutoscalerStatus"."currentMetrics" => atomic;
    }
    // batch/v1
    "io.k8s.api.batch.v1." {
        "CronJobStatus"."active" => atomic;
        "JobSchedulingConfiguration"."resourceClaims" => map["name"];
        "JobStatus"."conditions" => atomic;
        "PodFailurePolicy"."rules" => atomic;
        "PodFailurePolicyOnExitCodesRequirement"."values" => set;
        "PodFailurePolicyRule"."onPodConditions" => atomic;
        "SuccessPolicy"."rules" => atomic;
        "UncountedTerminatedPods"."failed" => set;
        "UncountedTerminatedPods"."succeeded" => set;
    }
    // certificates.k8s.io/v1
    "io.k8s.api.certificates.v1." {
        "CertificateSigningRequestSpec"."groups" => atomic;
        "CertificateSigningRequestSpec"."usages" => atomic;
        "CertificateSigningRequestStatus"."conditions" => map["type"];
    }
    // core/v1
    "io.k8s.api.core.v1." {
        "Capabilities"."add" => atomic;
        "Capabilities"."drop" => atomic;
        "CephFSPersistentVolumeSource"."monitors" => atomic;
        "CephFSVolumeSource"."monitors" => atomic;
        "ComponentStatus"."conditions" => map["type"];
        "ConfigMapProjection"."items" => atomic;
        "ConfigMapVolumeSource"."items" => atomic;
        "Container"."args" => atomic;
        "Container"."command" => atomic;
        "Container"."env" => map["name"];
        "Container"."envFrom" => atomic;
        "Container"."ports" => map["containerPort", "protocol"];
        "Container"."resizePolicy" => atomic;
        "Container"."restartPolicyRules" => atomic;
        "Container"."volumeDevices" => map["devicePath"];
        "Container"."volumeMounts" => map["mountPath"];
        "ContainerImage"."names" => atomic;
        "ContainerRestartRuleOnExitCodes"."values" => set;
        "ContainerStatus"."allocatedResourcesStatus" => map["name"];
        "ContainerStatus"."volumeMounts" => map["mountPath"];
        "DownwardAPIProjection"."items" => atomic;
        "DownwardAPIVolumeSource"."items" => atomic;
        "EndpointSubset"."addresses" => atomic;
        "EndpointSubset"."notReadyAddresses" => atomic;
        "EndpointSubset"."ports" => atomic;
        "Endpoints"."subsets" => atomic;
        "EphemeralContainer"."args" => atomic;
        "EphemeralContainer"."command" => atomic;
        "EphemeralContainer"."env" => map["name"];
        "EphemeralContainer"."envFrom" => atomic;
        "EphemeralContainer"."ports" => map["containerPort", "protocol"];
        "EphemeralContainer"."resizePolicy" => atomic;
        "EphemeralContainer"."restartPolicyRules" => atomic;
        "EphemeralContainer"."volumeDevices" => map["devicePath"];
        "EphemeralContainer"."volumeMounts" => map["mountPath"];
        "ExecAction"."command" => atomic;
        "FCVolumeSource"."targetWWNs" => atomic;
        "FCVolumeSource"."wwids" => atomic;
        "HTTPGetAction"."httpHeaders" => atomic;
        "HostAlias"."hostnames" => atomic;
        "ISCSIPersistentVolumeSource"."portals" => atomic;
        "ISCSIVolumeSource"."portals" => atomic;
        "LimitRangeSpec"."limits" => atomic;
        "LinuxContainerUser"."supplementalGroups" => atomic;
        "LoadBalancerIngress"."ports" => atomic;
        "LoadBalancerStatus"."ingress" => atomic;
        "NamespaceSpec"."finalizers" => atomic;
        "NamespaceStatus"."conditions" => map["type"];
        "NodeAffinity"."preferredDuringSchedulingIgnoredDuringExecution" => atomic;
        "NodeAllocatableResourceClaimStatus"."containers" => set;
        "NodeAllocatableResourceClaimStatus"."mapping" => map["name"];
        "NodeAllocatableResourceClaimStatus"."overhead" => map["name"];
        "NodePodPreemptionPolicy"."disableResizePreemption" => set;
        "NodeSelector"."nodeSelectorTerms" => atomic;
        "NodeSelectorRequirement"."values" => atomic;
        "NodeSelectorTerm"."matchExpressions" => atomic;
        "NodeSelectorTerm"."matchFields" => atomic;
        "NodeSpec"."podCIDRs" => set;
        "NodeSpec"."taints" => atomic;
        "NodeStatus"."addresses" => map["type"];
        "NodeStatus"."conditions" => map["type"];
        "NodeStatus"."declaredFeatures" => atomic;
        "NodeStatus"."images" => atomic;
        "NodeStatus"."runtimeHandlers" => atomic;
        "NodeStatus"."volumesAttached" => atomic;
        "NodeStatus"."volumesInUse" => atomic;
        "PersistentVolumeClaimSpec"."accessModes" => atomic;
        "PersistentVolumeClaimStatus"."accessModes" => atomic;
        "PersistentVolumeClaimStatus"."conditions" => map["type"];
        "PersistentVolumeSpec"."accessModes" => atomic;
        "PersistentVolumeSpec"."mountOptions" => atomic;
        "PodAffinity"."preferredDuringSchedulingIgnoredDuringExecution" => atomic;
        "PodAffinity"."requiredDuringSchedulingIgnoredDuringExecution" => atomic;
        "PodAffinityTerm"."matchLabelKeys" => atomic;
        "PodAffinityTerm"."mismatchLabelKeys" => atomic;
        "PodAffinityTerm"."namespaces" => atomic;
        "PodAntiAffinity"."preferredDuringSchedulingIgnoredDuringExecution" => atomic;
        "PodAntiAffinity"."requiredDuringSchedulingIgnoredDuringExecution" => atomic;
        "PodDNSConfig"."nameservers" => atomic;
        "PodDNSConfig"."options" => atomic;
        "PodDNSConfig"."searches" => atomic;
        "PodExtendedResourceClaimStatus"."requestMappings" => atomic;
        "PodSecurityContext"."supplementalGroups" => atomic;
        "PodSecurityContext"."sysctls" => atomic;
        "PodSpec"."containers" => map["name"];
        "PodSpec"."ephemeralContainers" => map["name"];
        "PodSpec"."evictionResponders" => map["name"];
        "PodSpec"."hostAliases" => map["ip"];
        "PodSpec"."imagePullSecrets" => map["name"];
        "PodSpec"."initContainers" => map["name"];
        "PodSpec"."readinessGates" => atomic;
        "PodSpec"."resourceClaims" => map["name"];
        "PodSpec"."schedulingGates" => map["name"];
        "PodSpec"."tolerations" => atomic;
        "PodSpec"."topologySpreadConstraints" => map["topologyKey", "whenUnsatisfiable"];
        "PodSpec"."volumes" => map["name"];
        "PodStatus"."conditions" => map["type"];
        "PodStatus"."containerStatuses" => atomic;
        "PodStatus"."ephemeralContainerStatuses" => atomic;
        "PodStatus"."hostIPs" => atomic;
        "PodStatus"."initContainerStatuses" => atomic;
        "PodStatus"."nodeAllocatableResourceClaimStatuses" => map["resourceClaimName"];
        "PodStatus"."podIPs" => map["ip"];
        "PodStatus"."resourceClaimStatuses" => map["name"];
        "PodStatus"."volumeHealth" => map["name"];
        "PodVolumeHealth"."healthConditions" => map["status", "reason"];
        "ProjectedVolumeSource"."sources" => atomic;
        "RBDPersistentVolumeSource"."monitors" => atomic;
        "RBDVolumeSource"."monitors" => atomic;
        "ReplicationControllerStatus"."conditions" => map["type"];
        "ResourceQuotaSpec"."scopes" => atomic;
        "ResourceRequirements"."claims" => map["name"];
        "ResourceStatus"."resources" => map["resourceID"];
        "ScopeSelector"."matchExpressions" => atomic;
        "ScopedResourceSelectorRequirement"."values" => atomic;
        "SecretProjection"."items" => atomic;
        "SecretVolumeSource"."items" => atomic;
        "ServiceAccount"."imagePullSecrets" => atomic;
        "ServiceAccount"."secrets" => map["name"];
        "ServiceSpec"."clusterIPs" => atomic;
        "ServiceSpec"."externalIPs" => atomic;
        "ServiceSpec"."ipFamilies" => atomic;
        "ServiceSpec"."loadBalancerSourceRanges" => atomic;
        "ServiceSpec"."ports" => map["port", "protocol"];
        "ServiceStatus"."conditions" => map["type"];
        "TopologySelectorLabelRequirement"."values" => atomic;
        "TopologySelectorTerm"."matchLabelExpressions" => atomic;
        "TopologySpreadConstraint"."matchLabelKeys" => atomic;
        "VolumeHealthStatus"."healthConditions" => map["status", "reason"];
        "VolumeMount"."bindMountOptions" => set;
    }
    // discovery.k8s.io/v1
    "io.k8s.api.discovery.v1." {
        "Endpoint"."addresses" => set;
        "EndpointHints"."forNodes" => atomic;
        "EndpointHints"."forZones" => atomic;
        "EndpointSlice"."endpoints" => atomic;
        "EndpointSlice"."ports" => atomic;
    }
    // flowcontrol.apiserver.k8s.io/v1
    "io.k8s.api.flowcontrol.v1." {
        "FlowSchemaSpec"."rules" => atomic;
        "FlowSchemaStatus"."conditions" => map["type"];
        "NonResourcePolicyRule"."nonResourceURLs" => set;
        "NonResourcePolicyRule"."verbs" => set;
        "PolicyRulesWithSubjects"."nonResourceRules" => atomic;
        "PolicyRulesWithSubjects"."resourceRules" => atomic;
        "PolicyRulesWithSubjects"."subjects" => atomic;
        "PriorityLevelConfigurationStatus"."conditions" => map["type"];
        "ResourcePolicyRule"."apiGroups" => set;
        "ResourcePolicyRule"."namespaces" => set;
        "ResourcePolicyRule"."resources" => set;
        "ResourcePolicyRule"."verbs" => set;
    }
    // networking.k8s.io/v1
    "io.k8s.api.networking.v1." {
        "HTTPIngressRuleValue"."paths" => atomic;
        "IPBlock"."except" => atomic;
        "IngressLoadBalancerIngress"."ports" => atomic;
        "IngressLoadBalancerStatus"."ingress" => atomic;
        "IngressSpec"."rules" => atomic;
        "IngressSpec"."tls" => atomic;
        "IngressTLS"."hosts" => atomic;
        "NetworkPolicyEgressRule"."ports" => atomic;
        "NetworkPolicyEgressRule"."to" => atomic;
        "NetworkPolicyIngressRule"."from" => atomic;
        "NetworkPolicyIngressRule"."ports" => atomic;
        "NetworkPolicySpec"."egress" => atomic;
        "NetworkPolicySpec"."ingress" => atomic;
        "NetworkPolicySpec"."policyTypes" => atomic;
        "ServiceCIDRSpec"."cidrs" => atomic;
        "ServiceCIDRStatus"."conditions" => map["type"];
    }
    // node.k8s.io/v1
    "io.k8s.api.node.v1." {
        "Scheduling"."tolerations" => atomic;
    }
    // policy/v1
    "io.k8s.api.policy.v1." {
        "PodDisruptionBudgetStatus"."conditions" => map["type"];
    }
    // rbac.authorization.k8s.io/v1
    "io.k8s.api.rbac.v1." {
        "AggregationRule"."clusterRoleSelectors" => atomic;
        "ClusterRole"."rules" => atomic;
        "ClusterRoleBinding"."subjects" => atomic;
        "PolicyRule"."apiGroups" => atomic;
        "PolicyRule"."nonResourceURLs" => atomic;
        "PolicyRule"."resourceNames" => atomic;
        "PolicyRule"."resources" => atomic;
        "PolicyRule"."verbs" => atomic;
        "Role"."rules" => atomic;
        "RoleBinding"."subjects" => atomic;
    }
    // resource.k8s.io/v1
    "io.k8s.api.resource.v1." {
        "AllocatedDeviceStatus"."conditions" => map["type"];
        "CapacityRequestPolicy"."validValues" => atomic;
        "Device"."bindingConditions" => atomic;
        "Device"."bindingFailureConditions" => atomic;
        "Device"."consumesCounters" => atomic;
        "Device"."taints" => atomic;
        "DeviceAllocationConfiguration"."requests" => atomic;
        "DeviceAllocationResult"."config" => atomic;
        "DeviceAllocationResult"."results" => atomic;
        "DeviceAttribute"."bools" => atomic;
        "DeviceAttribute"."ints" => atomic;
        "DeviceAttribute"."strings" => atomic;
        "DeviceAttribute"."versions" => atomic;
        "DeviceClaim"."config" => atomic;
        "DeviceClaim"."constraints" => atomic;
        "DeviceClaim"."requests" => atomic;
        "DeviceClaimConfiguration"."requests" => atomic;
        "DeviceClassSpec"."config" => atomic;
        "DeviceClassSpec"."selectors" => atomic;
        "DeviceConstraint"."requests" => atomic;
        "DeviceRequest"."firstAvailable" => atomic;
        "DeviceRequestAllocationResult"."bindingConditions" => atomic;
        "DeviceRequestAllocationResult"."bindingFailureConditions" => atomic;
        "DeviceRequestAllocationResult"."skipNodeOperations" => set;
        "DeviceRequestAllocationResult"."tolerations" => atomic;
        "DeviceSubRequest"."selectors" => atomic;
        "DeviceSubRequest"."tolerations" => atomic;
        "ExactDeviceRequest"."selectors" => atomic;
        "ExactDeviceRequest"."tolerations" => atomic;
        "NetworkDeviceData"."ips" => atomic;
        "ResourceClaimStatus"."devices" => map["driver", "device", "pool", "shareID"];
        "ResourceClaimStatus"."reservedFor" => map["uid"];
        "ResourceSliceSpec"."devices" => atomic;
        "ResourceSliceSpec"."sharedCounters" => atomic;
        "ResourceSliceSpec"."skipNodeOperations" => set;
    }
    // scheduling.k8s.io/v1alpha3
    "io.k8s.api.scheduling.v1alpha3." {
        "WorkloadPodGroupSchedulingConstraints"."topology" => atomic;
    }
    // storage.k8s.io/v1
    "io.k8s.api.storage.v1." {
        "CSIDriverSpec"."tokenRequests" => atomic;
        "CSIDriverSpec"."volumeLifecycleModes" => set;
        "CSINodeDriver"."topologyKeys" => atomic;
        "CSINodeSpec"."drivers" => map["name"];
        "CSINodeStatus"."storageHealth" => map["name"];
        "StorageClass"."allowedTopologies" => atomic;
        "StorageClass"."mountOptions" => atomic;
        "StorageHealth"."healthConditions" => atomic;
    }
    // apiextensions.k8s.io/v1
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1." {
        "CustomResourceDefinitionNames"."categories" => atomic;
        "CustomResourceDefinitionNames"."shortNames" => atomic;
        "CustomResourceDefinitionSpec"."versions" => atomic;
        "CustomResourceDefinitionStatus"."conditions" => map["type"];
        "CustomResourceDefinitionStatus"."storedVersions" => atomic;
        "CustomResourceDefinitionVersion"."additionalPrinterColumns" => atomic;
        "CustomResourceDefinitionVersion"."selectableFields" => atomic;
        "JSONSchemaProps"."allOf" => atomic;
        "JSONSchemaProps"."anyOf" => atomic;
        "JSONSchemaProps"."enum" => atomic;
        "JSONSchemaProps"."oneOf" => atomic;
        "JSONSchemaProps"."required" => atomic;
        "JSONSchemaProps"."x-kubernetes-list-map-keys" => atomic;
        "JSONSchemaProps"."x-kubernetes-validations" => map["rule"];
        "WebhookConversion"."conversionReviewVersions" => atomic;
    }
    // meta/v1 (every object's metadata)
    "io.k8s.apimachinery.pkg.apis.meta.v1." {
        "APIGroup"."serverAddressByClientCIDRs" => atomic;
        "APIGroup"."versions" => atomic;
        "APIGroupList"."groups" => atomic;
        "APIResource"."categories" => atomic;
        "APIResource"."shortNames" => atomic;
        "APIResourceList"."resources" => atomic;
        "APIVersions"."serverAddressByClientCIDRs" => atomic;
        "APIVersions"."versions" => atomic;
        "DeleteOptions"."dryRun" => atomic;
        "FieldSelectorRequirement"."values" => atomic;
        "LabelSelector"."matchExpressions" => atomic;
        "LabelSelectorRequirement"."values" => atomic;
        "ObjectMeta"."finalizers" => set;
        "ObjectMeta"."managedFields" => atomic;
        "ObjectMeta"."ownerReferences" => map["uid"];
        "StatusDetails"."causes" => atomic;
    }
    // apiregistration.k8s.io/v1
    "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1." {
        "APIServiceSpec"."caBundle" => atomic;
        "APIServiceStatus"."conditions" => map["type"];
    }
};

/// Every field-level `+mapType` and `+structType` of the served definitions.
pub const MAP_TYPES: &[MapField] = rows! {
    map_field;
    // core/v1
    "io.k8s.api.core.v1." {
        "PersistentVolumeClaimStatus"."allocatedResourceStatuses" => granular;
        "PersistentVolumeSpec"."claimRef" => granular;
        "PodSpec"."nodeSelector" => atomic;
        "ReplicationControllerSpec"."selector" => atomic;
        "ServiceSpec"."selector" => atomic;
    }
    // node.k8s.io/v1
    "io.k8s.api.node.v1." {
        "Scheduling"."nodeSelector" => atomic;
    }
};

/// The definitions whose type is atomic as a whole (type-level `+structType=atomic` or
/// `+mapType=atomic`; upstream publishes `x-kubernetes-map-type: atomic` on the definition).
pub const ATOMIC_TYPES: &[&str] = &[
    "io.k8s.api.admissionregistration.v1.MatchResources",
    "io.k8s.api.admissionregistration.v1.NamedRuleWithOperations",
    "io.k8s.api.admissionregistration.v1.ParamKind",
    "io.k8s.api.admissionregistration.v1.ParamRef",
    "io.k8s.api.admissionregistration.v1.Variable",
    "io.k8s.api.autoscaling.v1.CrossVersionObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.EvictionResponder",
    "io.k8s.api.core.v1.FileKeySelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.discovery.v1.EndpointPort",
    "io.k8s.api.networking.v1.ServiceBackendPort",
    "io.k8s.api.rbac.v1.RoleRef",
    "io.k8s.api.rbac.v1.Subject",
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
];

/// The list type of `property` in the OpenAPI definition `definition`, if upstream tags one.
pub fn list_type(definition: &str, property: &str) -> Option<ListType> {
    LIST_TYPES
        .binary_search_by(|row| (row.definition, row.property).cmp(&(definition, property)))
        .ok()
        .map(|at| LIST_TYPES[at].list_type)
}

/// The map type of `property` in the OpenAPI definition `definition`, if upstream tags one on
/// the field (the field's type may still be atomic: see [`is_atomic_type`]).
pub fn map_type(definition: &str, property: &str) -> Option<MapType> {
    MAP_TYPES
        .binary_search_by(|row| (row.definition, row.property).cmp(&(definition, property)))
        .ok()
        .map(|at| MAP_TYPES[at].map_type)
}

/// Whether the OpenAPI definition `definition` is atomic as a whole.
pub fn is_atomic_type(definition: &str) -> bool {
    ATOMIC_TYPES.binary_search(&definition).is_ok()
}

/// Writes `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and `x-kubernetes-map-type`
/// into OpenAPI `definitions` (name → schema) where upstream's published spec carries them: on
/// the property schema for field markers, on the definition schema for type-level ones. Clients
/// (kubectl, client-go's structured-merge-diff) read them to build apply configurations.
pub fn annotate_openapi_topology(definitions: &mut Map<String, Value>) {
    for row in LIST_TYPES {
        let keys = match row.list_type {
            ListType::Map(keys) => Some(("x-kubernetes-list-map-keys", Value::from(keys.to_vec()))),
            ListType::Atomic | ListType::Set => None,
        };
        let list_type = (
            "x-kubernetes-list-type",
            Value::from(row.list_type.as_str()),
        );
        crate::openapi::annotate_property(
            definitions,
            row.definition,
            row.property,
            [list_type].into_iter().chain(keys),
        );
    }
    for row in MAP_TYPES {
        let map_type = ("x-kubernetes-map-type", Value::from(row.map_type.as_str()));
        crate::openapi::annotate_property(definitions, row.definition, row.property, [map_type]);
    }
    for name in ATOMIC_TYPES {
        if let Some(Value::Object(definition)) = definitions.get_mut(*name) {
            definition.insert(
                "x-kubernetes-map-type".to_owned(),
                Value::from(MapType::Atomic.as_str()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CONTAINER: &str = "io.k8s.api.core.v1.Container";
    const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    const LABEL_SELECTOR: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector";

    fn assert_sorted_and_unique<'a>(keys: impl Iterator<Item = (&'a str, &'a str)>) {
        let keys: Vec<_> = keys.collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{:?} then {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        assert_sorted_and_unique(LIST_TYPES.iter().map(|row| (row.definition, row.property)));
        assert_sorted_and_unique(MAP_TYPES.iter().map(|row| (row.definition, row.property)));
        assert_sorted_and_unique(ATOMIC_TYPES.iter().map(|name| (*name, "")));
    }

    /// The definitions of the served `/openapi/v2` document, annotated.
    fn served_definitions() -> Map<String, Value> {
        let mut document = crate::openapi_v2(&crate::builtin_resources(), &[]);
        match document.get_mut("definitions").map(Value::take) {
            Some(Value::Object(definitions)) => definitions,
            other => panic!("no definitions: {other:?}"),
        }
    }

    /// Follows `$ref`s to the schema that describes the value.
    fn resolve<'a>(definitions: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/definitions/");
            schema = &definitions[name];
        }
        schema
    }

    /// A typo in a table would silently make a keyed list atomic: every row must name a served
    /// property of the right shape, and the served document must carry it.
    #[test]
    fn every_row_names_a_served_property_of_the_right_shape() {
        let definitions = served_definitions();
        let mut problems = Vec::new();
        let property_of = |definition: &str, property: &str| {
            definitions
                .get(definition)
                .and_then(|schema| schema.get("properties"))
                .and_then(|properties| properties.get(property))
        };
        for row in LIST_TYPES {
            let name = format!("{}.{}", row.definition, row.property);
            let Some(property) = property_of(row.definition, row.property) else {
                problems.push(format!("{name}: no such property"));
                continue;
            };
            let shape = resolve(&definitions, property);
            let bytes = shape["type"] == "string" && shape["format"] == "byte";
            if shape["type"] != "array" && !(bytes && row.list_type == ListType::Atomic) {
                problems.push(format!("{name}: not an array"));
            }
            let items = resolve(&definitions, &shape["items"]);
            match row.list_type {
                ListType::Atomic => {}
                ListType::Set => {
                    if items["type"] == "object" {
                        problems.push(format!("{name}: a set of objects"));
                    }
                }
                ListType::Map(keys) => {
                    if keys.is_empty() {
                        problems.push(format!("{name}: a map list without keys"));
                    }
                    for key in keys {
                        if items["properties"].get(key).is_none() {
                            problems.push(format!("{name}: elements lack the key {key}"));
                        }
                    }
                }
            }
            if property["x-kubernetes-list-type"] != row.list_type.as_str() {
                problems.push(format!("{name}: not annotated"));
            }
        }
        for row in MAP_TYPES {
            let name = format!("{}.{}", row.definition, row.property);
            let Some(property) = property_of(row.definition, row.property) else {
                problems.push(format!("{name}: no such property"));
                continue;
            };
            if resolve(&definitions, property)["type"] != "object" {
                problems.push(format!("{name}: not an object"));
            }
            if property["x-kubernetes-map-type"] != row.map_type.as_str() {
                problems.push(format!("{name}: not annotated"));
            }
        }
        for name in ATOMIC_TYPES {
            match definitions.get(*name) {
                None => problems.push(format!("{name}: no such definition")),
                Some(schema) if schema["type"] != "object" => {
                    problems.push(format!("{name}: not an object"));
                }
                Some(schema) if schema["x-kubernetes-map-type"] != "atomic" => {
                    problems.push(format!("{name}: not annotated"));
                }
                Some(_) => {}
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn lookups_find_the_rows() {
        assert_eq!(
            list_type(CONTAINER, "ports"),
            Some(ListType::Map(&["containerPort", "protocol"]))
        );
        assert_eq!(list_type(CONTAINER, "args"), Some(ListType::Atomic));
        assert_eq!(list_type(OBJECT_META, "finalizers"), Some(ListType::Set));
        assert_eq!(list_type(CONTAINER, "name"), None);
        assert_eq!(list_type("io.k8s.api.core.v1.Nonsense", "ports"), None);
        assert_eq!(
            map_type("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
            Some(MapType::Atomic)
        );
        assert_eq!(
            map_type("io.k8s.api.core.v1.PersistentVolumeSpec", "claimRef"),
            Some(MapType::Granular)
        );
        assert_eq!(map_type(OBJECT_META, "labels"), None);
        assert!(is_atomic_type(LABEL_SELECTOR));
        assert!(is_atomic_type("io.k8s.api.core.v1.LocalObjectReference"));
        assert!(!is_atomic_type("io.k8s.api.core.v1.Pod"));
    }

    /// The extensions on the served property `definition.property`, upstream's examples.
    fn extensions_of(definitions: &Map<String, Value>, definition: &str, property: &str) -> Value {
        let schema = &definitions[definition]["properties"][property];
        let extensions: Map<String, Value> = [
            "x-kubernetes-list-type",
            "x-kubernetes-list-map-keys",
            "x-kubernetes-map-type",
        ]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), schema.get(key)?.clone())))
        .collect();
        Value::Object(extensions)
    }

    #[test]
    fn annotates_openapi_like_upstream() {
        let definitions = served_definitions();
        let extensions = |definition, property| extensions_of(&definitions, definition, property);
        assert_eq!(
            extensions(CONTAINER, "ports"),
            json!({
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
            })
        );
        assert_eq!(
            extensions("io.k8s.api.core.v1.ServiceSpec", "ports"),
            json!({
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
            })
        );
        assert_eq!(
            extensions(OBJECT_META, "finalizers"),
            json!({"x-kubernetes-list-type": "set"})
        );
        assert_eq!(
            extensions(OBJECT_META, "ownerReferences"),
            json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]})
        );
        assert_eq!(
            extensions(OBJECT_META, "managedFields"),
            json!({"x-kubernetes-list-type": "atomic"})
        );
        assert_eq!(extensions(OBJECT_META, "labels"), json!({}));
        assert_eq!(
            extensions("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
            json!({"x-kubernetes-map-type": "atomic"})
        );
        assert_eq!(
            extensions("io.k8s.api.core.v1.PersistentVolumeSpec", "claimRef"),
            json!({"x-kubernetes-map-type": "granular"})
        );
        assert_eq!(
            definitions[LABEL_SELECTOR]["x-kubernetes-map-type"],
            "atomic"
        );
        assert!(definitions["io.k8s.api.core.v1.PodSpec"]
            .get("x-kubernetes-map-type")
            .is_none());
    }
}
