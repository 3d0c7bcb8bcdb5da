//! The built-in resources k3rs serves: upstream's default set for its Kubernetes version (GA
//! groups and versions; alpha and beta APIs are off by default upstream, and so here).

use k8s_openapi::{ListableResource, Resource};
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// An API verb, as discovery lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `create`
    Create,
    /// `delete`
    Delete,
    /// `deletecollection`
    DeleteCollection,
    /// `get`
    Get,
    /// `list`
    List,
    /// `patch`
    Patch,
    /// `update`
    Update,
    /// `watch`
    Watch,
}

impl Verb {
    /// The verb's name in discovery and RBAC.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Patch => "patch",
            Verb::Update => "update",
            Verb::Watch => "watch",
        }
    }
}

/// Every verb: what an ordinary stored resource supports.
pub const ALL_VERBS: &[Verb] = &[
    Verb::Create,
    Verb::Delete,
    Verb::DeleteCollection,
    Verb::Get,
    Verb::List,
    Verb::Patch,
    Verb::Update,
    Verb::Watch,
];
/// Virtual "review" resources that are only ever created (and answered, never stored).
pub const CREATE_ONLY: &[Verb] = &[Verb::Create];
/// Read-only resources computed on the fly.
pub const READ_ONLY: &[Verb] = &[Verb::Get, Verb::List];

/// One served resource (one group/version/resource).
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// `group/version`, or `v1` for the core group.
    pub api_version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Kind of the list, e.g. `DeploymentList`; empty for create-only resources.
    pub list_kind: &'static str,
    /// Plural resource name (the URL segment), e.g. `deployments`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `deployment`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// The verbs served on the resource itself.
    pub verbs: &'static [Verb],
    /// `kubectl` short names, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Subresources served, e.g. `status`, `scale`.
    pub subresources: &'static [&'static str],
    /// The OpenAPI schema of the kind, registered in the generator's definitions.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// The schema name (OpenAPI definition name), e.g. `io.k8s.api.apps.v1.Deployment`.
    pub schema_name: fn() -> String,
    /// Decodes a JSON object into the kind's typed form and encodes it again, as upstream
    /// decodes every request: wrong types fail (with serde's message) and unknown fields are
    /// dropped. See [`crate::strict`] for naming what was dropped.
    pub typed: fn(&serde_json::Value) -> Result<serde_json::Value, serde_json::Error>,
    /// What a CRD serves beyond these facts (schema, printer columns, selectable fields, scale
    /// paths); `None` for built-in resources. Custom resources have no Rust type: their
    /// `typed` is the identity and their decoding is the schema's pruning ([`Self::decode`]).
    pub custom: Option<std::sync::Arc<crate::custom::CustomResource>>,
}

impl ResourceInfo {
    /// Whether the resource serves `verb`.
    pub fn supports(&self, verb: Verb) -> bool {
        self.verbs.contains(&verb)
    }

    /// Whether the resource serves the subresource `name`.
    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }

    /// Decodes a client's object as upstream decodes a request body: built-in kinds through
    /// their typed round trip (`typed`), custom resources by pruning what their schema does
    /// not specify. Comparing input and output with [`crate::strict::unknown_fields`] names
    /// the dropped fields for `fieldValidation=Strict`.
    pub fn decode(
        &self,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, serde_json::Error> {
        match &self.custom {
            Some(custom) => {
                let mut pruned = value.clone();
                custom.prune(&mut pruned);
                Ok(pruned)
            }
            None => (self.typed)(value),
        }
    }

    /// Whether this is a custom resource (served for a CRD).
    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }
}

/// A resource's scope, read off k8s-openapi's marker types.
trait Scope {
    const NAMESPACED: bool;
}
impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// Discovery facts that k8s-openapi does not carry.
struct Extra {
    verbs: &'static [Verb],
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
}

const PLAIN: Extra = Extra {
    verbs: ALL_VERBS,
    short_names: &[],
    categories: &[],
    subresources: &[],
};

