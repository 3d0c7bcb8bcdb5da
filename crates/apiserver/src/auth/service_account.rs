//! Service-account tokens: JWTs signed with the cluster's service-account key, issued by the
//! TokenRequest API and checked on every use (upstream's `pkg/serviceaccount`).
//!
//! The claims are upstream's: `iss`, `sub` (`system:serviceaccount:<ns>:<name>`), `aud`, `exp`,
//! `iat`, `nbf`, `jti`, and the private `kubernetes.io` claim naming the namespace, the service
//! account (with its uid) and, for bound tokens, the pod, secret or node the token dies with.
//! This module only signs and verifies; whether the named objects still exist is checked by
//! the authenticator against the store.

use std::fmt;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::PublicKeyData as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::api::objects::new_uid;

/// Why a signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SigningKeyError {
    /// The PEM text is not a private key rcgen can read (PKCS#8).
    #[error("the service-account key is not a PKCS#8 private key: {0}")]
    Unreadable(String),
    /// The key is of a kind tokens are not signed with.
    #[error("the service-account key must be ECDSA P-256 or RSA (found {0})")]
    UnsupportedAlgorithm(String),
    /// jsonwebtoken refused the key.
    #[error("the service-account key cannot sign tokens: {0}")]
    Jwt(String),
    /// No key could be generated.
    #[error("generating an ephemeral service-account key: {0}")]
    Generate(String),
}

/// A reference to an object a token is bound to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectRef {
    pub(crate) name: String,
    pub(crate) uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KubernetesClaim {
    pub(crate) namespace: String,
    pub(crate) serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<ObjectRef>,
}

/// Every claim of a service-account token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: Vec<String>,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) jti: String,
    #[serde(rename = "kubernetes.io")]
    pub(crate) kubernetes: KubernetesClaim,
}

/// Signs and verifies service-account tokens with one key pair.
pub(crate) struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
    /// `iss` of issued tokens; the only issuer accepted.
    pub(crate) issuer: String,
    /// The audiences a token must name one of, and the default audiences of new tokens.
    pub(crate) api_audiences: Vec<String>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .field("api_audiences", &self.api_audiences)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (never shown to the client beyond "Unauthorized").
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("invalid service-account token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("service-account token subject {sub:?} does not match its kubernetes.io claim")]
    SubjectMismatch { sub: String },
}

impl TokenKeys {
    /// Keys from a PEM private key (ECDSA P-256 → ES256, RSA → RS256).
    pub(crate) fn from_pem(
        pem: &str,
        issuer: String,
        api_audiences: Vec<String>,
    ) -> Result<TokenKeys, SigningKeyError> {
        let pair = rcgen::KeyPair::from_pem(pem)
            .map_err(|err| SigningKeyError::Unreadable(err.to_string()))?;
        Self::from_key_pair(&pair, issuer, api_audiences)
    }

    /// Keys made up on the spot: tokens signed with them die with the process. For servers
    /// started without a key file (tests, embedded use).
    pub(crate) fn ephemeral(
        issuer: String,
        api_audiences: Vec<String>,
    ) -> Result<TokenKeys, SigningKeyError> {
        let pair =
            rcgen::KeyPair::generate().map_err(|err| SigningKeyError::Generate(err.to_string()))?;
        Self::from_key_pair(&pair, issuer, api_audiences)
    }

