//! Watch torture: concurrent writers and many watchers (cluster-wide, per namespace, with label
//! selectors) against a server that compacts its history every half second. Every watcher must
//! see every event of its scope exactly once, in resourceVersion order, resume after a dropped
//! stream or a server-side timeout from the last resourceVersion it saw, relist after a
//! `410 Expired`, and end with the state the store holds.
//!
//! The ground truth is what the writers were told: each acknowledged write's resourceVersion
//! and the object before and after it. Every key has one writer, so that history is exact.

// The helpers are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k3rs_tests::K3rsServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Api, Client};
use kube_support::{client, create_namespace, revision};
use serde_json::json;
use tokio::sync::watch;

const NAMESPACES: [&str; 3] = ["torture-a", "torture-b", "torture-c"];
const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 150;
/// The server's compaction settings: a watcher more than a second or so behind is expired.
const COMPACTION_INTERVAL: &str = "500ms";
const COMPACTION_RETENTION: i64 = 50;
/// How long a watcher that falls behind on purpose waits after the last write: long enough for
/// two compactions to pass it.
const LAG: Duration = Duration::from_millis(2500);
/// The whole test fails instead of hanging past this.
const DEADLINE: Duration = Duration::from_secs(150);

/// (namespace, name).
type Key = (String, String);

/// What the test compares of an object: its labels and data.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    labels: BTreeMap<String, String>,
    data: BTreeMap<String, String>,
}

impl State {
    fn of(cm: &ConfigMap) -> State {
        State {
            labels: cm.metadata.labels.clone().unwrap_or_default(),
            data: cm.data.clone().unwrap_or_default(),
        }
    }
}

fn key_of(cm: &ConfigMap) -> Key {
    (
        cm.metadata.namespace.clone().unwrap_or_default(),
        cm.metadata.name.clone().unwrap_or_default(),
    )
}

/// One acknowledged write: its resourceVersion and the object before and after (None: absent).
#[derive(Clone, Debug)]
struct Write {
    rv: i64,
    key: Key,
    before: Option<State>,
    after: Option<State>,
}

/// A label selector of the few forms the watchers use.
#[derive(Clone, Copy, Debug)]
enum Selector {
    Everything,
    Equals(&'static str, &'static str),
    NotEquals(&'static str, &'static str),
    In(&'static str, &'static [&'static str]),
}

impl Selector {
    fn query(self) -> Option<String> {
        match self {
            Selector::Everything => None,
            Selector::Equals(k, v) => Some(format!("{k}={v}")),
            Selector::NotEquals(k, v) => Some(format!("{k}!={v}")),
            Selector::In(k, values) => Some(format!("{k} in ({})", values.join(","))),
        }
    }

    fn matches(self, labels: &BTreeMap<String, String>) -> bool {
        let value = |k: &str| labels.get(k).map(String::as_str);
        match self {
            Selector::Everything => true,
            Selector::Equals(k, v) => value(k) == Some(v),
            Selector::NotEquals(k, v) => value(k) != Some(v),
            Selector::In(k, values) => value(k).is_some_and(|v| values.contains(&v)),
        }
    }
}

/// What one watcher watches.
#[derive(Clone, Copy, Debug)]
struct Scope {
    namespace: Option<&'static str>,
    selector: Selector,
}

impl Scope {
    fn selects(&self, key: &Key, state: &State) -> bool {
        self.namespace.is_none_or(|ns| ns == key.0) && self.selector.matches(&state.labels)
    }
}

/// An event as a watcher saw it, or as the ground truth says it must see it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    key: Key,
    rv: i64,
    state: State,
}

/// Objects of a scope at some revision: key → (resourceVersion, state).
type Snapshot = BTreeMap<Key, (i64, State)>;

/// Everything that happened, in revision order.
#[derive(Debug)]
struct Truth {
    /// The ConfigMaps that existed before the writers started, and the revision of that list.
    base: Snapshot,
    writes: Vec<Write>,
}

impl Truth {
    fn new(base: Snapshot, base_rv: i64, writers: Vec<Vec<Write>>) -> Truth {
        let mut writes: Vec<Write> = writers.into_iter().flatten().collect();
        writes.sort_by_key(|w| w.rv);
        for pair in writes.windows(2) {
            assert!(
                pair[0].rv < pair[1].rv,
                "two acknowledged writes share resourceVersion {}: {pair:?}",
                pair[0].rv
            );
        }
        assert!(
            writes.first().is_none_or(|w| w.rv > base_rv),
            "a write is older than the list before it"
        );
        Truth { base, writes }
    }

