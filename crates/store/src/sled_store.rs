//! The sled backend (being written).
#![allow(missing_docs, unused)]
use crate::*;
pub const FORMAT_FILE: &str = "FORMAT";
pub const FORMAT_VERSION: &str = "k3rs-store-sled-1";
#[derive(Debug, Clone, Default)]
pub struct SledStoreConfig { pub path: std::path::PathBuf }
#[derive(Debug)]
pub struct SledStore;
impl SledStore { pub fn open(_c: SledStoreConfig) -> Result<std::sync::Arc<Self>, StoreError> { Err(StoreError::Closed) } }
