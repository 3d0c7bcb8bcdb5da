//! Property test: random operation sequences against each store (sled and redb) and an
//! in-memory model.

// The test bodies are plain functions that `backend_tests!` (or a pair of `#[test]`s) runs per
// backend, so clippy's allowance for `unwrap` in tests does not reach them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{AnyStore, Config, Kind};
use futures::StreamExt;
use k3rs_store::{EventKind, KeyValue, ListOptions, Revision, Store, StoreError};
use proptest::prelude::*;

const KEYS: &[&str] = &["/a", "/a/1", "/a/10", "/a/2", "/ab", "/b/1", "/b/2"];
const PREFIXES: &[&str] = &["/", "/a", "/a/", "/b/", "/c"];

#[derive(Clone, Debug)]
enum Op {
    Create(usize, u8),
    Update {
        key: usize,
        value: u8,
        stale: bool,
    },
    Delete {
        key: usize,
        precondition: Option<bool>,
    },
    Get(usize),
    List {
        prefix: usize,
        limit: usize,
        back: u8,
    },
    Watch {
        prefix: usize,
        back: u8,
    },
    Compact {
        back: u8,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
        4 => (key.clone(), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(key, value, stale)| Op::Update { key, value, stale }),
        2 => (key.clone(), prop::option::of(prop::bool::weighted(0.7)))
            .prop_map(|(key, precondition)| Op::Delete { key, precondition }),
        2 => key.prop_map(Op::Get),
        2 => (0..PREFIXES.len(), 0usize..4, any::<u8>())
            .prop_map(|(prefix, limit, back)| Op::List { prefix, limit, back }),
        1 => (0..PREFIXES.len(), any::<u8>()).prop_map(|(prefix, back)| Op::Watch { prefix, back }),
        1 => any::<u8>().prop_map(|back| Op::Compact { back }),
        1 => Just(Op::Reopen),
    ]
}

/// The model: the full history of changes, and the compacted revision.
#[derive(Default)]
struct Model {
    history: Vec<(Revision, String, Option<Vec<u8>>)>,
    compacted: Revision,
}

impl Model {
    fn current(&self) -> Revision {
        self.history
            .last()
            .map(|(r, _, _)| *r)
            .unwrap_or(0)
            .max(self.compacted)
    }

    fn state_at(&self, at: Revision) -> BTreeMap<String, KeyValue> {
        let mut state: BTreeMap<String, KeyValue> = BTreeMap::new();
        for (rev, key, value) in self.history.iter().filter(|(r, _, _)| *r <= at) {
            match value {
                None => {
                    state.remove(key);
                }
                Some(value) => {
                    let create_revision =
                        state.get(key).map(|kv| kv.create_revision).unwrap_or(*rev);
                    state.insert(
                        key.clone(),
                        KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision,
                            mod_revision: *rev,
                        },
                    );
                }
            }
        }
        state
    }

    fn record(&mut self, key: &str, value: Option<Vec<u8>>) -> Revision {
        let rev = self.current() + 1;
        self.history.push((rev, key.to_owned(), value));
        rev
    }

    /// The revision `back` steps (mod the span) below current, never below the compacted one.
    fn revision_back(&self, back: u8) -> Revision {
        let span = self.current() - self.compacted;
        self.current() - Revision::from(back) % (span + 1)
    }
}

fn config(dir: &std::path::Path) -> Config {
    Config {
        compaction_interval: None,
        ..Config::new(dir)
    }
}

async fn list_all(store: &dyn Store, prefix: &str, limit: usize, at: Revision) -> Vec<KeyValue> {
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    limit: Some(limit),
                    continue_token: token,
                    revision: Some(at),
                },
            )
            .await
            .expect("list");
        assert_eq!(page.revision, at);
        if limit > 0 {
            assert!(page.items.len() <= limit);
        }
        items.extend(page.items);
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return items,
        }
    }
}