    fn last_rv(&self) -> i64 {
        self.writes.last().map_or(0, |w| w.rv)
    }

    /// The scope's objects as of revision `at`.
    fn snapshot(&self, scope: &Scope, at: i64) -> Snapshot {
        let mut objects = self.base.clone();
        for write in self.writes.iter().take_while(|w| w.rv <= at) {
            match &write.after {
                Some(state) => objects.insert(write.key.clone(), (write.rv, state.clone())),
                None => objects.remove(&write.key),
            };
        }
        objects.retain(|key, (_, state)| scope.selects(key, state));
        objects
    }

    /// What a watch of `scope` reports for `write`, as upstream's watch does: an object that
    /// enters the selection is ADDED, one that leaves it (or is deleted) is DELETED with its
    /// previous content, one that stays is MODIFIED.
    fn event(scope: &Scope, write: &Write) -> Option<Seen> {
        fn selected<'a>(scope: &Scope, key: &Key, state: &'a Option<State>) -> Option<&'a State> {
            state.as_ref().filter(|state| scope.selects(key, state))
        }
        let selected = |state| selected(scope, &write.key, state);
        let (kind, state) = match (selected(&write.before), selected(&write.after)) {
            (None, Some(after)) => ("ADDED", after),
            (Some(_), Some(after)) => ("MODIFIED", after),
            (Some(before), None) => ("DELETED", before),
            (None, None) => return None,
        };
        Some(Seen {
            kind,
            key: write.key.clone(),
            rv: write.rv,
            state: state.clone(),
        })
    }

    /// The events a watch of `scope` must deliver for revisions in `(after, through]`.
    fn events(&self, scope: &Scope, after: i64, through: i64) -> Vec<Seen> {
        self.writes
            .iter()
            .filter(|w| w.rv > after && w.rv <= through)
            .filter_map(|w| Truth::event(scope, w))
            .collect()
    }

    /// The revision of the scope's last event: a watcher that got there has seen everything.
    fn last_event_rv(&self, scope: &Scope) -> i64 {
        self.writes
            .iter()
            .rev()
            .find(|w| Truth::event(scope, w).is_some())
            .map_or(0, |w| w.rv)
    }
}

/// A tiny deterministic generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// One writer: creates, updates (data or the `color` label, which moves objects in and out of
/// the selectors) and deletes ConfigMaps it alone owns; returns its acknowledged writes.
async fn writer(id: usize, client: Client, acknowledged: Arc<AtomicUsize>) -> Vec<Write> {
    let mut rng = Rng::new(id as u64 + 1);
    let mut live: Vec<(Key, State)> = Vec::new();
    let mut writes = Vec::with_capacity(WRITES_PER_WRITER);
    let patch = PatchParams::default();
    for seq in 0..WRITES_PER_WRITER {
        let roll = rng.below(100);
        let write = if live.len() < 3 || roll < 30 {
            let namespace = NAMESPACES[rng.below(NAMESPACES.len() as u64) as usize];
            let color = if rng.below(2) == 0 { "red" } else { "blue" };
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {
                    "name": format!("w{id}-{seq}"),
                    "labels": {"writer": format!("w{id}"), "color": color},
                },
                "data": {"seq": seq.to_string()},
            }))
            .unwrap();
            let created = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .create(&PostParams::default(), &cm)
                .await
                .unwrap_or_else(|err| panic!("writer {id}: create: {err}"));
            live.push((key_of(&created), State::of(&created)));
            Write {
                rv: revision(&created),
                key: key_of(&created),
                before: None,
                after: Some(State::of(&created)),
            }
        } else {
            let index = rng.below(live.len() as u64) as usize;
            let ((namespace, name), before) = live[index].clone();
            let api = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
            let body = if roll < 60 {
                json!({"data": {"seq": seq.to_string()}})
            } else if roll < 85 {
                let color = if before.labels.get("color").map(String::as_str) == Some("red") {
                    "blue"
                } else {
                    "red"
                };
                json!({"metadata": {"labels": {"color": color}}})
            } else {
                json!(null)
            };
            if body.is_null() {
                let deleted = api
                    .delete(&name, &DeleteParams::default())
                    .await
                    .unwrap_or_else(|err| panic!("writer {id}: delete {name}: {err}"))
                    .left()
                    .expect("a ConfigMap without finalizers goes at once");
                live.swap_remove(index);
                Write {
                    rv: revision(&deleted),
                    key: (namespace, name),
                    before: Some(before),
                    after: None,
                }
            } else {
                let updated = api
                    .patch(&name, &patch, &Patch::Merge(body))
                    .await
                    .unwrap_or_else(|err| panic!("writer {id}: patch {name}: {err}"));
                live[index].1 = State::of(&updated);
                Write {
                    rv: revision(&updated),
                    key: (namespace, name),
                    before: Some(before),
                    after: Some(State::of(&updated)),
                }
            }
        };
        writes.push(write);
        acknowledged.fetch_add(1, Ordering::Relaxed);
    }
    writes
}

