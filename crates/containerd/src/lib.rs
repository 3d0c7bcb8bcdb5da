//! `k3rs-containerd`: everything k3rs says to containerd, and nothing about Kubernetes objects.
//!
//! k3rs runs its own containerd (the host's binary) as a supervised child ([`process`]) with a
//! config it writes ([`config`], from the host facts [`host`] detects), its own root, state and
//! socket derived from the node's data dir ([`paths`]), so it never touches a system containerd or
//! Docker. Pods run through containerd's built-in CRI plugin, the contract the upstream kubelet
//! and k3s use ([`cri`]: a CRI v1 client over the unix socket, usable with any CRI endpoint).
//! The native API is used only where CRI has no verb: importing image archives ([`import`],
//! [`archive`]), which is also how the pause image embedded in the binary ([`pause`]) gets in.
//!
//! **Invariants**
//! - Containers outlive k3rs: containerd dies with k3rs (PR_SET_PDEATHSIG, set in a pre-exec
//!   hook; its shims are detached from it and live on), and a restarted k3rs starts
//!   containerd again, whose CRI plugin recovers them. A containerd that exits on its own is
//!   restarted with back-off; its state is published for the kubelet.
//! - Nothing here is written outside the directories and socket paths it is given (but for
//!   [`host`]'s probe of this process's own `oom_score_adj`, restored at once), and a socket
//!   something already answers on is never taken over.
//! - The generated protocol code (CRI, containerd's API) is used as is, never edited.
//!
//! The crate's only unsafe code is that pre-exec hook, in `sys.rs`; hence no
//! `#![forbid(unsafe_code)]` here (the workspace lint still denies unsafe code outside `sys`).

pub mod archive;
pub mod channel;
pub mod config;
pub mod cri;
pub mod host;
pub mod import;
pub mod oci;
pub mod paths;
pub mod pause;
pub mod plan;
pub mod process;
pub mod reference;
#[allow(unsafe_code)]
mod sys;

pub use archive::{ArchiveError, ImageArchive};
pub use config::{ConfigError, ContainerdConfig};
pub use cri::{CriClient, CriError, RuntimeConditions};
pub use host::{CgroupDriver, CgroupLayout, HostError, HostFacts};
pub use import::{ImageChange, ImportError, ImportedImage, Importer, K8S_NAMESPACE};
pub use paths::ContainerdPaths;
pub use pause::{PauseError, PAUSE_IMAGE};
pub use process::{Containerd, ContainerdError, ContainerdSettings, RestartCause, RuntimeState};
