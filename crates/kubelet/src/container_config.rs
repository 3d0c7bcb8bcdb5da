//! The CRI `ContainerConfig` of one run of a container (upstream's `generateContainerConfig`):
//! image, command and args with `$(VAR)` expanded, environment, mounts, log path, resources as
//! cgroup settings, the effective security context (pod-level merged under the container's),
//! and the labels and annotations the kubelet reads back when it adopts the container.

use std::collections::{BTreeMap, HashMap};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};

use crate::cgroups::{self, QosClass};
use crate::env::{self, EnvError};
use crate::plan::container_hash;
use crate::runtime::{annotations, labels};
use crate::sandbox_config::{namespace_options, pod_labels, seccomp};

/// The paths a container's `/proc` and `/sys` hide, and those it reads only (upstream's
/// defaults for `procMount: Default`).
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The user an image runs as by default (CRI `ImageStatus`: a uid, or a user name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageUser {
    pub uid: Option<i64>,
    pub username: String,
}

/// What a container's configuration depends on besides the pod and the container.
#[derive(Clone, Debug)]
pub struct RunSettings<'a> {
    /// This run's restart count (`metadata.attempt`, the log file's number).
    pub restart_count: i32,
    /// The image reference to run (the digest the runtime resolved).
    pub image_ref: &'a str,
    pub image_user: &'a ImageUser,
    pub env: &'a BTreeMap<String, String>,
    pub mounts: Vec<cri::Mount>,
    pub qos: QosClass,
    /// The node's memory capacity in bytes (for a burstable container's OOM score).
    pub node_memory: i64,
}

/// The container's security context with the pod's settings filled in where it has none
/// (upstream's `DetermineEffectiveSecurityContext`).
pub fn effective_security(pod: &Pod, container: &Container) -> SecurityContext {
    let mut effective = container.security_context.clone().unwrap_or_default();
    let Some(pod_context) = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()) else {
        return effective;
    };
    if effective.run_as_user.is_none() {
        effective.run_as_user = pod_context.run_as_user;
    }
    if effective.run_as_group.is_none() {
        effective.run_as_group = pod_context.run_as_group;
    }
    if effective.run_as_non_root.is_none() {
        effective.run_as_non_root = pod_context.run_as_non_root;
    }
    if effective.seccomp_profile.is_none() {
        effective.seccomp_profile = pod_context.seccomp_profile.clone();
    }
    if effective.se_linux_options.is_none() {
        effective.se_linux_options = pod_context.se_linux_options.clone();
    }
    effective
}

/// Checks `runAsNonRoot` against the user the container will run as (upstream's
/// `verifyRunAsNonRoot`); the error is the pod's `CreateContainerConfigError` message.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    security: &SecurityContext,
    image_user: &ImageUser,
) -> Result<(), EnvError> {
    if security.run_as_non_root != Some(true) {
        return Ok(());
    }
    let pod_name = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    if let Some(uid) = security.run_as_user {
        if uid == 0 {
            return Err(EnvError(format!(
                "container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: {})",
                container.name
            )));
        }
        return Ok(());
    }
    match image_user.uid {
        Some(0) => Err(EnvError(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {})",
            container.name
        ))),
        Some(_) => Ok(()),
        None if !image_user.username.is_empty() => Err(EnvError(format!(
            "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root (pod: {pod_name:?}, container: {})",
            image_user.username, container.name
        ))),
        // An image without a user runs as root.
        None => Err(EnvError(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {})",
            container.name
        ))),
    }
}