/// What a watcher did, in order.
#[derive(Debug)]
enum Record {
    /// A (re)list at `rv` returned these objects.
    Listed { rv: i64, objects: Snapshot },
    /// A watch event.
    Event(Seen),
    /// Resuming from `from` was answered with 410 Expired, saying `message`.
    Expired { from: i64, message: String },
}

/// How a watcher misbehaves, to exercise every way back.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    /// Drops its stream after a few events now and then, and resumes.
    drops: bool,
    /// Stops once after its first events until the writers are done and compaction has passed
    /// it, then resumes: it must get 410 and relist.
    lags: bool,
    /// Starts while the writers are already busy.
    starts_late: bool,
}

#[derive(Debug)]
struct WatcherLog {
    id: usize,
    scope: Scope,
    records: Vec<Record>,
    /// The resourceVersion the watcher got to (events and bookmarks).
    last_rv: i64,
    /// The objects the watcher believes exist at `last_rv`.
    state: Snapshot,
    drops: usize,
    timeouts: usize,
    expirations: usize,
}

/// Lists, then watches from the list's resourceVersion, resuming after every end, until it has
/// seen its scope's last write (known once the writers are done).
async fn watcher(
    id: usize,
    scope: Scope,
    behaviour: Behaviour,
    client: Client,
    truth: watch::Receiver<Option<Arc<Truth>>>,
) -> WatcherLog {
    let api: Api<ConfigMap> = match scope.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut rng = Rng::new(1000 + id as u64);
    let mut log = WatcherLog {
        id,
        scope,
        records: Vec::new(),
        last_rv: 0,
        state: Snapshot::new(),
        drops: 0,
        timeouts: 0,
        expirations: 0,
    };
    if behaviour.starts_late {
        tokio::time::sleep(Duration::from_millis(300 + 100 * rng.below(10))).await;
    }
    let mut lagged = false;
    let done = |log: &WatcherLog| {
        truth
            .borrow()
            .as_ref()
            .is_some_and(|truth| log.last_rv >= truth.last_event_rv(&scope))
    };
    let selector = scope.selector.query();
    'relist: loop {
        let mut list_params = ListParams::default();
        if let Some(selector) = &selector {
            list_params = list_params.labels(selector);
        }
        let list = api
            .list(&list_params)
            .await
            .unwrap_or_else(|err| panic!("watcher {id}: list: {err}"));
        let rv: i64 = list
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok())
            .expect("a list resourceVersion");
        assert!(
            rv >= log.last_rv,
            "watcher {id}: a relist went back from {} to {rv}",
            log.last_rv
        );
        log.state = list
            .items
            .iter()
            .map(|cm| (key_of(cm), (revision(cm), State::of(cm))))
            .collect();
        log.records.push(Record::Listed {
            rv,
            objects: log.state.clone(),
        });
        log.last_rv = rv;

        loop {
            if done(&log) {
                break 'relist;
            }
            if behaviour.lags && !lagged && log.last_rv > rv {
                lagged = true;
                let mut truth = truth.clone();
                truth
                    .wait_for(Option::is_some)
                    .await
                    .expect("the test goes on");
                tokio::time::sleep(LAG).await;
            }
            let mut params = WatchParams::default().timeout(1 + rng.below(3) as u32);
            if let Some(selector) = &selector {
                params = params.labels(selector);
            }
            let mut events = api
                .watch(&params, &log.last_rv.to_string())
                .await
                .unwrap_or_else(|err| panic!("watcher {id}: watch: {err}"))
                .boxed();
            let drop_after = (behaviour.drops && rng.below(2) == 0).then(|| 3 + rng.below(30));
            let mut received = 0;
            loop {
                let next = tokio::time::timeout(Duration::from_secs(30), events.try_next())
                    .await
                    .unwrap_or_else(|_| panic!("watcher {id}: a watch hung past its timeout"))
                    .unwrap_or_else(|err| panic!("watcher {id}: the watch broke: {err}"));
                let (kind, cm) = match next {
                    None => {
                        log.timeouts += 1;
                        break;
                    }
                    Some(WatchEvent::Error(status)) => {
                        assert_eq!(
                            (status.code, status.reason.as_str()),
                            (410, "Expired"),
                            "watcher {id}: {status:?}"
                        );
                        log.expirations += 1;
                        log.records.push(Record::Expired {
                            from: log.last_rv,
                            message: status.message.clone(),
                        });
                        continue 'relist;
                    }
                    Some(WatchEvent::Bookmark(bookmark)) => {
                        let rv: i64 = bookmark.metadata.resource_version.parse().unwrap();
                        assert!(rv >= log.last_rv, "watcher {id}: a bookmark went back");
                        log.last_rv = rv;
                        continue;
                    }
                    Some(WatchEvent::Added(cm)) => ("ADDED", cm),
                    Some(WatchEvent::Modified(cm)) => ("MODIFIED", cm),
                    Some(WatchEvent::Deleted(cm)) => ("DELETED", cm),
                };
                let seen = Seen {
                    kind,
                    key: key_of(&cm),
                    rv: revision(&cm),
                    state: State::of(&cm),
                };
                assert!(
                    seen.rv > log.last_rv,
                    "watcher {id}: {seen:?} is not after {}",
                    log.last_rv
                );
                log.last_rv = seen.rv;
                if kind == "DELETED" {
                    log.state.remove(&seen.key);
                } else {
                    log.state
                        .insert(seen.key.clone(), (seen.rv, seen.state.clone()));
                }
                log.records.push(Record::Event(seen));
                received += 1;
                if drop_after == Some(received) {
                    log.drops += 1;
                    break;
                }
                if done(&log) {
                    break 'relist;
                }
            }
        }
    }
    log
}

