//! Container logs in the CRI format (`<RFC3339Nano> <stdout|stderr> <P|F> <content>`): reading
//! them as `kubectl logs` asks (upstream's `kuberuntime/logs`: tail, since, timestamps, byte
//! limit, follow across rotations) and rotating them by size (upstream's container log manager).

pub mod cri_line;
pub mod options;
pub mod reader;
pub mod rotation;
pub mod termination;

pub use cri_line::{CriLine, CriLineError, Stream};
pub use options::{LogOptions, LogOptionsError};
pub use reader::{read_logs, ContainerRunning, LogReadError};
pub use rotation::{LogRotation, RotationPolicy};
pub use termination::termination_message;
