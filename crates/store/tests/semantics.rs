//! Behaviour of both stores through the `Store` trait: revisions, CAS, paging, watch,
//! compaction, and the on-disk format. Every test runs against sled (`sled::…`) and redb
//! (`redb::…`); the few about sled's own files run against sled only.

// The test bodies are plain functions that `backend_tests!` (or a pair of `#[test]`s) runs per
// backend, so clippy's allowance for `unwrap` in tests does not reach them.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{AnyStore, Config, Kind};
use futures::StreamExt;
use k3rs_store::{EventKind, ListOptions, StoreError, FORMAT_FILE};

fn config(dir: &std::path::Path) -> Config {
    Config {
        compaction_interval: None,
        ..Config::new(&dir.join("db"))
    }
}

fn open(kind: Kind, dir: &std::path::Path) -> Arc<AnyStore> {
    open_with(kind, dir, |_| {})
}

/// Opens a store with the test settings, changed by `change`.
fn open_with(kind: Kind, dir: &std::path::Path, change: impl FnOnce(&mut Config)) -> Arc<AnyStore> {
    let mut config = config(dir);
    change(&mut config);
    common::open(kind, config).expect("store opens")
}

async fn create_update_delete_carry_revisions(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    assert_eq!(store.current_revision(), 0);

    let a = store.create("/r/a", b"1".to_vec()).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (1, 1));
    let err = store.create("/r/a", b"x".to_vec()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");

    let b = store.create("/r/b", b"2".to_vec()).await.unwrap();
    assert_eq!(b.mod_revision, 2);

    let err = store.update("/r/a", b"1b".to_vec(), 2).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    let a2 = store.update("/r/a", b"1b".to_vec(), 1).await.unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (1, 3));
    assert_eq!(store.get("/r/a").await.unwrap(), Some(a2.clone()));

    let err = store.delete("/r/a", Some(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let deleted = store.delete("/r/a", Some(3)).await.unwrap();
    assert_eq!(deleted.revision, 4);
    assert_eq!(deleted.prev, a2);
    assert_eq!(store.get("/r/a").await.unwrap(), None);
    let err = store.delete("/r/a", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = store.update("/r/a", vec![], 4).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // A re-created key starts a new incarnation.
    let a3 = store.create("/r/a", b"again".to_vec()).await.unwrap();
    assert_eq!((a3.create_revision, a3.mod_revision), (5, 5));
    assert_eq!(store.current_revision(), 5);
}

async fn bad_keys_are_refused(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    for key in ["", "a\0b"] {
        let err = store.create(key, vec![]).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{err}");
    }
    assert_eq!(store.current_revision(), 0);
}

async fn revisions_survive_reopen(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(kind, dir.path());
        store.create("/k", b"v".to_vec()).await.unwrap();
        store.delete("/k", None).await.unwrap();
        store.compact(2).await.unwrap();
    }
    let store = open(kind, dir.path());
    assert_eq!(store.current_revision(), 2);
    assert_eq!(store.compacted_revision(), 2);
    let kv = store.create("/k", b"w".to_vec()).await.unwrap();
    assert_eq!(kv.mod_revision, 3, "revisions never go backwards");
}

async fn pages_are_read_at_one_revision(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    for i in 0..10 {
        store
            .create(&format!("/p/{i:02}"), format!("v{i}").into_bytes())
            .await
            .unwrap();
    }
    store.create("/q/outside", vec![]).await.unwrap();

    let first = store
        .list(
            "/p/",
            ListOptions {
                limit: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 4);
    assert_eq!(first.revision, 11);
    let token = first.continue_token.clone().expect("more pages");

    // Changes after the first page must not show in the following ones.
    store.delete("/p/05", None).await.unwrap();
    store.update("/p/06", b"changed".to_vec(), 7).await.unwrap();
    store.create("/p/99", vec![]).await.unwrap();

    let mut keys: Vec<String> = first.items.iter().map(|kv| kv.key.clone()).collect();
    let mut token = Some(token);
    while let Some(t) = token {
        let page = store
            .list(
                "/p/",
                ListOptions {
                    limit: Some(4),
                    continue_token: Some(t),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, 11);
        for kv in &page.items {
            if kv.key == "/p/06" {
                assert_eq!(kv.value, b"v6");
            }
        }
        keys.extend(page.items.into_iter().map(|kv| kv.key));
        token = page.continue_token;
    }
    let want: Vec<String> = (0..10).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(keys, want);

    let now = store.list("/p/", ListOptions::default()).await.unwrap();
    assert_eq!(now.items.len(), 10);
    assert!(now.continue_token.is_none());
    assert_eq!(store.count("/p/").await.unwrap(), 10);

    let err = store
        .list(
            "/p/",
            ListOptions {
                continue_token: Some("garbage!".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidContinue { .. }), "{err}");
}

/// Lists read each key's version as of the list's revision however long its history is (a
/// scan seeks past long histories instead of reading them): keys with one version, a few, and
/// many, some deleted and re-created, paged and at an older revision.
async fn lists_see_the_right_version_through_long_histories(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    // /h/0 has 1 version, /h/1 3, /h/2 5, /h/3 9, /h/4 20 (deleted then re-created), /h/5 is
    // deleted after 12 versions, /h/6 has 7.
    let counts = [1usize, 3, 5, 9, 20, 12, 7];
    let mut revisions = Vec::new();
    for (k, _) in counts.iter().enumerate() {
        revisions.push(
            store
                .create(&format!("/h/{k}"), b"0".to_vec())
                .await
                .unwrap()
                .mod_revision,
        );
    }
    let mut middle = None;
    for round in 1..20usize {
        for (k, count) in counts.iter().enumerate() {
            if round >= *count {
                continue;
            }
            let key = format!("/h/{k}");
            if k == 4 && round == 10 {
                store.delete(&key, None).await.unwrap();
                revisions[k] = store
                    .create(&key, round.to_string().into_bytes())
                    .await
                    .unwrap()
                    .mod_revision;
                continue;
            }
            revisions[k] = store
                .update(&key, round.to_string().into_bytes(), revisions[k])
                .await
                .unwrap()
                .mod_revision;
        }
        if round == 6 {
            middle = Some(store.current_revision());
        }
    }
    store.delete("/h/5", None).await.unwrap();
    let values = |page: &[k3rs_store::KeyValue]| -> Vec<(String, String)> {
        page.iter()
            .map(|kv| (kv.key.clone(), String::from_utf8(kv.value.clone()).unwrap()))
            .collect()
    };
    let want_now: Vec<(String, String)> = counts
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != 5)
        .map(|(k, count)| (format!("/h/{k}"), (count - 1).to_string()))
        .collect();
    let now = store.list("/h/", ListOptions::default()).await.unwrap();
    assert_eq!(values(&now.items), want_now);
    let middle = middle.unwrap();
    assert!(now.items[4].create_revision > middle, "re-created");
    let want_middle: Vec<(String, String)> = counts
        .iter()
        .enumerate()
        .map(|(k, count)| (format!("/h/{k}"), (count - 1).min(6).to_string()))
        .collect();
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(
                "/h/",
                ListOptions {
                    limit: Some(2),
                    revision: token.is_none().then_some(middle),
                    continue_token: token.take(),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, middle);
        seen.extend(values(&page.items));
        match page.continue_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, want_middle);
    assert_eq!(store.count("/h/").await.unwrap(), 6);
}

async fn list_at_a_compacted_revision_is_too_old(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    for i in 0..5 {
        store.create(&format!("/c/{i}"), vec![]).await.unwrap();
    }
    let first = store
        .list(
            "/c/",
            ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.update("/c/4", b"x".to_vec(), 5).await.unwrap();
    store.compact(6).await.unwrap();
    let err = store
        .list(
            "/c/",
            ListOptions {
                limit: Some(2),
                continue_token: first.continue_token,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Compacted {
                requested: 5,
                compacted: 6
            }
        ),
        "{err}"
    );
    let err = store
        .list(
            "/c/",
            ListOptions {
                revision: Some(99),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err}");
}

async fn watch_replays_then_streams_with_previous_values(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    store.create("/w/a", b"1".to_vec()).await.unwrap();
    store.create("/other", b"x".to_vec()).await.unwrap();
    store.update("/w/a", b"2".to_vec(), 1).await.unwrap();

    let mut watch = store.watch("/w/", 0).await.unwrap();
    let e1 = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (e1.kind, e1.revision, e1.prev.as_ref()),
        (EventKind::Created, 1, None)
    );
    let e2 = watch.next().await.unwrap().unwrap();
    assert_eq!((e2.kind, e2.revision), (EventKind::Modified, 3));
    assert_eq!(
        e2.prev.as_ref().map(|p| p.value.as_slice()),
        Some(&b"1"[..])
    );

    store.delete("/w/a", None).await.unwrap();
    store.create("/w/b", b"b".to_vec()).await.unwrap();
    let e3 = watch.next().await.unwrap().unwrap();
    assert_eq!((e3.kind, e3.revision), (EventKind::Deleted, 4));
    assert_eq!(e3.kv.value, b"2");
    assert_eq!(e3.kv.mod_revision, 4);
    assert_eq!(e3.prev.as_ref().map(|p| p.mod_revision), Some(3));
    let e4 = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (e4.kind, e4.revision, e4.kv.key.as_str()),
        (EventKind::Created, 5, "/w/b")
    );

    // A watch from the middle of history starts right after that revision.
    let mut late = store.watch("/w/", 3).await.unwrap();
    assert_eq!(late.next().await.unwrap().unwrap().revision, 4);
}

async fn concurrent_writes_reach_watchers_exactly_once_in_order(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    let mut watch = store.watch("/", 0).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                store
                    .create(&format!("/{w}/{i}"), vec![w as u8; 100])
                    .await
                    .unwrap();
            }
        }));
    }
    // Start a second watch half way through: it must see the same sequence.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut second = store.watch("/", 0).await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(store.current_revision(), 400);
    for stream in [&mut watch, &mut second] {
        for want in 1..=400 {
            let event = stream.next().await.unwrap().unwrap();
            assert_eq!(event.revision, want);
        }
    }
}

