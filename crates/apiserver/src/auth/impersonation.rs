//! Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-<key>` headers; what `kubectl --as` sends): each requested identity part
//! needs the `impersonate` verb on it, then the request runs as the impersonated user.

use http::HeaderMap;

use super::attributes::Attributes;
use super::user::{self, UserInfo};
use crate::api::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// What the impersonation headers ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Impersonation {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
    pub(crate) uid: Option<String>,
    pub(crate) extra: std::collections::BTreeMap<String, Vec<String>>,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, ApiError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request(format!("the {name} header is not valid text")))
        })
        .collect()
}

/// `%`-decoding of extra keys (upstream unescapes them so keys may hold `/`).
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = key
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the impersonation headers: `None` when there are none.
pub(crate) fn requested(headers: &HeaderMap) -> Result<Option<Impersonation>, ApiError> {
    let users = header_values(headers, USER)?;
    let groups = header_values(headers, GROUP)?;
    let uids = header_values(headers, UID)?;
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            let value = value.to_str().map_err(|_| {
                ApiError::bad_request(format!("the {name} header is not valid text"))
            })?;
            extra
                .entry(unescape(key))
                .or_default()
                .push(value.to_owned());
        }
    }
    if users.is_empty() && groups.is_empty() && uids.is_empty() && extra.is_empty() {
        return Ok(None);
    }
    let Some(user) = users.first() else {
        return Err(ApiError::bad_request(
            "requested impersonation of groups, uid or extra fields without impersonating a user",
        ));
    };
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request(
            "only one Impersonate-User and one Impersonate-Uid header may be given",
        ));
    }
    Ok(Some(Impersonation {
        user: (*user).to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        uid: uids.first().map(|u| (*u).to_owned()),
        extra,
    }))
}

impl Impersonation {
    /// The `impersonate` checks this needs, in upstream's order.
    pub(crate) fn checks(&self) -> Vec<Attributes> {
        let mut checks = Vec::new();
        match user::split_service_account_username(&self.user) {
            Some((namespace, name)) => checks.push(Attributes::resource(
                "impersonate",
                "",
                "serviceaccounts",
                namespace,
                name,
            )),
            None => checks.push(Attributes::resource(
                "impersonate",
                "",
                "users",
                "",
                &self.user,
            )),
        }
        for group in &self.groups {
            checks.push(Attributes::resource("impersonate", "", "groups", "", group));
        }
        for (key, values) in &self.extra {
            for value in values {
                let mut check = Attributes::resource(
                    "impersonate",
                    "authentication.k8s.io",
                    "userextras",
                    "",
                    value,
                );
                check.subresource = key.clone();
                checks.push(check);
            }
        }
        if let Some(uid) = &self.uid {
            checks.push(Attributes::resource(
                "impersonate",
                "authentication.k8s.io",
                "uids",
                "",
                uid,
            ));
        }
        checks
    }

    /// The user the request runs as once every check passed.
    pub(crate) fn user(&self) -> UserInfo {
        let mut groups = self.groups.clone();
        if let Some((namespace, _)) = user::split_service_account_username(&self.user) {
            // A service account's groups are known; they are added unless groups were given.
            if groups.is_empty() {
                groups = user::service_account_groups(namespace);
            }
        }
        if self.user == user::ANONYMOUS {
            if !groups.iter().any(|g| g == user::ALL_UNAUTHENTICATED) {
                groups.push(user::ALL_UNAUTHENTICATED.to_owned());
            }
        } else if !groups
            .iter()
            .any(|g| g == user::ALL_AUTHENTICATED || g == user::ALL_UNAUTHENTICATED)
        {
            groups.push(user::ALL_AUTHENTICATED.to_owned());
        }
        UserInfo {
            name: self.user.clone(),
            uid: self.uid.clone().unwrap_or_default(),
            groups,
            extra: self.extra.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn no_headers_no_impersonation() {
        assert_eq!(requested(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn users_and_groups() {
        let imp = requested(&headers(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Extra-Scopes%2Fx", "view"),
        ]))
        .unwrap()
        .unwrap();
        let checks = imp.checks();
        assert_eq!(checks.len(), 4);
        assert_eq!(
            (checks[0].resource.as_str(), checks[0].name.as_str()),
            ("users", "bob")
        );
        assert_eq!(checks[1].resource, "groups");
        assert_eq!(
            (checks[3].resource.as_str(), checks[3].subresource.as_str()),
            ("userextras", "scopes/x")
        );
        let user = imp.user();
        assert_eq!(user.name, "bob");
        assert_eq!(user.groups, ["devs", "ops", "system:authenticated"]);
        assert_eq!(user.extra["scopes/x"], ["view"]);
    }

    #[test]
    fn service_accounts_get_their_groups() {
        let imp = requested(&headers(&[(
            "Impersonate-User",
            "system:serviceaccount:team:builder",
        )]))
        .unwrap()
        .unwrap();
        let check = &imp.checks()[0];
        assert_eq!(
            (
                check.resource.as_str(),
                check.namespace.as_str(),
                check.name.as_str()
            ),
            ("serviceaccounts", "team", "builder")
        );
        assert_eq!(
            imp.user().groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn groups_without_a_user_are_refused() {
        assert!(requested(&headers(&[("Impersonate-Group", "devs")])).is_err());
    }

    #[test]
    fn anonymous_stays_unauthenticated() {
        let imp = requested(&headers(&[("Impersonate-User", "system:anonymous")]))
            .unwrap()
            .unwrap();
        assert_eq!(imp.user().groups, ["system:unauthenticated"]);
    }
}