fn linux_security(pod: &Pod, security: &SecurityContext) -> cri::LinuxContainerSecurityContext {
    let privileged = security.privileged.unwrap_or(false);
    let capabilities = security.capabilities.as_ref().map(|caps| cri::Capability {
        add_capabilities: caps.add.clone().unwrap_or_default(),
        drop_capabilities: caps.drop.clone().unwrap_or_default(),
        add_ambient_capabilities: Vec::new(),
    });
    // `allowPrivilegeEscalation: false` sets no_new_privs (never for privileged containers).
    let no_new_privs = !privileged && security.allow_privilege_escalation == Some(false);
    let unmasked = security.proc_mount.as_deref() == Some("Unmasked");
    let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.clone());
    let mut supplemental: Vec<i64> = pod_security
        .as_ref()
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default();
    if let Some(fs_group) = pod_security.as_ref().and_then(|s| s.fs_group) {
        supplemental.insert(0, fs_group);
    }
    cri::LinuxContainerSecurityContext {
        capabilities,
        privileged,
        namespace_options: Some(namespace_options(pod)),
        run_as_user: security.run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: security.run_as_group.map(|value| cri::Int64Value { value }),
        readonly_rootfs: security.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: supplemental,
        no_new_privs,
        masked_paths: if privileged || unmasked {
            Vec::new()
        } else {
            MASKED_PATHS.iter().map(|p| (*p).to_owned()).collect()
        },
        readonly_paths: if privileged || unmasked {
            Vec::new()
        } else {
            READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect()
        },
        seccomp: Some(seccomp(security.seccomp_profile.as_ref())),
        ..cri::LinuxContainerSecurityContext::default()
    }
}

fn linux_resources(
    container: &Container,
    settings: &RunSettings<'_>,
) -> cri::LinuxContainerResources {
    let cpu_request = cgroups::quantity(container, false, "cpu")
        .or_else(|| cgroups::quantity(container, true, "cpu"));
    let cpu_limit = cgroups::quantity(container, true, "cpu");
    let memory_limit = cgroups::quantity(container, true, "memory").unwrap_or(0);
    let memory_request = cgroups::quantity(container, false, "memory")
        .or_else(|| cgroups::quantity(container, true, "memory"))
        .unwrap_or(0);
    cri::LinuxContainerResources {
        cpu_period: if cpu_limit.is_some() {
            cgroups::CPU_PERIOD
        } else {
            0
        },
        cpu_quota: cpu_limit.map_or(0, cgroups::cpu_quota),
        cpu_shares: cgroups::cpu_shares(cpu_request.unwrap_or(0)),
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: cgroups::oom_score_adj(settings.qos, memory_request, settings.node_memory),
        ..cri::LinuxContainerResources::default()
    }
}

/// The labels of a container of the pod.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = pod_labels(pod)
        .into_iter()
        .filter(|(k, _)| k.starts_with("io.kubernetes.pod."))
        .collect();
    map.insert(labels::CONTAINER_NAME.to_owned(), container.name.clone());
    map
}

