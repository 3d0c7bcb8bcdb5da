//! Well-known label, annotation and taint keys (upstream's `k8s.io/api/core/v1/well_known_*.go`,
//! `apps/v1`'s and `batch/v1`'s constants), named once so that every component spells them alike.

// Node labels the kubelet sets and the scheduler matches on.
/// The node's host name (the default topology key of pod anti-affinity and spread constraints).
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The node's operating system (`linux`).
pub const LABEL_OS: &str = "kubernetes.io/os";
/// The node's CPU architecture (`amd64`, `arm64`).
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// The node's instance type (cloud providers set it).
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// The node's zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// The prefix of node-role labels (`node-role.kubernetes.io/control-plane`).
pub const LABEL_NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// The control-plane role label.
pub const LABEL_NODE_ROLE_CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
/// The control-plane role label before 1.24.
pub const LABEL_NODE_ROLE_MASTER: &str = "node-role.kubernetes.io/master";
/// The namespace's own name, set on every namespace.
pub const LABEL_METADATA_NAME: &str = "kubernetes.io/metadata.name";

// Labels controllers put on the pods and objects they own.
/// A ReplicaSet's pod-template hash, on it and its pods (apps/v1 `DefaultDeploymentUniqueLabelKey`).
pub const LABEL_POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The ControllerRevision a StatefulSet's or DaemonSet's pod was made from.
pub const LABEL_CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
/// The DaemonSet template generation of a daemon pod (deprecated upstream, still set).
pub const LABEL_POD_TEMPLATE_GENERATION: &str = "pod-template-generation";
/// A StatefulSet pod's name.
pub const LABEL_STATEFULSET_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// A StatefulSet or indexed Job pod's ordinal.
pub const LABEL_POD_INDEX: &str = "apps.kubernetes.io/pod-index";
/// A Job's uid, on the Job's pod template and pods.
pub const LABEL_JOB_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The Job's name, on its pods.
pub const LABEL_JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// [`LABEL_JOB_CONTROLLER_UID`] without its prefix, as upstream still also sets it.
pub const LABEL_LEGACY_CONTROLLER_UID: &str = "controller-uid";
/// [`LABEL_JOB_NAME`] without its prefix, as upstream still also sets it.
pub const LABEL_LEGACY_JOB_NAME: &str = "job-name";
/// The Service an EndpointSlice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Who manages an EndpointSlice.
pub const LABEL_ENDPOINTSLICE_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

// Annotations.
/// The revision of a Deployment and of its ReplicaSets.
pub const ANNOTATION_DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a ReplicaSet had before (a rollback reuses a ReplicaSet).
pub const ANNOTATION_DEPLOYMENT_REVISION_HISTORY: &str =
    "deployment.kubernetes.io/revision-history";
/// A ReplicaSet's Deployment's `spec.replicas` when it was last scaled.
pub const ANNOTATION_DEPLOYMENT_DESIRED_REPLICAS: &str =
    "deployment.kubernetes.io/desired-replicas";
/// A ReplicaSet's Deployment's replicas plus max surge when it was last scaled.
pub const ANNOTATION_DEPLOYMENT_MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Why a revision was made (`kubectl rollout history` shows it).
pub const ANNOTATION_CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The last configuration `kubectl apply` (client side) applied.
pub const ANNOTATION_LAST_APPLIED_CONFIGURATION: &str =
    "kubectl.kubernetes.io/last-applied-configuration";
/// The time a CronJob scheduled a Job for.
pub const ANNOTATION_CRONJOB_SCHEDULED_TIMESTAMP: &str =
    "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// An indexed Job pod's completion index.
pub const ANNOTATION_JOB_COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The ServiceAccount a token Secret belongs to.
pub const ANNOTATION_SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";
/// A mirror pod's hash of its static pod.
pub const ANNOTATION_CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

// Node taints (`node.kubernetes.io/…`), set by the node lifecycle controller and tolerated by
// default (pods) or always (daemons).
/// The node's Ready condition is False.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The node's Ready condition is Unknown (the node stopped reporting).
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The node is cordoned (`spec.unschedulable`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The node reports memory pressure.
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// The node reports disk pressure.
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// The node reports PID pressure.
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// The node's network is not configured.
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

// Other well-known values.
/// The Secret type of legacy ServiceAccount tokens.
pub const SECRET_TYPE_SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
