//! `k3rs-containerd`: everything k3rs says to containerd, and nothing about Kubernetes objects.
//!
//! k3rs runs its own containerd (the host's binary) as a supervised child with a config it
//! writes ([`config`]), its own root, state and socket, so it never touches a system containerd
//! or Docker; or it uses an existing CRI endpoint (`--container-runtime-endpoint`). Pods run
//! through containerd's built-in CRI plugin, the contract the upstream kubelet and k3s use
//! ([`cri`]); the native API is used only where CRI has no verb: importing image archives
//! ([`import`]), which is also how the pause image embedded in the binary ([`pause`]) gets in.
//!
//! **Invariants**
//! - Containers outlive k3rs: containerd dies with k3rs (its shims and containers do not), and
//!   a restarted k3rs starts containerd again, whose CRI plugin recovers them.
//! - Nothing here is written outside the directories and socket paths it is given.
//! - The generated protocol code (CRI, containerd's API) is used as is, never edited.

#![forbid(unsafe_code)]

pub mod archive;
pub mod channel;
pub mod import;
pub mod oci;
pub mod pause;
pub mod plan;
pub mod reference;

pub use archive::{ArchiveError, ImageArchive};
pub use import::{ImageChange, ImportError, ImportedImage, Importer, K8S_NAMESPACE};
pub use pause::{PauseError, PAUSE_IMAGE};