fn info<T>(extra: Extra) -> ResourceInfo
where
    T: Resource + ListableResource + JsonSchema + serde::de::DeserializeOwned + serde::Serialize,
    T::Scope: Scope,
{
    base::<T>(extra, T::LIST_KIND)
}

/// A resource that is only ever created (a review or a binding): it has no list kind.
fn create_only<T>() -> ResourceInfo
where
    T: Resource + JsonSchema + serde::de::DeserializeOwned + serde::Serialize,
    T::Scope: Scope,
{
    base::<T>(
        Extra {
            verbs: CREATE_ONLY,
            ..PLAIN
        },
        "",
    )
}

fn base<T>(extra: Extra, list_kind: &'static str) -> ResourceInfo
where
    T: Resource + JsonSchema + serde::de::DeserializeOwned + serde::Serialize,
    T::Scope: Scope,
{
    ResourceInfo {
        group: T::GROUP,
        version: T::VERSION,
        api_version: T::API_VERSION,
        kind: T::KIND,
        list_kind,
        plural: T::URL_PATH_SEGMENT,
        singular: T::KIND.to_ascii_lowercase(),
        namespaced: <T::Scope as Scope>::NAMESPACED,
        verbs: extra.verbs,
        short_names: extra.short_names,
        categories: extra.categories,
        subresources: extra.subresources,
        schema: |generator| generator.subschema_for::<T>(),
        schema_name: || T::schema_name().into_owned(),
        typed: |value| {
            let typed: T = serde_json::from_value(value.clone())?;
            serde_json::to_value(&typed)
        },
        custom: None,
    }
}

const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["scale", "status"];
const ALL: &[&str] = &["all"];

/// Every built-in resource k3rs serves, in a stable order (group, version, resource).
pub fn builtin_resources() -> Vec<ResourceInfo> {
    use k8s_openapi::api::{
        admissionregistration, apps, authentication, authorization, autoscaling, batch,
        certificates, coordination, core, discovery, events, flowcontrol, networking, node, policy,
        rbac, resource, scheduling, storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;

    let mut all = vec![
        // core/v1
        create_only::<core::v1::Binding>(),
        info::<core::v1::ComponentStatus>(Extra {
            verbs: READ_ONLY,
            short_names: &["cs"],
            ..PLAIN
        }),
        info::<core::v1::ConfigMap>(Extra {
            short_names: &["cm"],
            ..PLAIN
        }),
        info::<core::v1::Endpoints>(Extra {
            short_names: &["ep"],
            ..PLAIN
        }),
        info::<core::v1::Event>(Extra {
            short_names: &["ev"],
            ..PLAIN
        }),
        info::<core::v1::LimitRange>(Extra {
            short_names: &["limits"],
            ..PLAIN
        }),
        info::<core::v1::Namespace>(Extra {
            verbs: &[
                Verb::Create,
                Verb::Delete,
                Verb::Get,
                Verb::List,
                Verb::Patch,
                Verb::Update,
                Verb::Watch,
            ],
            short_names: &["ns"],
            subresources: &["finalize", "status"],
            ..PLAIN
        }),
        info::<core::v1::Node>(Extra {
            short_names: &["no"],
            subresources: &["proxy", "status"],
            ..PLAIN
        }),
        info::<core::v1::PersistentVolumeClaim>(Extra {
            short_names: &["pvc"],
            subresources: STATUS,
            ..PLAIN
        }),
        info::<core::v1::PersistentVolume>(Extra {
            short_names: &["pv"],
            subresources: STATUS,
            ..PLAIN
        }),
        info::<core::v1::Pod>(Extra {
            short_names: &["po"],
            categories: ALL,
            subresources: &[
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status",
            ],
            ..PLAIN
        }),
        info::<core::v1::PodTemplate>(PLAIN),
        info::<core::v1::ReplicationController>(Extra {
            short_names: &["rc"],
            categories: ALL,
            subresources: STATUS_SCALE,
            ..PLAIN
        }),
        info::<core::v1::ResourceQuota>(Extra {
            short_names: &["quota"],
            subresources: STATUS,
            ..PLAIN
        }),
        info::<core::v1::Secret>(PLAIN),
        info::<core::v1::ServiceAccount>(Extra {
            short_names: &["sa"],
            subresources: &["token"],
            ..PLAIN
        }),
        info::<core::v1::Service>(Extra {
            verbs: &[
                Verb::Create,
                Verb::Delete,
                Verb::DeleteCollection,
                Verb::Get,
                Verb::List,
                Verb::Patch,
                Verb::Update,
                Verb::Watch,
            ],
            short_names: &["svc"],
            categories: ALL,
            subresources: &["proxy", "status"],
        }),
        // admissionregistration.k8s.io/v1
        info::<admissionregistration::v1::MutatingWebhookConfiguration>(PLAIN),
        info::<admissionregistration::v1::ValidatingAdmissionPolicy>(Extra {
            subresources: STATUS,
            ..PLAIN
        }),
        info::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>(PLAIN),
        info::<admissionregistration::v1::ValidatingWebhookConfiguration>(PLAIN),
        info::<admissionregistration::v1::MutatingAdmissionPolicy>(PLAIN),
        info::<admissionregistration::v1::MutatingAdmissionPolicyBinding>(PLAIN),
        // apiextensions.k8s.io/v1
        info::<apiextensions::v1::CustomResourceDefinition>(Extra {
            short_names: &["crd", "crds"],
            subresources: STATUS,
            ..PLAIN
        }),
        // apiregistration.k8s.io/v1
        info::<apiregistration::v1::APIService>(Extra {
            subresources: STATUS,
            ..PLAIN
        }),
        // apps/v1
        info::<apps::v1::ControllerRevision>(PLAIN),
        info::<apps::v1::DaemonSet>(Extra {
            short_names: &["ds"],
            categories: ALL,
            subresources: STATUS,
            ..PLAIN
        }),
        info::<apps::v1::Deployment>(Extra {
            short_names: &["deploy"],
            categories: ALL,
            subresources: STATUS_SCALE,
            ..PLAIN
        }),
        info::<apps::v1::ReplicaSet>(Extra {
            short_names: &["rs"],
            categories: ALL,
            subresources: STATUS_SCALE,
            ..PLAIN
        }),
        info::<apps::v1::StatefulSet>(Extra {
            short_names: &["sts"],
            categories: ALL,
            subresources: STATUS_SCALE,
            ..PLAIN
        }),
        // authentication.k8s.io/v1
        create_only::<authentication::v1::SelfSubjectReview>(),
        create_only::<authentication::v1::TokenReview>(),
        // authorization.k8s.io/v1
        create_only::<authorization::v1::LocalSubjectAccessReview>(),
        create_only::<authorization::v1::SelfSubjectAccessReview>(),
        create_only::<authorization::v1::SelfSubjectRulesReview>(),
        create_only::<authorization::v1::SubjectAccessReview>(),
        // autoscaling/v2 (the preferred version) and v1
        info::<autoscaling::v2::HorizontalPodAutoscaler>(Extra {
            short_names: &["hpa"],
            categories: ALL,
            subresources: STATUS,
            ..PLAIN
        }),
        info::<autoscaling::v1::HorizontalPodAutoscaler>(Extra {
            short_names: &["hpa"],
            categories: ALL,
            subresources: STATUS,
            ..PLAIN
        }),
        // batch/v1
        info::<batch::v1::CronJob>(Extra {
            short_names: &["cj"],
            categories: ALL,
            subresources: STATUS,
            ..PLAIN
        }),
        info::<batch::v1::Job>(Extra {
            categories: ALL,
            subresources: STATUS,
            ..PLAIN
        }),
        // certificates.k8s.io/v1
        info::<certificates::v1::CertificateSigningRequest>(Extra {
            short_names: &["csr"],
            subresources: &["approval", "status"],
            ..PLAIN
        }),
        // coordination.k8s.io/v1
        info::<coordination::v1::Lease>(PLAIN),
        // discovery.k8s.io/v1
        info::<discovery::v1::EndpointSlice>(PLAIN),
        // events.k8s.io/v1
        info::<events::v1::Event>(Extra {
            short_names: &["ev"],
            ..PLAIN
        }),
        // flowcontrol.apiserver.k8s.io/v1
        info::<flowcontrol::v1::FlowSchema>(Extra {
            subresources: STATUS,
            ..PLAIN
        }),
        info::<flowcontrol::v1::PriorityLevelConfiguration>(Extra {
            subresources: STATUS,
            ..PLAIN
        }),
        // networking.k8s.io/v1
        info::<networking::v1::IngressClass>(PLAIN),
        info::<networking::v1::Ingress>(Extra {
            short_names: &["ing"],
            subresources: STATUS,
            ..PLAIN
        }),
        info::<networking::v1::IPAddress>(Extra {
            short_names: &["ip"],
            ..PLAIN
        }),
        info::<networking::v1::NetworkPolicy>(Extra {
            short_names: &["netpol"],
            ..PLAIN
        }),
        info::<networking::v1::ServiceCIDR>(Extra {
            subresources: STATUS,
            ..PLAIN
        }),
        // node.k8s.io/v1
        info::<node::v1::RuntimeClass>(PLAIN),
        // policy/v1
        info::<policy::v1::PodDisruptionBudget>(Extra {
            short_names: &["pdb"],
            subresources: STATUS,
            ..PLAIN
        }),
        // rbac.authorization.k8s.io/v1
        info::<rbac::v1::ClusterRoleBinding>(PLAIN),
        info::<rbac::v1::ClusterRole>(PLAIN),
        info::<rbac::v1::RoleBinding>(PLAIN),
        info::<rbac::v1::Role>(PLAIN),
        // resource.k8s.io/v1
        info::<resource::v1::DeviceClass>(PLAIN),
        info::<resource::v1::ResourceClaim>(Extra {
            subresources: STATUS,
            ..PLAIN
        }),
        info::<resource::v1::ResourceClaimTemplate>(PLAIN),
        info::<resource::v1::ResourceSlice>(PLAIN),
        // scheduling.k8s.io/v1
        info::<scheduling::v1::PriorityClass>(Extra {
            short_names: &["pc"],
            ..PLAIN
        }),
        // storage.k8s.io/v1
        info::<storage::v1::CSIDriver>(PLAIN),
        info::<storage::v1::CSINode>(PLAIN),
        info::<storage::v1::CSIStorageCapacity>(PLAIN),
        info::<storage::v1::StorageClass>(Extra {
            short_names: &["sc"],
            ..PLAIN
        }),
        info::<storage::v1::VolumeAttachment>(Extra {
            subresources: STATUS,
            ..PLAIN
        }),
        info::<storage::v1::VolumeAttributesClass>(Extra {
            short_names: &["vac"],
            ..PLAIN
        }),
    ];
    all.sort_by(|a, b| {
        (a.group, group_version_rank(a), a.plural).cmp(&(b.group, group_version_rank(b), b.plural))
    });
    all
}

/// Orders versions within a group: the preferred (first listed in discovery) version first.
fn group_version_rank(info: &ResourceInfo) -> u8 {
    match (info.group, info.version) {
        ("autoscaling", "v2") => 0,
        ("autoscaling", "v1") => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let all = builtin_resources();
        assert!(all.len() > 60);
        let mut seen = std::collections::HashSet::new();
        for r in &all {
            assert!(
                seen.insert((r.group, r.version, r.plural)),
                "{}/{} twice",
                r.api_version,
                r.plural
            );
            assert!(!r.verbs.is_empty());
        }
        let pods = all.iter().find(|r| r.plural == "pods").unwrap();
        assert!(pods.namespaced && pods.has_subresource("status"));
        assert_eq!(pods.api_version, "v1");
        let nodes = all.iter().find(|r| r.plural == "nodes").unwrap();
        assert!(!nodes.namespaced);
        let deploy = all.iter().find(|r| r.plural == "deployments").unwrap();
        assert_eq!(
            (deploy.group, deploy.kind, deploy.singular.as_str()),
            ("apps", "Deployment", "deployment")
        );
        assert_eq!((deploy.schema_name)(), "io.k8s.api.apps.v1.Deployment");
    }
}
