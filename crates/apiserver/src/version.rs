//! `/version`: the Kubernetes version this server speaks, in the form kubectl parses.

use k8s_openapi::apimachinery::pkg::version::Info;

/// The Kubernetes major version served.
pub const KUBERNETES_MAJOR: &str = "1";
/// The Kubernetes minor version served (matches the k8s-openapi `v1_37` feature).
pub const KUBERNETES_MINOR: &str = "37";

/// The `gitVersion` reported: the Kubernetes version with k3rs's version as semver build
/// metadata, like k3s's `v1.33.0+k3s1` (kubectl's semver parser accepts it).
pub fn git_version() -> String {
    format!(
        "v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.0+k3rs.{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Go's name for the CPU architecture, which is what clients expect in `platform`.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The `/version` document.
pub fn info() -> Info {
    Info {
        major: KUBERNETES_MAJOR.into(),
        minor: KUBERNETES_MINOR.into(),
        git_version: git_version(),
        git_commit: option_env!("K3RS_GIT_COMMIT").unwrap_or("").into(),
        git_tree_state: option_env!("K3RS_GIT_TREE_STATE").unwrap_or("").into(),
        build_date: option_env!("K3RS_BUILD_DATE")
            .unwrap_or("1970-01-01T00:00:00Z")
            .into(),
        go_version: "rustc".into(),
        compiler: "rustc".into(),
        platform: format!("{}/{}", std::env::consts::OS, go_arch()),
        emulation_major: Some(KUBERNETES_MAJOR.into()),
        emulation_minor: Some(KUBERNETES_MINOR.into()),
        min_compatibility_major: Some(KUBERNETES_MAJOR.into()),
        min_compatibility_minor: Some("36".into()),
    }
}
