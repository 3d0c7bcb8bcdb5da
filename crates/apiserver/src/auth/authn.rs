//! Authentication: from a request's TLS client certificate or bearer token to a [`UserInfo`].
//!
//! Order as upstream's union authenticator: a verified client certificate wins; otherwise an
//! `Authorization: Bearer` token is tried as a bootstrap token (by its shape) or a
//! service-account JWT. A request with no credentials is anonymous (the caller decides where
//! that is allowed); a request with bad credentials fails, even where anonymous would pass.

use http::HeaderMap;
use k3rs_store::Store;
use serde_json::Value;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::service_account::{self, Claims};
use super::user::{self, UserInfo};
use super::{bootstrap_token, Auth};
use crate::api::objects::unix_now;
use crate::api::Registry;
use crate::ConnectionInfo;

/// Extra keys upstream puts on service-account users.
const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Why credentials were refused. The client only ever sees "Unauthorized".
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthnError {
    #[error("the client certificate cannot be read: {0}")]
    Certificate(String),
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error(transparent)]
    ServiceAccountToken(#[from] service_account::TokenError),
    #[error("service account {0} no longer exists")]
    ServiceAccountGone(String),
    #[error("{kind} {name} bound to the token no longer exists")]
    BoundObjectGone { kind: &'static str, name: String },
    #[error("bootstrap token {0} does not exist")]
    BootstrapTokenUnknown(String),
    #[error(transparent)]
    BootstrapToken(#[from] bootstrap_token::BootstrapTokenError),
    #[error("the token is neither a bootstrap token nor a service-account token")]
    UnknownToken,
    #[error("reading the store: {0}")]
    Store(String),
}

/// The user a request is from: `Ok(None)` when it has no credentials.
pub(crate) async fn authenticate(
    auth: &Auth,
    store: &dyn Store,
    registry: &Registry,
    headers: &HeaderMap,
    connection: Option<&ConnectionInfo>,
) -> Result<Option<UserInfo>, AuthnError> {
    if let Some(chain) = connection.and_then(|c| c.client_cert_chain.as_ref()) {
        if let Some(leaf) = chain.first() {
            if let Some(user) = certificate_user(leaf.as_ref())? {
                return Ok(Some(user));
            }
        }
    }
    let Some(header) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = bearer_token(header.to_str().map_err(|_| AuthnError::NotBearer)?)?;
    authenticate_token(auth, store, registry, token, None)
        .await
        .map(Some)
}

/// `Bearer <token>` (the scheme is case-insensitive, as upstream).
fn bearer_token(header: &str) -> Result<&str, AuthnError> {
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthnError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthnError::NotBearer);
    }
    Ok(token)
}

/// CN is the user, each O a group (upstream's `CommonNameUserConversion`). A certificate
/// without a CN authenticates no one.
pub(crate) fn certificate_user(der: &[u8]) -> Result<Option<UserInfo>, AuthnError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|err| AuthnError::Certificate(err.to_string()))?;
    let subject = cert.subject();
    let Some(name) = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
    else {
        return Ok(None);
    };
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Ok(Some(
        UserInfo {
            name: name.to_owned(),
            groups,
            ..UserInfo::default()
        }
        .with_authenticated_group(),
    ))
}

/// Authenticates a bearer token (also what `TokenReview` asks). `audiences` overrides the API
/// audiences a service-account token must be for.
pub(crate) async fn authenticate_token(
    auth: &Auth,
    store: &dyn Store,
    registry: &Registry,
    token: &str,
    audiences: Option<&[String]>,
) -> Result<UserInfo, AuthnError> {
    if let Some((id, secret)) = bootstrap_token::parse(token) {
        let name = bootstrap_token::secret_name(id);
        let stored = read(
            store,
            registry,
            "secrets",
            Some(bootstrap_token::NAMESPACE),
            &name,
        )
        .await?
        .ok_or(AuthnError::BootstrapTokenUnknown(name))?;
        return Ok(bootstrap_token::authenticate(
            &stored,
            id,
            secret,
            unix_now(),
        )?);
    }
    if service_account::looks_like_jwt(token) {
        let claims = auth.tokens.verify(token, audiences)?;
        return service_account_user(store, registry, &claims).await;
    }
    Err(AuthnError::UnknownToken)
}