    fn from_key_pair(
        pair: &rcgen::KeyPair,
        issuer: String,
        api_audiences: Vec<String>,
    ) -> Result<TokenKeys, SigningKeyError> {
        let private_pem = pair.serialize_pem();
        let public_pem = pair.public_key_pem();
        let jwt = |err: jsonwebtoken::errors::Error| SigningKeyError::Jwt(err.to_string());
        let (algorithm, encoding, decoding) = if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256
        {
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(jwt)?,
                DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(jwt)?,
            )
        } else if pair.algorithm() == &rcgen::PKCS_RSA_SHA256 {
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(private_pem.as_bytes()).map_err(jwt)?,
                DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(jwt)?,
            )
        } else {
            return Err(SigningKeyError::UnsupportedAlgorithm(format!(
                "{:?}",
                pair.algorithm()
            )));
        };
        // Upstream's key id: the SHA-256 of the DER public key, base64url without padding.
        let digest = sha2::Sha256::digest(pair.subject_public_key_info());
        let key_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        Ok(TokenKeys {
            algorithm,
            encoding,
            decoding,
            key_id,
            issuer,
            api_audiences,
        })
    }

    /// Signs a token for `kubernetes` (namespace, service account, bound object), valid from
    /// `now` for `expiration_seconds`, for `audiences`.
    pub(crate) fn issue(
        &self,
        kubernetes: KubernetesClaim,
        audiences: Vec<String>,
        now: i64,
        expiration_seconds: i64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: crate::auth::user::service_account_username(
                &kubernetes.namespace,
                &kubernetes.serviceaccount.name,
            ),
            aud: audiences,
            exp: now + expiration_seconds,
            iat: now,
            nbf: now,
            jti: new_uid(),
            kubernetes,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.key_id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Checks the signature, issuer, time window and audience (one of `audiences`, or of the
    /// API audiences when `None`), and returns the claims.
    pub(crate) fn verify(
        &self,
        token: &str,
        audiences: Option<&[String]>,
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences.unwrap_or(&self.api_audiences));
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims;
        let expected = crate::auth::user::service_account_username(
            &claims.kubernetes.namespace,
            &claims.kubernetes.serviceaccount.name,
        );
        if claims.sub != expected {
            return Err(TokenError::SubjectMismatch { sub: claims.sub });
        }
        Ok(claims)
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().take(2).all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    fn keys() -> TokenKeys {
        TokenKeys::ephemeral(ISSUER.into(), vec![ISSUER.into(), "k3s".into()]).unwrap()
    }

    fn claim() -> KubernetesClaim {
        KubernetesClaim {
            namespace: "default".into(),
            serviceaccount: ObjectRef {
                name: "default".into(),
                uid: "1234".into(),
            },
            ..KubernetesClaim::default()
        }
    }

    fn now() -> i64 {
        crate::api::objects::unix_now()
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = keys();
        let (token, issued) = keys
            .issue(claim(), keys.api_audiences.clone(), now(), 3600)
            .unwrap();
        assert!(looks_like_jwt(&token));
        let claims = keys.verify(&token, None).unwrap();
        assert_eq!(claims, issued);
        assert_eq!(claims.sub, "system:serviceaccount:default:default");
        assert_eq!(claims.kubernetes.serviceaccount.uid, "1234");
        assert_eq!(claims.exp - claims.iat, 3600);
        // The header names the key.
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(keys.key_id.as_str()));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = keys();
        let (token, _) = keys
            .issue(claim(), keys.api_audiences.clone(), now() - 7200, 3600)
            .unwrap();
        assert!(keys.verify(&token, None).is_err());
    }

    #[test]
    fn tokens_of_another_key_are_refused() {
        let keys = keys();
        let other = self::keys();
        let (token, _) = other
            .issue(claim(), keys.api_audiences.clone(), now(), 3600)
            .unwrap();
        let err = keys.verify(&token, None).unwrap_err();
        assert!(err.to_string().contains("InvalidSignature"), "{err}");
        // A tampered payload fails the signature too.
        let (token, _) = keys
            .issue(claim(), keys.api_audiences.clone(), now(), 3600)
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let (forged, _) = other
            .issue(
                KubernetesClaim {
                    namespace: "kube-system".into(),
                    ..claim()
                },
                keys.api_audiences.clone(),
                now(),
                3600,
            )
            .unwrap();
        let forged_payload = forged.split('.').nth(1).unwrap();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(keys.verify(&tampered, None).is_err());
    }

    #[test]
    fn audiences_must_match() {
        let keys = keys();
        let (token, _) = keys
            .issue(claim(), vec!["vault".into()], now(), 3600)
            .unwrap();
        assert!(keys.verify(&token, None).is_err());
        assert!(keys.verify(&token, Some(&["vault".to_owned()])).is_ok());
        let (token, _) = keys
            .issue(claim(), vec!["k3s".into()], now(), 3600)
            .unwrap();
        assert!(keys.verify(&token, None).is_ok());
    }

    #[test]
    fn keys_load_from_pem_and_wrong_issuers_are_refused() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let keys =
            TokenKeys::from_pem(&pair.serialize_pem(), ISSUER.into(), vec!["a".into()]).unwrap();
        let reloaded = TokenKeys::from_pem(
            &pair.serialize_pem(),
            "https://elsewhere".into(),
            vec!["a".into()],
        )
        .unwrap();
        let (token, _) = reloaded
            .issue(claim(), vec!["a".into()], now(), 3600)
            .unwrap();
        // Same key, other issuer.
        assert!(keys.verify(&token, None).is_err());
        assert!(TokenKeys::from_pem("not a key", ISSUER.into(), vec![]).is_err());
        assert!(format!("{keys:?}").contains("ES256"));
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJi.c2ln"));
        assert!(!looks_like_jwt("abcdef.0123456789abcdef"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a b.c.d"));
    }
}
