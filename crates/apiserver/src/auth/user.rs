//! Who a request is from: upstream's `user.Info`, and the well-known users and groups.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Every authenticated user is in this group.
pub(crate) const ALL_AUTHENTICATED: &str = "system:authenticated";
/// Every anonymous request is in this group.
pub(crate) const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of a request without credentials.
pub(crate) const ANONYMOUS: &str = "system:anonymous";
/// The group that is always allowed everything (upstream's privileged group).
pub(crate) const MASTERS: &str = "system:masters";
/// Every service account is in this group.
pub(crate) const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// Every bootstrap-token user is in this group.
pub(crate) const BOOTSTRAPPERS: &str = "system:bootstrappers";

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// An authenticated identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UserInfo {
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) groups: Vec<String>,
    pub(crate) extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The anonymous user.
    pub(crate) fn anonymous() -> UserInfo {
        UserInfo {
            name: ANONYMOUS.into(),
            groups: vec![ALL_UNAUTHENTICATED.into()],
            ..UserInfo::default()
        }
    }

    /// Whether the user is in `group`.
    pub(crate) fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Adds `system:authenticated` unless the user already has it.
    pub(crate) fn with_authenticated_group(mut self) -> UserInfo {
        if !self.in_group(ALL_AUTHENTICATED) {
            self.groups.push(ALL_AUTHENTICATED.into());
        }
        self
    }

    /// The `UserInfo` object of the authentication API (`SelfSubjectReview`, `TokenReview`).
    pub(crate) fn to_json(&self) -> Value {
        let mut info = json!({"username": self.name});
        if !self.uid.is_empty() {
            info["uid"] = json!(self.uid);
        }
        if !self.groups.is_empty() {
            info["groups"] = json!(self.groups);
        }
        if !self.extra.is_empty() {
            info["extra"] = json!(self.extra);
        }
        info
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub(crate) fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// The namespace and name of a service-account user name, if it is one.
pub(crate) fn split_service_account_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some((namespace, name))
}

/// The groups of every service account in `namespace`.
pub(crate) fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        ALL_SERVICE_ACCOUNTS.to_owned(),
        format!("{ALL_SERVICE_ACCOUNTS}:{namespace}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names() {
        let user = service_account_username("default", "builder");
        assert_eq!(user, "system:serviceaccount:default:builder");
        assert_eq!(
            split_service_account_username(&user),
            Some(("default", "builder"))
        );
        assert_eq!(
            split_service_account_username("system:serviceaccount:x"),
            None
        );
        assert_eq!(split_service_account_username("alice"), None);
        assert_eq!(
            service_account_groups("kube-system"),
            [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system"
            ]
        );
    }
}