/// The configuration of one run of `container`.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    settings: RunSettings<'_>,
) -> Result<cri::ContainerConfig, EnvError> {
    let security = effective_security(pod, container);
    verify_run_as_non_root(pod, container, &security, settings.image_user)?;
    let lookup = |name: &str| settings.env.get(name).cloned();
    let command: Vec<String> = container
        .command
        .iter()
        .flatten()
        .map(|part| env::expand(part, &lookup))
        .collect();
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|part| env::expand(part, &lookup))
        .collect();
    let mut annotation_map: HashMap<String, String> = HashMap::from([
        (
            annotations::CONTAINER_HASH.to_owned(),
            container_hash(container),
        ),
        (
            annotations::RESTART_COUNT.to_owned(),
            settings.restart_count.to_string(),
        ),
        (
            annotations::TERMINATION_MESSAGE_PATH.to_owned(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".to_owned()),
        ),
        (
            annotations::TERMINATION_MESSAGE_POLICY.to_owned(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".to_owned()),
        ),
    ]);
    if let Some(grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        annotation_map.insert(
            annotations::TERMINATION_GRACE_PERIOD.to_owned(),
            grace.to_string(),
        );
    }
    let resources = linux_resources(container, &settings);
    Ok(cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: container.name.clone(),
            attempt: u32::try_from(settings.restart_count).unwrap_or(0),
        }),
        image: Some(cri::ImageSpec {
            image: settings.image_ref.to_owned(),
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..cri::ImageSpec::default()
        }),
        command,
        args,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: settings
            .env
            .iter()
            .map(|(key, value)| cri::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: settings.mounts,
        labels: container_labels(pod, container),
        annotations: annotation_map,
        log_path: format!("{}/{}.log", container.name, settings.restart_count),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(linux_security(pod, &security)),
        }),
        ..cri::ContainerConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(container: serde_json::Value, pod_security: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"securityContext": pod_security, "terminationGracePeriodSeconds": 30, "containers": [container]},
        }))
        .unwrap()
    }

    fn settings<'a>(env: &'a BTreeMap<String, String>, user: &'a ImageUser) -> RunSettings<'a> {
        RunSettings {
            restart_count: 2,
            image_ref: "sha256:abc",
            image_user: user,
            env,
            mounts: Vec::new(),
            qos: QosClass::Burstable,
            node_memory: 1 << 30,
        }
    }

    #[test]
    fn builds_a_run_of_a_container() {
        let p = pod(
            json!({
                "name": "app", "image": "busybox:1.36",
                "command": ["sh", "-c"], "args": ["echo $(GREETING) $$(HOME)"],
                "workingDir": "/srv",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }),
            json!({"runAsUser": 1000, "fsGroup": 2000}),
        );
        let env = BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]);
        let user = ImageUser::default();
        let container = &p.spec.as_ref().unwrap().containers[0];
        let config = container_config(&p, container, settings(&env, &user)).unwrap();
        assert_eq!(config.command, ["sh", "-c"]);
        assert_eq!(config.args, ["echo hi $(HOME)"]);
        assert_eq!(config.working_dir, "/srv");
        assert_eq!(config.log_path, "app/2.log");
        assert_eq!(config.metadata.as_ref().unwrap().attempt, 2);
        assert_eq!(config.image.as_ref().unwrap().image, "sha256:abc");
        assert_eq!(config.annotations[annotations::RESTART_COUNT], "2");
        assert_eq!(
            config.annotations[annotations::TERMINATION_GRACE_PERIOD],
            "30"
        );
        assert_eq!(config.labels[labels::CONTAINER_NAME], "app");
        assert_eq!(config.labels[labels::POD_UID], "u1");
        let linux = config.linux.unwrap();
        let resources = linux.resources.unwrap();
        assert_eq!(resources.cpu_shares, 256);
        assert_eq!(resources.cpu_quota, 50_000);
        assert_eq!(resources.cpu_period, 100_000);
        assert_eq!(resources.memory_limit_in_bytes, 128 << 20);
        assert_eq!(
            resources.oom_score_adj,
            1000 - 1000 * (64 << 20) / (1 << 30)
        );
        let security = linux.security_context.unwrap();
        assert_eq!(security.run_as_user.unwrap().value, 1000);
        assert!(security.readonly_rootfs);
        assert!(security.no_new_privs);
        assert_eq!(security.supplemental_groups, [2000]);
        assert_eq!(security.capabilities.unwrap().drop_capabilities, ["ALL"]);
        assert_eq!(security.masked_paths.len(), MASKED_PATHS.len());
    }

    #[test]
    fn run_as_non_root_is_checked_against_the_image() {
        let p = pod(
            json!({"name": "app", "image": "x"}),
            json!({"runAsNonRoot": true}),
        );
        let container = &p.spec.as_ref().unwrap().containers[0];
        let env = BTreeMap::new();
        let root = ImageUser {
            uid: Some(0),
            username: String::new(),
        };
        let err = container_config(&p, container, settings(&env, &root)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"web_shop(u1)\", container: app)"
        );
        let named = ImageUser {
            uid: None,
            username: "www-data".into(),
        };
        assert!(container_config(&p, container, settings(&env, &named))
            .unwrap_err()
            .to_string()
            .contains("non-numeric user (www-data)"));
        let nobody = ImageUser {
            uid: Some(65534),
            username: String::new(),
        };
        assert!(container_config(&p, container, settings(&env, &nobody)).is_ok());
        let p = pod(
            json!({"name": "app", "image": "x", "securityContext": {"runAsUser": 0}}),
            json!({"runAsNonRoot": true}),
        );
        let container = &p.spec.as_ref().unwrap().containers[0];
        assert!(container_config(&p, container, settings(&env, &nobody))
            .unwrap_err()
            .to_string()
            .starts_with("container's runAsUser breaks non-root policy"));
    }

    #[test]
    fn privileged_containers_see_all_of_proc() {
        let p = pod(
            json!({"name": "app", "image": "x", "securityContext": {"privileged": true}}),
            json!({}),
        );
        let container = &p.spec.as_ref().unwrap().containers[0];
        let env = BTreeMap::new();
        let user = ImageUser::default();
        let config = container_config(&p, container, settings(&env, &user)).unwrap();
        let security = config.linux.unwrap().security_context.unwrap();
        assert!(security.privileged);
        assert!(security.masked_paths.is_empty());
        assert!(!security.no_new_privs);
    }
}