async fn watch_from_a_compacted_revision_is_too_old(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    for i in 0..10 {
        store.create(&format!("/k{i}"), vec![]).await.unwrap();
    }
    store.compact(5).await.unwrap();
    let err = store.watch("/", 4).await.err().expect("too old");
    assert!(
        matches!(
            err,
            StoreError::Compacted {
                requested: 4,
                compacted: 5
            }
        ),
        "{err}"
    );
    let mut ok = store.watch("/", 5).await.unwrap();
    assert_eq!(ok.next().await.unwrap().unwrap().revision, 6);
    assert_eq!(
        store.count("/").await.unwrap(),
        10,
        "compaction keeps current values"
    );
    let err = store.compact(99).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err}");
}

async fn slow_watchers_are_dropped_not_waited_for(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(kind, dir.path(), |c| c.watch_buffer = 8);
    let mut slow = store.watch("/", 0).await.unwrap();
    // Let the watcher register for live events before writing.
    while store.live_watchers() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for i in 0..100 {
        store.create(&format!("/s{i}"), vec![]).await.unwrap();
    }
    assert_eq!(store.current_revision(), 100, "writers were not blocked");
    let mut delivered = 0;
    let end = loop {
        match slow.next().await {
            Some(Ok(_)) => delivered += 1,
            Some(Err(err)) => break err,
            None => panic!("stream ended without an error"),
        }
    };
    assert!(delivered < 100);
    assert!(matches!(end, StoreError::WatcherTooSlow { .. }), "{end}");
    assert!(slow.next().await.is_none());
}

