//! Bootstrap tokens (`<id>.<secret>`, 6 + 16 characters of `[a-z0-9]`), checked against the
//! Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` in kube-system, as
//! upstream's `plugin/pkg/auth/authenticator/token/bootstrap` does.

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::user::{UserInfo, BOOTSTRAPPERS};

/// The namespace bootstrap-token Secrets live in.
pub(crate) const NAMESPACE: &str = "kube-system";
/// The Secret type of bootstrap tokens.
pub(crate) const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// Splits a bootstrap token into id and secret, if it has the shape of one.
pub(crate) fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, 6) && valid(secret, 16)).then_some((id, secret))
}

/// The name of the Secret that holds token `id`.
pub(crate) fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

/// A `data` (base64) or `stringData` field of the Secret.
fn field(secret: &Value, key: &str) -> Option<String> {
    if let Some(encoded) = secret
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    secret
        .get("stringData")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Compares without an early exit, so timing tells nothing about the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

/// Parses an RFC 3339 timestamp (`2026-01-02T03:04:05Z`, optional fraction and offset) into
/// whole seconds since the epoch.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let nanos = k3rs_api::table::parse_rfc3339(text)?;
    i64::try_from(nanos.div_euclid(1_000_000_000)).ok()
}

/// Why a bootstrap token was refused (logged at debug level, never shown to the client).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BootstrapTokenError {
    #[error("secret {0} has the wrong type")]
    WrongType(String),
    #[error("secret {0} is being deleted")]
    Deleting(String),
    #[error("secret {0} does not match the token")]
    Mismatch(String),
    #[error("secret {0} is not for authentication")]
    NotForAuthentication(String),
    #[error("secret {0} has expired")]
    Expired(String),
    #[error("secret {0} names an invalid group {1:?}")]
    InvalidGroup(String, String),
}

/// Checks `id.secret` against the stored Secret and returns the user it stands for.
pub(crate) fn authenticate(
    secret: &Value,
    id: &str,
    token_secret: &str,
    now: i64,
) -> Result<UserInfo, BootstrapTokenError> {
    let name = secret_name(id);
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(BootstrapTokenError::WrongType(name));
    }
    if secret
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
    {
        return Err(BootstrapTokenError::Deleting(name));
    }
    let stored_id = field(secret, "token-id").unwrap_or_default();
    // Zeroed when dropped, like the other secret material the server holds.
    let stored_secret = SecretString::from(field(secret, "token-secret").unwrap_or_default());
    let secret_matches = constant_time_eq(
        stored_secret.expose_secret().as_bytes(),
        token_secret.as_bytes(),
    );
    if stored_id != id || !secret_matches {
        return Err(BootstrapTokenError::Mismatch(name));
    }
    if field(secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(BootstrapTokenError::NotForAuthentication(name));
    }
    if let Some(expiration) = field(secret, "expiration") {
        // An unreadable expiration counts as expired, as upstream.
        if parse_rfc3339(&expiration).is_none_or(|at| at <= now) {
            return Err(BootstrapTokenError::Expired(name));
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_owned()];
    if let Some(extra) = field(secret, "auth-extra-groups") {
        for group in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            if !valid_group(group) {
                return Err(BootstrapTokenError::InvalidGroup(name, group.to_owned()));
            }
            if !groups.iter().any(|g| g == group) {
                groups.push(group.to_owned());
            }
        }
    }
    Ok(UserInfo {
        name: format!("system:bootstrap:{id}"),
        groups,
        ..UserInfo::default()
    }
    .with_authenticated_group())
}

/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
fn valid_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = serde_json::Map::new();
        for (k, v) in [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
        ]
        .iter()
        .chain(extra)
        {
            data.insert((*k).into(), json!(b64(v)));
        }
        json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}, "type": SECRET_TYPE, "data": data})
    }

    #[test]
    fn token_shape() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcdef.0123456789abcde"), None);
        assert_eq!(parse("abcdef0123456789abcdef"), None);
    }

    #[test]
    fn valid_tokens_give_bootstrap_users() {
        let user = authenticate(
            &secret(&[(
                "auth-extra-groups",
                "system:bootstrappers:k3rs:default-node-token",
            )]),
            "abcdef",
            "0123456789abcdef",
            0,
        )
        .unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:k3rs:default-node-token",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let s = secret(&[]);
        assert!(matches!(
            authenticate(&s, "abcdef", "0123456789abcdee", 0),
            Err(BootstrapTokenError::Mismatch(_))
        ));
        let expired = secret(&[("expiration", "2020-01-01T00:00:00Z")]);
        assert!(matches!(
            authenticate(&expired, "abcdef", "0123456789abcdef", 1_700_000_000),
            Err(BootstrapTokenError::Expired(_))
        ));
        assert!(authenticate(&expired, "abcdef", "0123456789abcdef", 1_500_000_000).is_ok());
        let mut not_for_auth = secret(&[]);
        not_for_auth["data"]
            .as_object_mut()
            .unwrap()
            .remove("usage-bootstrap-authentication");
        assert!(matches!(
            authenticate(&not_for_auth, "abcdef", "0123456789abcdef", 0),
            Err(BootstrapTokenError::NotForAuthentication(_))
        ));
        let mut opaque = secret(&[]);
        opaque["type"] = json!("Opaque");
        assert!(authenticate(&opaque, "abcdef", "0123456789abcdef", 0).is_err());
        let bad_group = secret(&[("auth-extra-groups", "system:masters")]);
        assert!(matches!(
            authenticate(&bad_group, "abcdef", "0123456789abcdef", 0),
            Err(BootstrapTokenError::InvalidGroup(..))
        ));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(
            parse_rfc3339("2000-02-29T01:00:00+01:00"),
            Some(951_782_400)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00.5Z"), Some(951_782_400));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
