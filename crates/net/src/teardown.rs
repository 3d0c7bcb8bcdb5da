//! Undoing the node's pod network, for `k3rs-killall` and uninstall: the bridge, the masquerade
//! rules, portmap's hostPort rules of our network, host-local's allocations. Every step tolerates what is already gone, so it can run
//! any number of times, and touches only the names it is given.

use std::path::{Path, PathBuf};

use crate::cni::NETWORK_NAME;
use crate::iptables::IptablesError;
use crate::link::{self, BridgeDeletion, LinkError};
use crate::{hostport, masquerade};

/// What to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeardownTargets {
    /// The pods' bridge (refused if a link of that name is not a bridge).
    pub bridge: String,
    /// host-local's dataDir, removed whole: one k3rs node owns it.
    pub ipam_data_dir: PathBuf,
}

/// What [`teardown`] found and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeardownReport {
    /// The bridge.
    pub bridge: BridgeDeletion,
    /// Whether portmap had left hostPort rules of pods of our network (pods gone without DEL).
    pub hostport_rules_removed: bool,
    /// Whether the IPAM directory existed.
    pub ipam_data_dir_removed: bool,
}

/// Why a step of the teardown failed.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// The bridge could not be looked up or deleted.
    #[error("teardown: bridge")]
    Bridge(#[source] LinkError),
    /// The rules could not be removed.
    #[error("teardown: masquerade rules")]
    Masquerade(#[source] IptablesError),
    /// portmap's rules could not be removed.
    #[error("teardown: hostPort rules of network {NETWORK_NAME}")]
    Hostports(#[source] IptablesError),
    /// The IPAM directory could not be removed.
    #[error("teardown: remove {path}")]
    IpamDataDir {
        /// The directory.
        path: PathBuf,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
}

/// Deletes the bridge, removes the masquerade rules, portmap's per-pod rules of network
/// [`NETWORK_NAME`] and host-local's dataDir, in the calling thread's network namespace. Every step is tried even when an earlier one failed (a killall
/// removes what it can); the first failure is returned, later ones are logged.
pub async fn teardown(targets: &TeardownTargets) -> Result<TeardownReport, TeardownError> {
    let bridge = link::delete_bridge(&targets.bridge)
        .await
        .map_err(TeardownError::Bridge);
    let rules = masquerade::remove()
        .await
        .map_err(TeardownError::Masquerade);
    let hostports = hostport::remove(NETWORK_NAME)
        .await
        .map_err(TeardownError::Hostports);
    let data_dir = remove_dir(&targets.ipam_data_dir).await;

    let failures = [
        bridge.as_ref().err(),
        rules.as_ref().err(),
        hostports.as_ref().err(),
        data_dir.as_ref().err(),
    ];
    for later in failures.into_iter().flatten().skip(1) {
        tracing::warn!(error = %crate::error_chain(later), "teardown step failed");
    }
    let bridge = bridge?;
    rules?;
    let hostport_rules_removed = hostports?;
    let ipam_data_dir_removed = data_dir?;
    Ok(TeardownReport {
        bridge,
        hostport_rules_removed,
        ipam_data_dir_removed,
    })
}

/// Removes `path` and everything under it; `false` when it was not there.
async fn remove_dir(path: &Path) -> Result<bool, TeardownError> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed ipam data dir");
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(TeardownError::IpamDataDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn removing_the_data_dir_twice_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("agent/cni/networks");
        std::fs::create_dir_all(data.join("k3rs")).unwrap();
        std::fs::write(data.join("k3rs/10.42.3.2"), "abc\neth0").unwrap();
        assert!(remove_dir(&data).await.unwrap());
        assert!(!data.exists());
        assert!(!remove_dir(&data).await.unwrap());
        assert!(
            dir.path().join("agent/cni").exists(),
            "only the given directory goes"
        );
    }
}