async fn compaction_bounds_history_under_churn(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, dir.path());
    let value = vec![7u8; 1024];
    for i in 0..50 {
        store
            .create(&format!("/churn/{i}"), value.clone())
            .await
            .unwrap();
    }
    let mut sizes = Vec::new();
    for round in 0..6 {
        for _ in 0..10 {
            for i in 0..50 {
                let key = format!("/churn/{i}");
                let kv = store.get(&key).await.unwrap().unwrap();
                store
                    .update(&key, value.clone(), kv.mod_revision)
                    .await
                    .unwrap();
            }
        }
        store.compact(store.current_revision()).await.unwrap();
        let size = store.size_on_disk().unwrap();
        sizes.push(size);
        eprintln!("round {round}: {size} bytes on disk");
    }
    // After compaction only current values remain: a replay from the compacted revision is empty.
    let mut watch = store
        .watch("/churn/", store.current_revision())
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), watch.next())
            .await
            .is_err(),
        "no history after full compaction"
    );
    assert_eq!(store.count("/churn/").await.unwrap(), 50);
    // 3,050 writes of 1 KiB went in; the live data is 50 KiB. The size must not keep growing
    // with the number of writes: later rounds stay within a small factor of the first.
    let first = sizes[0].max(1);
    let last = *sizes.last().unwrap();
    assert!(
        last <= first * 3,
        "size grew from {first} to {last}: {sizes:?}"
    );
}

