//! The RBAC authorizer: Roles, ClusterRoles and their bindings, evaluated against request
//! attributes as upstream's `plugin/pkg/auth/authorizer/rbac` does.
//!
//! [`Policy`] is one consistent snapshot of every RBAC object; it is built by the watch-fed
//! cache (`cache.rs`) and never changed in place. A request is allowed when some binding that
//! applies to the user (ClusterRoleBindings everywhere, RoleBindings in the request's
//! namespace) refers to a role with a rule that covers the request. Nothing is ever denied
//! explicitly: no matching rule means "no".

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::attributes::Attributes;
use super::user::{self, UserInfo};

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1` `PolicyRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyRule {
    #[serde(default)]
    pub(crate) verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) non_resource_urls: Vec<String>,
}

/// Who a binding grants its role to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subject {
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) namespace: String,
    #[serde(default, rename = "apiGroup", skip_serializing_if = "String::is_empty")]
    pub(crate) api_group: String,
}

/// The role a binding grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoleRef {
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default, rename = "apiGroup")]
    pub(crate) api_group: String,
}

/// A Role or ClusterRole, as far as authorization and aggregation care.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Role {
    pub(crate) rules: Vec<PolicyRule>,
    pub(crate) labels: BTreeMap<String, String>,
    /// `aggregationRule.clusterRoleSelectors` (ClusterRoles only), as label-selector objects.
    pub(crate) aggregation: Option<Vec<Value>>,
}

impl Role {
    /// Reads a stored Role or ClusterRole. Malformed rules are skipped, never guessed at.
    pub(crate) fn from_object(object: &Value) -> Role {
        let rules = object
            .get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter_map(|r| serde_json::from_value(r.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let aggregation = object
            .get("aggregationRule")
            .and_then(|a| a.get("clusterRoleSelectors"))
            .and_then(Value::as_array)
            .cloned();
        Role {
            rules,
            labels,
            aggregation,
        }
    }
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) name: String,
    /// Empty for ClusterRoleBindings.
    pub(crate) namespace: String,
    pub(crate) role_ref: RoleRef,
    pub(crate) subjects: Vec<Subject>,
}

impl Binding {
    /// Reads a stored binding; `None` when its roleRef is unusable.
    pub(crate) fn from_object(object: &Value) -> Option<Binding> {
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?.to_owned();
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let role_ref: RoleRef = serde_json::from_value(object.get("roleRef")?.clone()).ok()?;
        let subjects = object
            .get("subjects")
            .and_then(Value::as_array)
            .map(|subjects| {
                subjects
                    .iter()
                    .filter_map(|s| serde_json::from_value(s.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        Some(Binding {
            name,
            namespace,
            role_ref,
            subjects,
        })
    }

    fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("ClusterRoleBinding {:?}", self.name)
        } else {
            format!("RoleBinding \"{}/{}\"", self.name, self.namespace)
        }
    }
}

/// Every RBAC object at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    pub(crate) cluster_roles: HashMap<String, Role>,
    /// Keyed by (namespace, name).
    pub(crate) roles: HashMap<(String, String), Role>,
    pub(crate) cluster_role_bindings: Vec<Binding>,
    /// Keyed by namespace.
    pub(crate) role_bindings: HashMap<String, Vec<Binding>>,
}

/// The outcome of an authorization check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) allowed: bool,
    /// Why it was allowed (empty when denied, as upstream's RBAC leaves it).
    pub(crate) reason: String,
}

impl Policy {
    /// The rules of the role a binding refers to, if it exists.
    fn rules_of(&self, binding: &Binding) -> Option<&[PolicyRule]> {
        let role_ref = &binding.role_ref;
        if role_ref.api_group != "rbac.authorization.k8s.io" && !role_ref.api_group.is_empty() {
            return None;
        }
        let role = match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            // A ClusterRoleBinding cannot refer to a Role.
            "Role" if !binding.namespace.is_empty() => self
                .roles
                .get(&(binding.namespace.clone(), role_ref.name.clone())),
            _ => None,
        }?;
        Some(&role.rules)
    }