async fn run(kind: Kind, ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store: Arc<AnyStore> = common::open(kind, config(dir.path())).expect("open");
    let mut model = Model::default();

    for op in ops {
        match op {
            Op::Create(k, v) => {
                let key = KEYS[k];
                let exists = model.state_at(model.current()).contains_key(key);
                match store.create(key, vec![v]).await {
                    Ok(kv) => {
                        assert!(!exists, "created {key} that exists");
                        let rev = model.record(key, Some(vec![v]));
                        assert_eq!((kv.create_revision, kv.mod_revision), (rev, rev));
                    }
                    Err(StoreError::AlreadyExists { .. }) => assert!(exists),
                    Err(err) => panic!("create {key}: {err}"),
                }
            }
            Op::Update {
                key: k,
                value,
                stale,
            } => {
                let key = KEYS[k];
                let before = model.state_at(model.current()).get(key).cloned();
                let expected = match (&before, stale) {
                    (Some(kv), false) => kv.mod_revision,
                    (Some(kv), true) => kv.mod_revision - 1,
                    (None, _) => 1,
                };
                match store.update(key, vec![value], expected).await {
                    Ok(kv) => {
                        let before = before.expect("updated a missing key");
                        assert!(!stale);
                        let rev = model.record(key, Some(vec![value]));
                        assert_eq!(kv.mod_revision, rev);
                        assert_eq!(kv.create_revision, before.create_revision);
                    }
                    Err(StoreError::NotFound { .. }) => assert!(before.is_none()),
                    Err(StoreError::Conflict { actual, .. }) => {
                        assert!(stale);
                        assert_eq!(Some(actual), before.map(|kv| kv.mod_revision));
                    }
                    Err(err) => panic!("update {key}: {err}"),
                }
            }
            Op::Delete {
                key: k,
                precondition,
            } => {
                let key = KEYS[k];
                let before = model.state_at(model.current()).get(key).cloned();
                let expected = match (&before, precondition) {
                    (_, None) => None,
                    (Some(kv), Some(true)) => Some(kv.mod_revision),
                    (Some(kv), Some(false)) => Some(kv.mod_revision + 1),
                    (None, Some(_)) => Some(1),
                };
                match store.delete(key, expected).await {
                    Ok(deleted) => {
                        assert_eq!(Some(&deleted.prev), before.as_ref());
                        assert_ne!(precondition, Some(false));
                        let rev = model.record(key, None);
                        assert_eq!(deleted.revision, rev);
                    }
                    Err(StoreError::NotFound { .. }) => assert!(before.is_none()),
                    Err(StoreError::Conflict { .. }) => assert_eq!(precondition, Some(false)),
                    Err(err) => panic!("delete {key}: {err}"),
                }
            }
            Op::Get(k) => {
                let key = KEYS[k];
                let got = store.get(key).await.expect("get");
                assert_eq!(got, model.state_at(model.current()).get(key).cloned());
            }
            Op::List {
                prefix,
                limit,
                back,
            } => {
                let prefix = PREFIXES[prefix];
                let at = model.revision_back(back);
                if at == 0 {
                    continue;
                }
                let got = list_all(&**store, prefix, limit, at).await;
                let want: Vec<KeyValue> = model
                    .state_at(at)
                    .into_values()
                    .filter(|kv| kv.key.starts_with(prefix))
                    .collect();
                assert_eq!(got, want, "list {prefix} at {at} limit {limit}");
            }
            Op::Watch { prefix, back } => {
                let prefix = PREFIXES[prefix];
                let after = model.revision_back(back);
                let mut stream = store.watch(prefix, after).await.expect("watch");
                let wanted: Vec<&(Revision, String, Option<Vec<u8>>)> = model
                    .history
                    .iter()
                    .filter(|(r, k, _)| *r > after && k.starts_with(prefix))
                    .collect();
                for (rev, key, value) in wanted {
                    let event = stream.next().await.expect("event").expect("no error");
                    assert_eq!(
                        (event.revision, event.kv.key.as_str()),
                        (*rev, key.as_str())
                    );
                    let prev = model.state_at(rev - 1).get(key).cloned();
                    assert_eq!(event.prev, prev);
                    match value {
                        None => {
                            assert_eq!(event.kind, EventKind::Deleted);
                            assert_eq!(event.kv.mod_revision, *rev);
                        }
                        Some(value) => {
                            let kind = if prev.is_some() {
                                EventKind::Modified
                            } else {
                                EventKind::Created
                            };
                            assert_eq!(event.kind, kind);
                            assert_eq!(&event.kv.value, value);
                            assert_eq!(Some(&event.kv), model.state_at(*rev).get(key));
                        }
                    }
                }
                // Nothing more is pending.
                assert!(
                    tokio::time::timeout(std::time::Duration::from_millis(2), stream.next())
                        .await
                        .is_err()
                );
            }
            Op::Compact { back } => {
                let to = model.revision_back(back);
                store.compact(to).await.expect("compact");
                model.compacted = model.compacted.max(to);
                assert_eq!(store.compacted_revision(), model.compacted);
                if model.compacted > 0 {
                    let err = store.watch("/", model.compacted - 1).await.err();
                    assert!(matches!(err, Some(StoreError::Compacted { .. })));
                }
            }
            Op::Reopen => {
                drop(store);
                store = common::open(kind, config(dir.path())).expect("reopen");
            }
        }
        assert_eq!(store.current_revision(), model.current());
        assert_eq!(store.compacted_revision(), model.compacted);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn sled_store_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        runtime().block_on(run(Kind::Sled, ops));
    }

    #[test]
    fn redb_store_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        runtime().block_on(run(Kind::Redb, ops));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