async fn incompatible_format_is_refused_untouched(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join(FORMAT_FILE), "k3rs-store-sled-v999\n").unwrap();
    let err = common::open(kind, config(dir.path())).unwrap_err();
    assert!(
        matches!(err, StoreError::IncompatibleFormat { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("v999"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "nothing was created: {names:?}");
}

async fn a_directory_that_is_not_a_store_is_refused(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("precious.txt"), "user data").unwrap();
    let err = common::open(kind, config(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

async fn a_store_that_lost_its_database_is_refused(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(kind, dir.path());
        store.create("/k", b"v".to_vec()).await.unwrap();
    }
    let path = dir.path().join("db");
    for entry in std::fs::read_dir(&path).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != FORMAT_FILE {
            let p = entry.path();
            if p.is_dir() {
                std::fs::remove_dir_all(p).unwrap();
            } else {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let err = common::open(kind, config(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

async fn a_garbled_database_is_refused_with_its_path(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(kind, dir.path());
        for i in 0..100 {
            store.create(&format!("/k{i}"), vec![1; 512]).await.unwrap();
        }
    }
    let path = dir.path().join("db");
    // Overwrite every byte of the database file except the header region with garbage.
    let db_file = path.join(kind.db_file());
    let len = std::fs::metadata(&db_file).unwrap().len() as usize;
    std::fs::write(&db_file, vec![0xA5; len]).unwrap();
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    match common::open(kind, config(dir.path())) {
        Err(err) => {
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
        Ok(store) => panic!(
            "a garbled store opened silently at revision {}",
            store.current_revision()
        ),
    }
}

/// sled only: sled's own snapshot files.
#[tokio::test]
async fn leftover_generating_snapshots_are_removed_before_open() {
    let kind = Kind::Sled;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(kind, dir.path());
        store.create("/k", b"v".to_vec()).await.unwrap();
    }
    let path = dir.path().join("db");
    let partial = path.join("snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&partial, b"half a snapshot").unwrap();
    let store = open(kind, dir.path());
    assert!(!partial.exists());
    assert_eq!(store.get("/k").await.unwrap().unwrap().value, b"v");
}

async fn a_store_open_elsewhere_is_reported_in_use(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(kind, dir.path());
    let err = common::open(kind, config(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
}

async fn large_values_survive_reopen(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    // Larger than sled's inline limit: sled stores these pages as separate blob files.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    {
        let store = open(kind, dir.path());
        store.create("/big", big.clone()).await.unwrap();
        let kv = store.get("/big").await.unwrap().unwrap();
        store
            .update("/big", big[..1024 * 1024].to_vec(), kv.mod_revision)
            .await
            .unwrap();
        store.create("/big2", big.clone()).await.unwrap();
    }
    let store = open(kind, dir.path());
    assert_eq!(
        store.get("/big").await.unwrap().unwrap().value,
        &big[..1024 * 1024]
    );
    assert_eq!(store.get("/big2").await.unwrap().unwrap().value, big);
}

/// Automatic compaction runs on its own every interval, never takes the last
/// `compaction_retention` revisions (nor the last interval's), and keeps going as writes go on:
/// a watch behind the window is then told `Compacted`, one inside it replays.
async fn automatic_compaction_keeps_the_retained_revisions(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(kind, dir.path(), |c| {
        c.compaction_interval = Some(Duration::from_millis(50));
        c.compaction_retention = 10;
    });
    let wait_for_compaction_to = |target: i64| {
        let store = store.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while store.compacted_revision() < target {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "not compacted to {target} within 10 s (at {})",
                    store.compacted_revision()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Give later runs a chance to go too far before checking that they did not.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(store.compacted_revision(), target, "compacted too far");
        }
    };
    for i in 0..50 {
        store.create(&format!("/auto/{i}"), vec![1]).await.unwrap();
    }
    wait_for_compaction_to(40).await;
    let err = store.watch("/auto/", 39).await.err().expect("too old");
    assert!(
        matches!(err, StoreError::Compacted { compacted: 40, .. }),
        "{err}"
    );
    let mut replay = store.watch("/auto/", 40).await.unwrap();
    let first = replay.next().await.unwrap().unwrap();
    assert_eq!(first.revision, 41, "the retained history replays");

    for i in 0..5 {
        let key = format!("/auto/{i}");
        let kv = store.get(&key).await.unwrap().unwrap();
        store.update(&key, vec![2], kv.mod_revision).await.unwrap();
    }
    wait_for_compaction_to(45).await;
    assert_eq!(store.count("/auto/").await.unwrap(), 50, "live values stay");
}

/// Without an interval nothing is compacted on its own.
async fn no_interval_no_automatic_compaction(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(kind, dir.path(), |c| c.compaction_retention = 0);
    for i in 0..20 {
        store.create(&format!("/keep/{i}"), vec![]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.compacted_revision(), 0);
    assert!(store.watch("/keep/", 0).await.is_ok());
}

/// A directory of one backend is refused by the other, untouched, both ways.
async fn the_other_backends_store_is_refused_untouched(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(kind.other(), dir.path());
        store.create("/k", b"v".to_vec()).await.unwrap();
    }
    let path = dir.path().join("db");
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let err = common::open(kind, config(dir.path())).unwrap_err();
    match &err {
        StoreError::IncompatibleFormat {
            found, expected, ..
        } => {
            assert_eq!(found, kind.other().format());
            assert_eq!(expected, kind.format());
        }
        _ => panic!("{err}"),
    }
    assert_eq!(listing(), before, "nothing was created or removed");
    let store = open(kind.other(), dir.path());
    assert_eq!(store.get("/k").await.unwrap().unwrap().value, b"v");
}

backend_tests!(
    create_update_delete_carry_revisions,
    bad_keys_are_refused,
    revisions_survive_reopen,
    pages_are_read_at_one_revision,
    lists_see_the_right_version_through_long_histories,
    list_at_a_compacted_revision_is_too_old,
    watch_replays_then_streams_with_previous_values,
    concurrent_writes_reach_watchers_exactly_once_in_order,
    watch_from_a_compacted_revision_is_too_old,
    slow_watchers_are_dropped_not_waited_for,
    compaction_bounds_history_under_churn,
    incompatible_format_is_refused_untouched,
    a_directory_that_is_not_a_store_is_refused,
    a_store_that_lost_its_database_is_refused,
    a_garbled_database_is_refused_with_its_path,
    a_store_open_elsewhere_is_reported_in_use,
    large_values_survive_reopen,
    automatic_compaction_keeps_the_retained_revisions,
    no_interval_no_automatic_compaction,
    the_other_backends_store_is_refused_untouched,
);
