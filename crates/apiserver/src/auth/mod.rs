//! Authentication and authorization of every request, and the APIs about them.
//!
//! [`admit`] runs before any handler: it authenticates the request ([`authn`]: x509 client
//! certificate, service-account JWT, bootstrap token; anonymous only for the health and version
//! paths), applies impersonation headers ([`impersonation`]), derives the request's
//! [`Attributes`] and asks the RBAC authorizer ([`rbac`], over the watch-fed [`cache`]). A
//! denial is a 401 or 403 `Status` in upstream's words; an admitted request carries its
//! [`UserInfo`] in its extensions for the handlers that need it ([`reviews`], [`token_request`]).
//!
//! **Invariants**
//! - Only `/healthz`, `/livez`, `/readyz`, `/version` (and their subpaths) are reachable without
//!   credentials, and even those only as far as RBAC allows `system:unauthenticated`.
//! - Bad credentials are a 401 everywhere, never a silent fall-back to anonymous.
//! - `system:masters` is allowed everything, before and without RBAC.
//! - A grant is visible at once: a denial by the cached policy is re-checked against the store
//!   (the cache lags writes by one watch event), so a new RoleBinding works on the next request.

pub(crate) mod attributes;
pub(crate) mod authn;
pub(crate) mod bootstrap_token;
pub(crate) mod cache;
pub(crate) mod defaults;
pub(crate) mod impersonation;
pub(crate) mod rbac;
pub(crate) mod reviews;
pub(crate) mod service_account;
pub(crate) mod token_request;
pub(crate) mod user;

use crate::internal_error::InternalError;
use std::sync::atomic::AtomicBool;

