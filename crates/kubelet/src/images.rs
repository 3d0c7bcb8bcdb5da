//! Making sure a container's image is present before it is created (upstream's
//! `images.EnsureImageExists`): `imagePullPolicy` decides whether to pull, failed pulls back
//! off per image, and every failure carries upstream's reason (`ErrImagePull`,
//! `ImagePullBackOff`, `ErrImageNeverPull`, `InvalidImageName`) and message.

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::jiff::Timestamp;

use crate::backoff::Backoff;
use crate::runtime::Runtime;

/// Why an image is not there to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError {
    /// The container's waiting reason.
    pub reason: &'static str,
    pub message: String,
}

/// How an image came to be present, for the `Pulled` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// It was there already (`Container image "x" already present on machine`).
    AlreadyPresent,
    /// It was pulled now, in this many milliseconds.
    Pulled { millis: u128, size: u64 },
}

/// The pull policy in force: the container's, else upstream's default (`Always` for `:latest`
/// or an untagged image, `IfNotPresent` otherwise).
pub fn pull_policy(container: &Container) -> &str {
    if let Some(policy) = container.image_pull_policy.as_deref() {
        return policy;
    }
    let image = container.image.as_deref().unwrap_or_default();
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    match last.split_once(':') {
        Some((_, "latest")) | None if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

/// The image's present reference and user, pulling it when the policy says so.
pub async fn ensure_image(
    runtime: &dyn Runtime,
    container: &Container,
    pod_key: &str,
    pull_backoff: &mut Backoff,
    auth: Option<cri::AuthConfig>,
    sandbox_config: &cri::PodSandboxConfig,
) -> Result<(cri::Image, Presence), ImageError> {
    let image = container.image.clone().unwrap_or_default();
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(ImageError {
            reason: "InvalidImageName",
            message: format!("Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format"),
        });
    }
    let policy = pull_policy(container);
    let present = runtime
        .image_status(&image)
        .await
        .map_err(|err| ImageError {
            reason: "ErrImagePull",
            message: err.message.clone(),
        })?;
    if let Some(found) = present.clone() {
        if policy != "Always" {
            return Ok((found, Presence::AlreadyPresent));
        }
    }
    if policy == "Never" && present.is_none() {
        return Err(ImageError {
            reason: "ErrImageNeverPull",
            message: format!("Container image {image:?} is not present with pull policy of Never"),
        });
    }
    let key = format!("{pod_key}_{image}");
    let now = Timestamp::now();
    if pull_backoff.in_backoff_since(&key, now, now) {
        return Err(ImageError {
            reason: "ImagePullBackOff",
            message: format!("Back-off pulling image {image:?}"),
        });
    }
    let started = std::time::Instant::now();
    match runtime
        .pull_image(&image, auth, Some(sandbox_config.clone()))
        .await
    {
        Ok(_) => {
            pull_backoff.reset(&key);
            let found = runtime
                .image_status(&image)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| ImageError {
                    reason: "ErrImagePull",
                    message: format!("image {image:?} is not present after its pull"),
                })?;
            let size = found.size;
            Ok((
                found,
                Presence::Pulled {
                    millis: started.elapsed().as_millis(),
                    size,
                },
            ))
        }
        Err(err) => {
            pull_backoff.next(&key, now, now);
            Err(ImageError {
                reason: "ErrImagePull",
                message: err.message,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(image: &str, policy: Option<&str>) -> Container {
        let mut value = json!({"name": "a", "image": image});
        if let Some(policy) = policy {
            value["imagePullPolicy"] = json!(policy);
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn default_pull_policies() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(
            pull_policy(&container("busybox:1.36", None)),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&container("localhost:5000/busybox", None)),
            "Always"
        );
        assert_eq!(
            pull_policy(&container("localhost:5000/busybox:1", None)),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&container("busybox@sha256:abc", None)),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&container("busybox", Some("Never"))), "Never");
    }
}