/// Checks one watcher's record against the truth: each list equals the truth at its revision;
/// between a list and the next 410 (or the end) the events are exactly the truth's, in order;
/// a 410 only came for a revision compaction may have removed; the end state is the truth's.
fn verify(log: &WatcherLog, truth: &Truth) -> Result<(), String> {
    let scope = &log.scope;
    let id = log.id;
    let mut from: Option<i64> = None;
    let mut segment: Vec<Seen> = Vec::new();
    let check_segment = |from: i64, through: i64, segment: &[Seen]| {
        let expected = truth.events(scope, from, through);
        if segment != expected {
            let first = segment
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(segment.len().min(expected.len()));
            return Err(format!(
                "watcher {id} ({scope:?}): events in ({from}, {through}] differ at #{first}: \
                 saw {} events, expected {}\n saw:      {:?}\n expected: {:?}",
                segment.len(),
                expected.len(),
                segment.get(first),
                expected.get(first)
            ));
        }
        Ok(())
    };
    for record in &log.records {
        match record {
            Record::Listed { rv, objects } => {
                if from.is_some() {
                    return Err(format!("watcher {id}: relisted without a 410"));
                }
                let expected = truth.snapshot(scope, *rv);
                if *objects != expected {
                    return Err(format!(
                        "watcher {id} ({scope:?}): the list at {rv} differs from the truth:\n \
                         listed:   {objects:?}\n expected: {expected:?}"
                    ));
                }
                from = Some(*rv);
                segment.clear();
            }
            Record::Event(seen) => segment.push(seen.clone()),
            Record::Expired {
                from: resumed,
                message,
            } => {
                let start = from.take().ok_or("a 410 before any list")?;
                check_segment(start, *resumed, &segment)?;
                // (A watcher the server drops for being too slow is also told to relist.)
                if message.starts_with("too old resource version")
                    && truth.last_rv() - resumed < COMPACTION_RETENTION
                {
                    return Err(format!(
                        "watcher {id}: 410 for {resumed}, within the retained {COMPACTION_RETENTION} \
                         revisions of the last write {}",
                        truth.last_rv()
                    ));
                }
            }
        }
    }
    let start = from.ok_or("the watcher ended without a list")?;
    check_segment(start, log.last_rv, &segment)?;
    let expected = truth.snapshot(scope, i64::MAX);
    if log.state != expected {
        return Err(format!(
            "watcher {id} ({scope:?}): the final state differs from the truth:\n \
             seen:     {:?}\n expected: {expected:?}",
            log.state
        ));
    }
    Ok(())
}