use http::StatusCode;
use k3rs_store::{Revision, Store, StoreError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails;
use secrecy::ExposeSecret as _;
use serde_json::Value;

pub(crate) use attributes::Attributes;
pub(crate) use user::UserInfo;

use crate::api::objects::{new_uid, now_rfc3339, object_key};
use crate::api::ApiError;
use crate::routes::AppState;
use crate::{ConnectionInfo, ServiceAccountConfig};

/// Authentication and authorization state of the server.
#[derive(Debug)]
pub(crate) struct Auth {
    /// Signs and verifies service-account tokens.
    pub(crate) tokens: service_account::TokenKeys,
    /// The RBAC policy, kept current by [`cache::PolicyCache::run`].
    pub(crate) policy: cache::PolicyCache,
    /// Set once the default roles and bindings exist.
    pub(crate) bootstrapped: AtomicBool,
}

impl Auth {
    /// Auth state from the server's configuration. Fails when the signing key is unusable.
    pub(crate) fn new(
        config: &ServiceAccountConfig,
    ) -> Result<Auth, service_account::SigningKeyError> {
        let issuer = config.issuer.clone();
        let audiences = config.api_audiences.clone();
        let tokens = match &config.signing_key_pem {
            Some(pem) => {
                service_account::TokenKeys::from_pem(pem.expose_secret(), issuer, audiences)
            }
            None => service_account::TokenKeys::ephemeral(issuer, audiences),
        }?;
        Ok(Auth {
            tokens,
            policy: cache::PolicyCache::default(),
            bootstrapped: AtomicBool::new(false),
        })
    }
}

/// Paths an anonymous client may reach (RBAC still decides).
fn anonymous_may_try(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// 401 Unauthorized, as upstream words it.
pub(crate) fn unauthorized() -> ApiError {
    ApiError {
        code: StatusCode::UNAUTHORIZED,
        reason: "Unauthorized",
        message: "Unauthorized".into(),
        details: None,
    }
}

/// 403 Forbidden for `attributes`, in upstream's words
/// (`pods is forbidden: User "x" cannot list resource "pods" in API group "" in the namespace "default"`).
pub(crate) fn forbidden(user: &UserInfo, attributes: &Attributes) -> ApiError {
    let why = attributes.forbidden_reason(&user.name);
    let qualified = match (attributes.resource_request, attributes.api_group.as_str()) {
        (false, _) => String::new(),
        (true, "") => attributes.resource.clone(),
        (true, group) => format!("{}.{group}", attributes.resource),
    };
    let message = match (qualified.is_empty(), attributes.name.is_empty()) {
        (true, _) => format!("forbidden: {why}"),
        (false, true) => format!("{qualified} is forbidden: {why}"),
        (false, false) => format!("{qualified} {:?} is forbidden: {why}", attributes.name),
    };
    ApiError {
        code: StatusCode::FORBIDDEN,
        reason: "Forbidden",
        message,
        details: Some(Box::new(StatusDetails {
            group: (!attributes.api_group.is_empty()).then(|| attributes.api_group.clone()),
            kind: (!attributes.resource.is_empty()).then(|| attributes.resource.clone()),
            name: (!attributes.name.is_empty()).then(|| attributes.name.clone()),
            ..StatusDetails::default()
        })),
    }
}

/// Authenticates, impersonates and authorizes a request. On success the request's extensions
/// hold the [`UserInfo`] it runs as.
pub(crate) async fn admit<B>(
    state: &AppState,
    request: &mut http::Request<B>,
) -> Result<(), ApiError> {
    let path = request.uri().path().to_owned();
    let connection = request.extensions().get::<ConnectionInfo>().cloned();
    let authenticated = authn::authenticate(
        &state.auth,
        state.store.as_ref(),
        &state.registry,
        request.headers(),
        connection.as_ref(),
    )
    .await;
    let user = match authenticated {
        Ok(Some(user)) => user,
        Ok(None) if anonymous_may_try(&path) => UserInfo::anonymous(),
        Ok(None) => return Err(unauthorized()),
        Err(err) => {
            tracing::debug!(%path, error = %err, "authentication failed");
            return Err(unauthorized());
        }
    };
    let user = match impersonation::requested(request.headers())? {
        None => user,
        Some(wanted) => {
            for check in wanted.checks() {
                if !authorize(state, &user, &check).await.allowed {
                    return Err(forbidden(&user, &check));
                }
            }
            wanted.user()
        }
    };
    let attributes = Attributes::from_request(request.method(), &path, request.uri().query());
    if !authorize(state, &user, &attributes).await.allowed {
        tracing::debug!(user = %user.name, verb = %attributes.verb, resource = %attributes.resource, %path, "forbidden");
        return Err(forbidden(&user, &attributes));
    }
    request.extensions_mut().insert(user);
    Ok(())
}

/// Asks RBAC. A denial by the cached policy is checked again against the store, so that a
/// grant written a moment ago already counts.
pub(crate) async fn authorize(
    state: &AppState,
    user: &UserInfo,
    attributes: &Attributes,
) -> rbac::Decision {
    let decision = state.auth.policy.snapshot().authorize(user, attributes);
    if decision.allowed {
        return decision;
    }
    match cache::load(state.store.as_ref()).await {
        Ok((objects, _)) => cache::policy_from(&objects).authorize(user, attributes),
        Err(err) => {
            tracing::warn!(error = %err, "reading RBAC objects failed; using the cached policy");
            decision
        }
    }
}

/// The effective rules of `user` in `namespace` (`SelfSubjectRulesReview`), fresh from the store.
pub(crate) async fn rules_for(
    state: &AppState,
    user: &UserInfo,
    namespace: &str,
) -> Vec<rbac::PolicyRule> {
    match cache::load(state.store.as_ref()).await {
        Ok((objects, _)) => cache::policy_from(&objects).rules_for(user, namespace),
        Err(_) => state.auth.policy.snapshot().rules_for(user, namespace),
    }
}

/// Creates the default roles and bindings that are missing, repairs those that may be repaired,
/// aggregates `admin`/`edit`/`view`, and waits until the policy cache has all of it.
pub(crate) async fn bootstrap(state: &AppState) -> Result<(), InternalError> {
    let store = state.store.as_ref();
    let mut last: Revision = 0;
    for (plural, objects) in [
        ("clusterroles", defaults::cluster_roles()),
        ("clusterrolebindings", defaults::cluster_role_bindings()),
    ] {
        let resource = state
            .registry
            .find("rbac.authorization.k8s.io", "v1", plural)
            .ok_or(InternalError::NotRegistered { resource: plural })?;
        for default in objects {
            let name = default["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let key = object_key(&resource, None, &name);
            last = last.max(ensure(store, &key, &default).await?);
        }
    }
    // Aggregation cascades (view → edit → admin): repeat until nothing changes.
    for _ in 0..8 {
        let (objects, _) = cache::load(store).await?;
        let written = cache::aggregate(store, &objects).await?;
        if written == 0 {
            break;
        }
        last = last.max(written);
    }
    state.auth.policy.wait_for(last).await;
    state
        .auth
        .bootstrapped
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// Creates `default` at `key`, or reconciles what is there. Returns the revision written (0 when
/// nothing was).
async fn ensure(store: &dyn Store, key: &str, default: &Value) -> Result<Revision, InternalError> {
    match store.get(key).await? {
        None => {
            let mut object = default.clone();
            object["metadata"]["uid"] = Value::from(new_uid());
            object["metadata"]["creationTimestamp"] = Value::from(now_rfc3339());
            let bytes = k3rs_api::wire::to_vec(&object);
            match store.create(key, bytes).await {
                Ok(kv) => {
                    tracing::debug!(%key, "created default RBAC object");
                    Ok(kv.mod_revision)
                }
                // Another server was faster.
                Err(StoreError::AlreadyExists { .. }) => Ok(0),
                Err(err) => Err(err.into()),
            }
        }
        Some(kv) => {
            let existing: Value =
                serde_json::from_slice(&kv.value).map_err(|source| InternalError::Unreadable {
                    key: key.to_owned(),
                    source,
                })?;
            let Some(updated) = defaults::reconcile(&existing, default) else {
                return Ok(0);
            };
            let bytes = k3rs_api::wire::to_vec(&updated);
            let kv = store.update(key, bytes, kv.mod_revision).await?;
            tracing::info!(%key, "restored missing permissions of a default RBAC object");
            Ok(kv.mod_revision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_paths() {
        for path in [
            "/healthz",
            "/livez",
            "/readyz",
            "/version",
            "/readyz/store",
            "/version/",
        ] {
            assert!(anonymous_may_try(path), "{path}");
        }
        for path in [
            "/",
            "/api",
            "/healthzx",
            "/versions",
            "/metrics",
            "/openapi/v2",
        ] {
            assert!(!anonymous_may_try(path), "{path}");
        }
    }

    #[test]
    fn forbidden_statuses() {
        let user = UserInfo {
            name: "system:serviceaccount:default:default".into(),
            ..UserInfo::default()
        };
        let list = Attributes::resource("list", "", "pods", "default", "");
        assert_eq!(
            forbidden(&user, &list).message,
            r#"pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let get = Attributes::resource("get", "apps", "deployments", "x", "web");
        let err = forbidden(&user, &get);
        assert!(
            err.message
                .starts_with(r#"deployments.apps "web" is forbidden: User"#),
            "{}",
            err.message
        );
        assert_eq!(err.code, StatusCode::FORBIDDEN);
        let path = Attributes::non_resource("get", "/metrics");
        assert_eq!(
            forbidden(&user, &path).message,
            r#"forbidden: User "system:serviceaccount:default:default" cannot get path "/metrics""#
        );
    }
}
