//! Image names normalized as containerd and Docker do (`busybox` → `docker.io/library/busybox:latest`).
//!
//! The grammar and the rules are those of `github.com/distribution/reference` (`ParseDockerRef`),
//! which containerd's archive importer uses for `docker save` tags and CRI for pod image names:
//! a first path component that has no `.` or `:`, is not `localhost` and is lowercase is not a
//! registry, so the name gets `docker.io/`; a one-component Docker Hub name gets `library/`;
//! `index.docker.io` becomes `docker.io`; a name without tag or digest gets `:latest`; a name
//! with both keeps only the digest.

use std::sync::LazyLock;

use regex::Regex;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// `name[:tag][@digest]` with distribution's component grammar.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let alphanumeric = "[a-z0-9]+";
    let separator = "(?:[._]|__|[-]+)";
    let path_component = format!("{alphanumeric}(?:{separator}{alphanumeric})*");
    let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
    let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
    let domain = format!("(?:{domain_name}|{ipv6})(?::[0-9]+)?");
    let name = format!("(?:{domain}/)?{path_component}(?:/{path_component})*");
    let tag = r"[\w][\w.-]{0,127}";
    let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    let pattern = format!("^({name})(?::({tag}))?(?:@({digest}))?$");
    #[allow(clippy::expect_used)] // a constant pattern, covered by the tests
    Regex::new(&pattern).expect("the reference grammar is a valid regex")
});

/// A 64-hex-digit string: an image ID, which cannot be a repository name.
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern
    Regex::new("^[a-f0-9]{64}$").expect("a valid regex")
});

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference {0:?}: a 64-hex-digit image id cannot be a repository name")]
    Identifier(String),
    #[error("invalid reference {reference:?}: repository name {repository:?} must be lowercase")]
    Uppercase {
        reference: String,
        repository: String,
    },
    #[error("invalid reference format {0:?}")]
    Format(String),
    #[error("invalid reference {0:?}: repository name longer than 255 characters")]
    NameTooLong(String),
}

/// The fully qualified form of `reference`, as containerd names an image it imports:
/// `busybox:1.36` → `docker.io/library/busybox:1.36`, `k3rs/pause` → `docker.io/k3rs/pause:latest`.
pub fn normalize(reference: &str) -> Result<String, ReferenceError> {
    if IDENTIFIER.is_match(reference) {
        return Err(ReferenceError::Identifier(reference.to_owned()));
    }
    let (domain, remainder) = split_domain(reference);
    let repository = remainder
        .split_once(':')
        .map_or(remainder.as_str(), |(r, _)| r);
    // A digest's `@` ends the repository too, before any tag.
    let repository = repository.split_once('@').map_or(repository, |(r, _)| r);
    if repository.to_lowercase() != repository {
        return Err(ReferenceError::Uppercase {
            reference: reference.to_owned(),
            repository: repository.to_owned(),
        });
    }
    let full = format!("{domain}/{remainder}");
    let captures = REFERENCE
        .captures(&full)
        .ok_or_else(|| ReferenceError::Format(reference.to_owned()))?;
    let name = captures.get(1).map_or("", |m| m.as_str());
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong(reference.to_owned()));
    }
    let tag = captures.get(2).map(|m| m.as_str());
    let digest = captures.get(3).map(|m| m.as_str());
    Ok(match (tag, digest) {
        (_, Some(digest)) => format!("{name}@{digest}"),
        (Some(tag), None) => format!("{name}:{tag}"),
        (None, None) => format!("{name}:{DEFAULT_TAG}"),
    })
}

/// Splits off the registry, supplying Docker Hub's where the name has none.
fn split_domain(name: &str) -> (String, String) {
    let (domain, mut remainder) = match name.split_once('/') {
        None => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        Some((first, rest)) => {
            if first == LEGACY_DEFAULT_DOMAIN {
                (DEFAULT_DOMAIN.to_owned(), rest.to_owned())
            } else if first == "localhost"
                || first.contains(['.', ':'])
                || first.to_lowercase() != first
            {
                (first.to_owned(), rest.to_owned())
            } else {
                (DEFAULT_DOMAIN.to_owned(), name.to_owned())
            }
        }
    };
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_get_docker_hub_and_library() {
        for (input, want) in [
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("busybox", "docker.io/library/busybox:latest"),
            ("k3rs/busybox:1", "docker.io/k3rs/busybox:1"),
            ("k3rs/pause", "docker.io/k3rs/pause:latest"),
            ("docker.io/k3rs/pause:3.10", "docker.io/k3rs/pause:3.10"),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost/foo", "localhost/foo:latest"),
            ("localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1"),
            ("[::1]:5000/x:y", "[::1]:5000/x:y"),
            ("a.b/c__d-e.f:T_a.g-1", "a.b/c__d-e.f:T_a.g-1"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn a_digest_wins_over_a_tag() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            normalize(&format!("busybox:1.36@{digest}")).unwrap(),
            format!("docker.io/library/busybox@{digest}")
        );
        assert_eq!(
            normalize(&format!("quay.io/x/y@{digest}")).unwrap(),
            format!("quay.io/x/y@{digest}")
        );
    }

    #[test]
    fn an_uppercase_first_component_is_a_registry() {
        // distribution keeps it as a domain, so the remainder is the (lowercase) repository.
        assert_eq!(normalize("Example/foo").unwrap(), "Example/foo:latest");
    }

    #[test]
    fn invalid_references_are_errors() {
        assert!(matches!(
            normalize(&"ab".repeat(32)),
            Err(ReferenceError::Identifier(_))
        ));
        assert!(matches!(
            normalize("k3rs/BusyBox:1"),
            Err(ReferenceError::Uppercase { .. })
        ));
        for bad in [
            "",
            "busybox:",
            ":tag",
            "a//b",
            "-a",
            "a:b:c",
            "a@sha256:12",
            "a b",
        ] {
            assert!(
                matches!(normalize(bad), Err(ReferenceError::Format(_))),
                "{bad:?}: {:?}",
                normalize(bad)
            );
        }
        let long = format!("a/{}", "b".repeat(260));
        assert!(matches!(
            normalize(&long),
            Err(ReferenceError::NameTooLong(_))
        ));
    }
}