/// The watchers: every namespace and the whole cluster, unfiltered and through selectors
/// (equality, inequality, set), each with its own way of dropping out and coming back.
fn scopes() -> Vec<Scope> {
    const SOME_WRITERS: &[&str] = &["w0", "w1", "w2"];
    let mut scopes = Vec::new();
    let mut namespaces: Vec<Option<&'static str>> = vec![None, None];
    namespaces.extend(NAMESPACES.iter().copied().map(Some));
    for namespace in namespaces {
        for selector in [
            Selector::Everything,
            Selector::Everything,
            Selector::Equals("color", "red"),
            Selector::NotEquals("color", "red"),
            Selector::In("writer", SOME_WRITERS),
            Selector::Everything,
            Selector::Equals("color", "blue"),
        ] {
            scopes.push(Scope {
                namespace,
                selector,
            });
        }
    }
    scopes
}

/// Many writers, many watchers, a server compacting every 500 ms: every watcher sees exactly its
/// scope's events, resumes after disconnects, relists after 410, and ends at the store's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_torture() {
    let dir = tempfile::tempdir().unwrap();
    let retention = COMPACTION_RETENTION.to_string();
    let server = K3rsServer::start_with(
        dir.path(),
        &[
            "--etcd-compaction-interval",
            COMPACTION_INTERVAL,
            "--store-compaction-retention",
            &retention,
        ],
    )
    .expect("k3rs server starts");
    let client = client(&server).await;
    let outcome = tokio::time::timeout(DEADLINE, torture(client)).await;
    if outcome.is_err() {
        panic!(
            "the torture test did not finish within {DEADLINE:?}; server log:\n{}",
            server.log_text()
        );
    }
}

async fn torture(client: Client) {
    for namespace in NAMESPACES {
        create_namespace(&client, namespace).await;
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    let before = all.list(&ListParams::default()).await.unwrap();
    let base_rv: i64 = before.metadata.resource_version.unwrap().parse().unwrap();
    let base: Snapshot = before
        .items
        .iter()
        .map(|cm| (key_of(cm), (revision(cm), State::of(cm))))
        .collect();

    let (publish, truth) = watch::channel(None::<Arc<Truth>>);
    let scopes = scopes();
    let watchers: Vec<_> = scopes
        .iter()
        .enumerate()
        .map(|(id, scope)| {
            let behaviour = Behaviour {
                drops: id % 2 == 1,
                lags: id % 6 == 0,
                starts_late: id % 5 == 2,
            };
            tokio::spawn(watcher(
                id,
                *scope,
                behaviour,
                client.clone(),
                truth.clone(),
            ))
        })
        .collect();

    let started = tokio::time::Instant::now();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(id, client.clone(), acknowledged.clone())))
        .collect();
    let mut writes = Vec::new();
    for writer in writers {
        writes.push(writer.await.expect("a writer finished"));
    }
    let truth = Arc::new(Truth::new(base, base_rv, writes));
    eprintln!(
        "{} writes in {:?}, revisions {base_rv}..{}",
        acknowledged.load(Ordering::Relaxed),
        started.elapsed(),
        truth.last_rv()
    );
    publish.send_replace(Some(truth.clone()));

    let mut logs = Vec::new();
    for watcher in watchers {
        logs.push(watcher.await.expect("a watcher finished"));
    }
    eprintln!("watchers done after {:?}", started.elapsed());

    let failures: Vec<String> = logs
        .iter()
        .filter_map(|log| verify(log, &truth).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} watchers went wrong:\n{}",
        failures.len(),
        logs.len(),
        failures.join("\n")
    );

    // The store itself ends where the truth does.
    let everything = Scope {
        namespace: None,
        selector: Selector::Everything,
    };
    let stored: Snapshot = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|cm| (key_of(cm), (revision(cm), State::of(cm))))
        .collect();
    assert_eq!(stored, truth.snapshot(&everything, i64::MAX));

    // Every way back was taken.
    let total = |count: fn(&WatcherLog) -> usize| logs.iter().map(count).sum::<usize>();
    let (drops, timeouts, expirations) = (
        total(|l| l.drops),
        total(|l| l.timeouts),
        total(|l| l.expirations),
    );
    eprintln!(
        "{} watchers: {drops} dropped streams, {timeouts} server timeouts, {expirations} 410s",
        logs.len()
    );
    assert!(drops > 0, "no watcher dropped its stream");
    assert!(timeouts > 0, "no watch timed out");
    let lagging_expired = logs
        .iter()
        .filter(|l| l.id % 6 == 0 && l.expirations > 0)
        .count();
    assert!(
        lagging_expired > 0,
        "no lagging watcher was expired by compaction"
    );
}
