//! Who a request to the kubelet is from: a client certificate signed by the cluster CA (CN the
//! user, O the groups), else a bearer token the API server vouches for (TokenReview, answers
//! kept 2 minutes as upstream's webhook token authenticator keeps them).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// How long a TokenReview's answer is kept (`--authentication-token-webhook-cache-ttl`).
const TOKEN_TTL: Duration = Duration::from_secs(2 * 60);
/// Entries beyond which expired answers are dropped.
const PRUNE_ABOVE: usize = 1024;
const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// CN is the user, each O a group, plus `system:authenticated` (upstream's
/// `CommonNameUserConversion`); a certificate without a CN is no one.
pub fn certificate_user(der: &[u8]) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())?;
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push(AUTHENTICATED.to_owned());
    Some(User {
        name: name.to_owned(),
        groups,
        ..User::default()
    })
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(header: Option<&http::HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A TokenReview that could not be made.
#[derive(Debug, thiserror::Error)]
#[error("tokenreview: {0}")]
pub struct AuthnError(#[source] pub kube::Error);

/// Checks bearer tokens with the API server.
pub struct TokenAuthenticator {
    client: kube::Client,
    cache: Mutex<HashMap<String, (Option<User>, Instant)>>,
}

impl std::fmt::Debug for TokenAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthenticator").finish_non_exhaustive()
    }
}

impl TokenAuthenticator {
    pub fn new(client: kube::Client) -> Self {
        TokenAuthenticator {
            client,
            cache: Mutex::default(),
        }
    }

    /// The token's user, or `None` when the API server does not know the token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, AuthnError> {
        if let Some((user, until)) = self.lock().get(token) {
            if Instant::now() < *until {
                return Ok(user.clone());
            }
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = kube::Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(AuthnError)?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .map(|u| User {
                name: u.username.unwrap_or_default(),
                uid: u.uid.unwrap_or_default(),
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default().into_iter().collect(),
            });
        let mut cache = self.lock();
        if cache.len() > PRUNE_ABOVE {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(token.to_owned(), (user.clone(), Instant::now() + TOKEN_TTL));
        Ok(user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<User>, Instant)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_subject_is_the_user() {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:apiserver");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let user = certificate_user(cert.der()).unwrap();
        assert_eq!(user.name, "system:apiserver");
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
        // No CN, no one.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let nameless = params.self_signed(&key).unwrap();
        assert_eq!(certificate_user(nameless.der()), None);
    }

    #[test]
    fn bearer_header() {
        let value = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer_token(Some(&value("Bearer abc"))), Some("abc"));
        assert_eq!(bearer_token(Some(&value("bearer  abc "))), Some("abc"));
        assert_eq!(bearer_token(Some(&value("Basic abc"))), None);
        assert_eq!(bearer_token(Some(&value("Bearer "))), None);
        assert_eq!(bearer_token(None), None);
    }
}
