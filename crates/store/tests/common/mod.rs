//! Opening either backend with the same settings, so that every integration test runs against
//! both (`backend_tests!` generates a `sled::…` and a `redb::…` test from one body).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k3rs_store::{
    RedbStore, RedbStoreConfig, Revision, SledStore, SledStoreConfig, Store, StoreError,
};

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sled,
    Redb,
}

impl Kind {
    /// The file holding the database inside the store directory.
    pub fn db_file(self) -> &'static str {
        match self {
            Kind::Sled => "db",
            Kind::Redb => k3rs_store::REDB_FILE,
        }
    }

    /// The format string of this backend.
    pub fn format(self) -> &'static str {
        match self {
            Kind::Sled => k3rs_store::FORMAT_VERSION,
            Kind::Redb => k3rs_store::REDB_FORMAT_VERSION,
        }
    }

    pub fn other(self) -> Kind {
        match self {
            Kind::Sled => Kind::Redb,
            Kind::Redb => Kind::Sled,
        }
    }
}

/// The settings both backends have.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub compaction_interval: Option<Duration>,
    pub compaction_retention: Revision,
    pub watch_buffer: usize,
}

impl Config {
    /// The defaults of both backends' configs, at `path`.
    pub fn new(path: &Path) -> Config {
        let sled = SledStoreConfig::default();
        Config {
            path: path.to_path_buf(),
            compaction_interval: sled.compaction_interval,
            compaction_retention: sled.compaction_retention,
            watch_buffer: sled.watch_buffer,
        }
    }
}

/// A store of either backend.
#[derive(Debug)]
pub enum AnyStore {
    Sled(Arc<SledStore>),
    Redb(Arc<RedbStore>),
}

impl std::ops::Deref for AnyStore {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        match self {
            AnyStore::Sled(store) => store.as_ref(),
            AnyStore::Redb(store) => store.as_ref(),
        }
    }
}

impl AnyStore {
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        match self {
            AnyStore::Sled(store) => store.size_on_disk(),
            AnyStore::Redb(store) => store.size_on_disk(),
        }
    }

    pub fn live_watchers(&self) -> usize {
        match self {
            AnyStore::Sled(store) => store.live_watchers(),
            AnyStore::Redb(store) => store.live_watchers(),
        }
    }
}

/// Opens a store of `kind` with `config`.
pub fn open(kind: Kind, config: Config) -> Result<Arc<AnyStore>, StoreError> {
    Ok(Arc::new(match kind {
        Kind::Sled => AnyStore::Sled(SledStore::open(SledStoreConfig {
            path: config.path,
            compaction_interval: config.compaction_interval,
            compaction_retention: config.compaction_retention,
            watch_buffer: config.watch_buffer,
            ..Default::default()
        })?),
        Kind::Redb => AnyStore::Redb(RedbStore::open(RedbStoreConfig {
            path: config.path,
            compaction_interval: config.compaction_interval,
            compaction_retention: config.compaction_retention,
            watch_buffer: config.watch_buffer,
            ..Default::default()
        })?),
    }))
}

/// Generates, for each `async fn name(kind: Kind)` named, the tests `sled::name` and
/// `redb::name` running it against each backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Kind::Sled).await
                }
            )*
        }
        mod redb {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Kind::Redb).await
                }
            )*
        }
    };
}