    /// The bindings that may apply to a request in `namespace`: every ClusterRoleBinding, then
    /// the RoleBindings of the namespace.
    fn bindings<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Binding> + 'a {
        let local = if namespace.is_empty() {
            None
        } else {
            self.role_bindings.get(namespace)
        };
        self.cluster_role_bindings
            .iter()
            .chain(local.into_iter().flatten())
    }

    /// Whether `user` may do what `attributes` describe.
    pub(crate) fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        if user.in_group(user::MASTERS) {
            // Upstream's privileged-group authorizer runs before RBAC and gives no reason.
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        for binding in self.bindings(&attributes.namespace) {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| applies_to(s, user, &binding.namespace))
            else {
                continue;
            };
            let Some(rules) = self.rules_of(binding) else {
                continue;
            };
            if rules.iter().any(|rule| rule_allows(rule, attributes)) {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by {} of {} {:?} to {}",
                        binding.describe(),
                        binding.role_ref.kind,
                        binding.role_ref.name,
                        describe_subject(subject, &binding.namespace)
                    ),
                };
            }
        }
        Decision {
            allowed: false,
            reason: String::new(),
        }
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide rules included), as
    /// `SelfSubjectRulesReview` lists them.
    pub(crate) fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        if user.in_group(user::MASTERS) {
            rules.push(PolicyRule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..PolicyRule::default()
            });
            rules.push(PolicyRule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
                ..PolicyRule::default()
            });
        }
        for binding in self.bindings(namespace) {
            if !binding
                .subjects
                .iter()
                .any(|s| applies_to(s, user, &binding.namespace))
            {
                continue;
            }
            for rule in self.rules_of(binding).unwrap_or_default() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        rules
    }
}

/// Whether a binding's subject names `user` (upstream's `appliesToUser`).
fn applies_to(subject: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let namespace = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                &subject.namespace
            };
            !namespace.is_empty()
                && user::split_service_account_username(&user.name)
                    == Some((namespace, subject.name.as_str()))
        }
        _ => false,
    }
}

fn describe_subject(subject: &Subject, binding_namespace: &str) -> String {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let namespace = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                &subject.namespace
            };
            format!("ServiceAccount \"{}/{namespace}\"", subject.name)
        }
        kind => format!("{kind} {:?}", subject.name),
    }
}

