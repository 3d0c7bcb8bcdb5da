//! Service-account tokens of projected volumes (upstream's `pkg/kubelet/token/token_manager.go`):
//! requested through `TokenRequest`, bound to the pod, cached, and replaced once older than 80% of
//! their lifetime or 24 hours.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccountTokenProjection};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::atomic_writer::FileProjection;

/// `expirationSeconds` when the projection does not say (the API server's default too).
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// A token is replaced once this old, whatever its lifetime.
const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Up to this much earlier, so pods started together do not refresh together.
const MAX_JITTER: Duration = Duration::from_secs(10);

/// What makes two token requests the same (upstream's `keyFunc`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub(crate) namespace: String,
    pub(crate) service_account: String,
    pub(crate) audience: Option<String>,
    pub(crate) expiration_seconds: i64,
    pub(crate) pod_uid: String,
}

/// A token the kubelet holds.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    pub(crate) token: String,
    pub(crate) expiration: Timestamp,
    pub(crate) expiration_seconds: i64,
}

/// The request for a projection's token, bound to the pod.
pub(crate) fn token_request(pod: &Pod, projection: &ServiceAccountTokenProjection) -> TokenRequest {
    TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: projection
                .audience
                .clone()
                .filter(|a| !a.is_empty())
                .map(|a| vec![a]),
            expiration_seconds: Some(
                projection
                    .expiration_seconds
                    .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
            ),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The service account a pod runs as.
pub(crate) fn service_account_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

pub(crate) fn key_for(pod: &Pod, projection: &ServiceAccountTokenProjection) -> TokenKey {
    TokenKey {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        service_account: service_account_of(pod),
        audience: projection.audience.clone().filter(|a| !a.is_empty()),
        expiration_seconds: projection
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Whether a token issued for `expiration_seconds` and expiring at `expiration` should be
/// replaced at `now`: past 24 hours of age or within 20% of its lifetime of the end, each moved
/// earlier by `jitter`.
pub(crate) fn requires_refresh(
    now: Timestamp,
    expiration: Timestamp,
    expiration_seconds: i64,
    jitter: Duration,
) -> bool {
    let jitter = SignedDuration::try_from(jitter).unwrap_or(SignedDuration::ZERO);
    let issued = expiration - SignedDuration::from_secs(expiration_seconds);
    let max_ttl = SignedDuration::try_from(MAX_TTL).unwrap_or(SignedDuration::MAX);
    if now > issued + max_ttl - jitter {
        return true;
    }
    let margin = SignedDuration::from_secs(expiration_seconds * 20 / 100);
    now > expiration - margin - jitter
}

/// The file of a token: the volume's mode, or 0600 when the pod has an fsUser or fsGroup (the
/// fsGroup pass then makes it 0640), owned by the pod's single run-as user if it has one.
pub(crate) fn token_file(
    token: String,
    default_mode: i32,
    fs_user: Option<i64>,
    fs_group: Option<i64>,
) -> FileProjection {
    let mode = if fs_user.is_some() || fs_group.is_some() {
        0o600
    } else {
        u32::try_from(default_mode).unwrap_or(0) & 0o7777
    };
    FileProjection {
        data: token.into_bytes(),
        mode,
        fs_user: fs_user.and_then(|u| u32::try_from(u).ok()),
    }
}

/// A jitter in whole seconds below [`MAX_JITTER`], as upstream draws it.
pub(crate) fn jitter() -> Duration {
    Duration::from_secs(rand::random_range(0..MAX_JITTER.as_secs()))
}

/// The tokens held for running pods.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
}

impl TokenCache {
    /// The cached token for `key` when it does not need a refresh yet.
    pub(crate) fn fresh(&self, key: &TokenKey, now: Timestamp) -> Option<String> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cached = tokens.get(key)?;
        (!requires_refresh(now, cached.expiration, cached.expiration_seconds, jitter()))
            .then(|| cached.token.clone())
    }

    /// The cached token for `key` if it has not expired (used when a refresh failed).
    pub(crate) fn unexpired(&self, key: &TokenKey, now: Timestamp) -> Option<String> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens
            .get(key)
            .filter(|cached| cached.expiration > now)
            .map(|cached| cached.token.clone())
    }

    pub(crate) fn insert(&self, key: TokenKey, token: CachedToken) {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens.insert(key, token);
    }

    /// Forgets every token of a pod (its volumes are gone).
    pub(crate) fn forget_pod(&self, pod_uid: &str) {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens.retain(|key, _| key.pod_uid != pod_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn refresh_at_80_percent_of_the_lifetime() {
        // Issued at 0, expires at 3600: refresh after 2880.
        let exp = at(3600);
        assert!(!requires_refresh(at(0), exp, 3600, Duration::ZERO));
        assert!(!requires_refresh(at(2880), exp, 3600, Duration::ZERO));
        assert!(requires_refresh(at(2881), exp, 3600, Duration::ZERO));
        // Jitter brings it forward.
        assert!(requires_refresh(
            at(2875),
            exp,
            3600,
            Duration::from_secs(9)
        ));
        assert!(requires_refresh(at(4000), exp, 3600, Duration::ZERO));
    }

    #[test]
    fn refresh_after_24_hours_for_long_lived_tokens() {
        let week = 7 * 24 * 3600;
        let exp = at(week);
        assert!(!requires_refresh(at(24 * 3600), exp, week, Duration::ZERO));
        assert!(requires_refresh(
            at(24 * 3600 + 1),
            exp,
            week,
            Duration::ZERO
        ));
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("builder".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn request_is_bound_to_the_pod() {
        let projection = ServiceAccountTokenProjection {
            audience: Some("vault".into()),
            path: "token".into(),
            ..Default::default()
        };
        let spec = token_request(&pod(), &projection).spec.unwrap();
        assert_eq!(spec.audiences, Some(vec!["vault".to_owned()]));
        assert_eq!(spec.expiration_seconds, Some(3600));
        let bound = spec.bound_object_ref.unwrap();
        assert_eq!(bound.kind.as_deref(), Some("Pod"));
        assert_eq!(bound.api_version.as_deref(), Some("v1"));
        assert_eq!(bound.name.as_deref(), Some("web"));
        assert_eq!(bound.uid.as_deref(), Some("uid-1"));
        let no_audience = token_request(&pod(), &ServiceAccountTokenProjection::default());
        assert_eq!(
            no_audience.spec.unwrap().audiences,
            None,
            "the API server's own audience"
        );
        assert_eq!(service_account_of(&Pod::default()), "default");
    }

    #[test]
    fn token_file_modes() {
        let plain = token_file("t".into(), 0o644, None, None);
        assert_eq!((plain.mode, plain.fs_user), (0o644, None));
        let grouped = token_file("t".into(), 0o644, None, Some(2000));
        assert_eq!((grouped.mode, grouped.fs_user), (0o600, None));
        let user = token_file("t".into(), 0o644, Some(1000), None);
        assert_eq!((user.mode, user.fs_user), (0o600, Some(1000)));
        assert_eq!(user.data, b"t");
    }

    #[test]
    fn cache_serves_fresh_tokens_and_forgets_pods() {
        let cache = TokenCache::default();
        let key = key_for(&pod(), &ServiceAccountTokenProjection::default());
        let now = Timestamp::now();
        cache.insert(
            key.clone(),
            CachedToken {
                token: "t1".into(),
                expiration: now + SignedDuration::from_secs(3600),
                expiration_seconds: 3600,
            },
        );
        assert_eq!(cache.fresh(&key, now).as_deref(), Some("t1"));
        let later = now + SignedDuration::from_secs(3000);
        assert_eq!(cache.fresh(&key, later), None, "past 80%: refresh");
        assert_eq!(
            cache.unexpired(&key, later).as_deref(),
            Some("t1"),
            "still usable if the refresh fails"
        );
        cache.forget_pod("uid-1");
        assert_eq!(cache.unexpired(&key, now), None);
    }
}