/// The user of a verified service-account token, once the service account (and the object the
/// token is bound to) are checked to still exist with the same uid.
async fn service_account_user(
    store: &dyn Store,
    registry: &Registry,
    claims: &Claims,
) -> Result<UserInfo, AuthnError> {
    let k8s = &claims.kubernetes;
    let namespace = k8s.namespace.as_str();
    let account = &k8s.serviceaccount;
    let full_name = format!("{namespace}/{}", account.name);
    read(
        store,
        registry,
        "serviceaccounts",
        Some(namespace),
        &account.name,
    )
    .await?
    .filter(|sa| alive_with_uid(sa, &account.uid))
    .ok_or(AuthnError::ServiceAccountGone(full_name))?;
    let mut extra = std::collections::BTreeMap::new();
    for (kind, plural, bound, namespaced) in [
        ("pod", "pods", &k8s.pod, true),
        ("secret", "secrets", &k8s.secret, true),
        ("node", "nodes", &k8s.node, false),
    ] {
        let Some(bound) = bound else { continue };
        let ns = namespaced.then_some(namespace);
        let alive = read(store, registry, plural, ns, &bound.name)
            .await?
            .is_some_and(|object| alive_with_uid(&object, &bound.uid));
        if !alive {
            return Err(AuthnError::BoundObjectGone {
                kind,
                name: bound.name.clone(),
            });
        }
        match kind {
            "pod" => {
                extra.insert(EXTRA_POD_NAME.to_owned(), vec![bound.name.clone()]);
                extra.insert(EXTRA_POD_UID.to_owned(), vec![bound.uid.clone()]);
            }
            "node" => {
                extra.insert(EXTRA_NODE_NAME.to_owned(), vec![bound.name.clone()]);
                extra.insert(EXTRA_NODE_UID.to_owned(), vec![bound.uid.clone()]);
            }
            _ => {}
        }
    }
    extra.insert(
        EXTRA_CREDENTIAL_ID.to_owned(),
        vec![format!("JTI={}", claims.jti)],
    );
    let mut groups = user::service_account_groups(namespace);
    groups.push(user::ALL_AUTHENTICATED.to_owned());
    Ok(UserInfo {
        name: user::service_account_username(namespace, &account.name),
        uid: account.uid.clone(),
        groups,
        extra,
    })
}

/// Whether a stored object has `uid` and is not being deleted.
pub(crate) fn alive_with_uid(object: &Value, uid: &str) -> bool {
    let meta = object.get("metadata");
    let same = meta.and_then(|m| m.get("uid")).and_then(Value::as_str) == Some(uid);
    let deleting = meta
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null());
    same && !deleting
}

/// Reads one object of a core-group resource from the store.
pub(crate) async fn read(
    store: &dyn Store,
    registry: &Registry,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, AuthnError> {
    let resource = registry
        .find("", "v1", plural)
        .ok_or_else(|| AuthnError::Store(format!("resource {plural} is not served")))?;
    let key = crate::api::objects::object_key(&resource, namespace, name);
    let Some(kv) = store
        .get(&key)
        .await
        .map_err(|err| AuthnError::Store(err.to_string()))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&kv.value)
        .map(Some)
        .map_err(|err| AuthnError::Store(format!("stored object {key} is unreadable: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer  abc ").unwrap(), "abc");
        assert!(bearer_token("Basic abc").is_err());
        assert!(bearer_token("Bearer ").is_err());
        assert!(bearer_token("Bearer").is_err());
    }

    #[test]
    fn certificates_name_users_and_groups() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:web-1");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let user = certificate_user(cert.der()).unwrap().unwrap();
        assert_eq!(user.name, "system:node:web-1");
        assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
        // No CN: nobody.
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(certificate_user(cert.der()).unwrap(), None);
        assert!(certificate_user(b"junk").is_err());
    }
}