/// Whether one rule covers the request.
pub(crate) fn rule_allows(rule: &PolicyRule, attributes: &Attributes) -> bool {
    if !verb_matches(rule, &attributes.verb) {
        return false;
    }
    if !attributes.resource_request {
        return non_resource_url_matches(rule, &attributes.path);
    }
    api_group_matches(rule, &attributes.api_group)
        && resource_matches(rule, &attributes.resource, &attributes.subresource)
        && resource_name_matches(rule, &attributes.name)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    let combined = if subresource.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}/{subresource}")
    };
    rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            // `*/scale` covers the scale subresource of every resource.
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|url| {
        url == "*"
            || url == path
            || url
                .strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(value: Value) -> PolicyRule {
        serde_json::from_value(value).unwrap()
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn rule_matching() {
        let pods = Attributes::resource("get", "", "pods", "default", "web");
        let all = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        assert!(rule_allows(&all, &pods));
        let read =
            rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}));
        assert!(rule_allows(&read, &pods));
        let mut delete = pods.clone();
        delete.verb = "delete".into();
        assert!(!rule_allows(&read, &delete));
        let mut apps = pods.clone();
        apps.api_group = "apps".into();
        assert!(!rule_allows(&read, &apps));
        // A subresource needs its own rule ...
        let mut log = pods.clone();
        log.subresource = "log".into();
        assert!(!rule_allows(&read, &log));
        let logs = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}));
        assert!(rule_allows(&logs, &log));
        assert!(!rule_allows(&logs, &pods));
        // ... or `*/<subresource>`.
        let scale = rule(json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]}));
        let mut deployment_scale = Attributes::resource("get", "apps", "deployments", "x", "d");
        deployment_scale.subresource = "scale".into();
        assert!(rule_allows(&scale, &deployment_scale));
        assert!(!rule_allows(&scale, &pods));
        // resourceNames restrict to named objects; a create or list has no name.
        let named = rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}),
        );
        assert!(rule_allows(&named, &pods));
        let mut other = pods.clone();
        other.name = "db".into();
        assert!(!rule_allows(&named, &other));
        let list = Attributes::resource("list", "", "pods", "default", "");
        assert!(!rule_allows(&named, &list));
        // Resource rules never cover paths and the other way round.
        let healthz = Attributes::non_resource("get", "/healthz");
        assert!(!rule_allows(&all, &healthz));
    }

    #[test]
    fn non_resource_urls() {
        let discovery =
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/healthz"]}));
        assert!(rule_allows(
            &discovery,
            &Attributes::non_resource("get", "/api")
        ));
        assert!(rule_allows(
            &discovery,
            &Attributes::non_resource("get", "/api/v1")
        ));
        assert!(rule_allows(
            &discovery,
            &Attributes::non_resource("get", "/healthz")
        ));
        assert!(!rule_allows(
            &discovery,
            &Attributes::non_resource("get", "/healthz/ping")
        ));
        assert!(!rule_allows(
            &discovery,
            &Attributes::non_resource("post", "/api")
        ));
        assert!(!rule_allows(
            &discovery,
            &Attributes::non_resource("get", "/apis")
        ));
        let star = rule(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
        assert!(rule_allows(
            &star,
            &Attributes::non_resource("delete", "/anything")
        ));
        let pods = Attributes::resource("get", "", "pods", "default", "web");
        assert!(!rule_allows(&star, &pods));
    }

    fn policy() -> Policy {
        let mut policy = Policy::default();
        policy.cluster_roles.insert(
            "view".into(),
            Role::from_object(&json!({"rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]})),
        );
        policy.roles.insert(
            ("team".into(), "deployer".into()),
            Role::from_object(&json!({"rules": [{"verbs": ["create"], "apiGroups": ["apps"], "resources": ["deployments"]}]})),
        );
        policy.cluster_role_bindings.push(
            Binding::from_object(&json!({
                "metadata": {"name": "auditors"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "name": "auditors", "apiGroup": "rbac.authorization.k8s.io"}],
            }))
            .unwrap(),
        );
        policy.role_bindings.insert(
            "team".into(),
            vec![
                Binding::from_object(&json!({
                    "metadata": {"name": "view-sa", "namespace": "team"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": "default"}],
                }))
                .unwrap(),
                Binding::from_object(&json!({
                    "metadata": {"name": "deployers", "namespace": "team"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
                    "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
                }))
                .unwrap(),
            ],
        );
        policy
    }

    #[test]
    fn bindings_grant_roles_to_subjects() {
        let policy = policy();
        let list_pods = |ns: &str| Attributes::resource("list", "", "pods", ns, "");
        let auditor = user("carol", &["auditors"]);
        let decision = policy.authorize(&auditor, &list_pods("anywhere"));
        assert!(decision.allowed);
        assert_eq!(
            decision.reason,
            r#"RBAC: allowed by ClusterRoleBinding "auditors" of ClusterRole "view" to Group "auditors""#
        );
        // A RoleBinding applies in its namespace only; the subject's namespace defaults to it.
        let sa = user(
            "system:serviceaccount:team:default",
            &["system:serviceaccounts"],
        );
        assert!(policy.authorize(&sa, &list_pods("team")).allowed);
        assert!(!policy.authorize(&sa, &list_pods("default")).allowed);
        assert!(!policy.authorize(&sa, &list_pods("")).allowed);
        let other_sa = user("system:serviceaccount:other:default", &[]);
        assert!(!policy.authorize(&other_sa, &list_pods("team")).allowed);
        // A RoleBinding to a Role.
        let alice = user("alice", &[]);
        let create = Attributes::resource("create", "apps", "deployments", "team", "");
        let decision = policy.authorize(&alice, &create);
        assert!(decision.allowed);
        assert_eq!(
            decision.reason,
            r#"RBAC: allowed by RoleBinding "deployers/team" of Role "deployer" to User "alice""#
        );
        assert!(!policy.authorize(&alice, &list_pods("team")).allowed);
        // system:masters needs no binding.
        let admin = user("system:admin", &["system:masters"]);
        assert!(
            policy
                .authorize(&admin, &Attributes::non_resource("get", "/x"))
                .allowed
        );
        // A binding to a role that does not exist grants nothing.
        let mut broken = policy.clone();
        broken.cluster_roles.clear();
        assert!(!broken.authorize(&auditor, &list_pods("x")).allowed);
    }

    #[test]
    fn rules_for_lists_cluster_and_namespace_rules() {
        let policy = policy();
        let alice = user("alice", &["auditors"]);
        let rules = policy.rules_for(&alice, "team");
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(policy.rules_for(&alice, "default").len(), 1);
    }
}
