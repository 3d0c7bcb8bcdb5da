//! The probes of a pod's running containers (upstream's prober workers, kept per pod): when
//! each probe is due (`initialDelaySeconds` after the container started, then every
//! `periodSeconds`), its consecutive successes and failures against its thresholds, and what
//! they mean — ready, started, or a liveness/startup failure that restarts the container.
//! Readiness starts as failed, liveness as succeeded, as upstream's result managers do.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::jiff::Timestamp;

use crate::plan::ProbeFailures;
use crate::pod_runtime::{ContainerState, RuntimePod};
use crate::pod_status::ProbeState;
use crate::probe::Outcome;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// `Liveness`, as events name it (`Liveness probe failed: …`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    pub fn probe(self, container: &Container) -> Option<&Probe> {
        match self {
            Kind::Liveness => container.liveness_probe.as_ref(),
            Kind::Readiness => container.readiness_probe.as_ref(),
            Kind::Startup => container.startup_probe.as_ref(),
        }
    }
}

/// One probe of one container run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    /// When it runs next.
    pub due: Timestamp,
    successes: i32,
    failures: i32,
    /// The result once a threshold was reached; before, the kind's initial value.
    pub passed: bool,
    /// The failure threshold was reached (and no success threshold since).
    pub failed: bool,
}

fn seconds(value: Option<i32>, default: i32) -> i64 {
    i64::from(value.unwrap_or(default).max(0))
}

fn plus(at: Timestamp, seconds: i64) -> Timestamp {
    at.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX)
}

/// The probe's timeout (`timeoutSeconds`, default 1).
pub fn timeout(probe: &Probe) -> Duration {
    Duration::from_secs(u64::try_from(seconds(probe.timeout_seconds, 1).max(1)).unwrap_or(1))
}

impl Tracker {
    /// A probe of a run that started at `started`.
    pub fn new(kind: Kind, probe: &Probe, started: Timestamp) -> Tracker {
        Tracker {
            due: plus(started, seconds(probe.initial_delay_seconds, 0)),
            successes: 0,
            failures: 0,
            passed: kind == Kind::Liveness,
            failed: false,
        }
    }

    /// Records one outcome at `now`; true when the result changed.
    pub fn record(&mut self, probe: &Probe, outcome: &Outcome, now: Timestamp) -> bool {
        self.due = plus(now, seconds(probe.period_seconds, 10).max(1));
        let before = self.passed;
        match outcome {
            Outcome::Success => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.successes >= probe.success_threshold.unwrap_or(1).max(1) {
                    self.passed = true;
                    self.failed = false;
                }
            }
            Outcome::Failure(_) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                    self.passed = false;
                    self.failed = true;
                }
            }
        }
        before != self.passed
    }
}

/// The probes of one pod, by container run and kind.
#[derive(Clone, Debug, Default)]
pub struct PodProbes {
    trackers: HashMap<(String, Kind), Tracker>,
}

fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|spec| {
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
    })
}

impl PodProbes {
    /// The probes due at `now` for the running containers of `runtime`: `(container id, the
    /// container's spec, kind)`. Trackers of runs that are gone are dropped; a startup probe
    /// that has not passed holds back the other two.
    pub fn due<'a>(
        &mut self,
        pod: &'a Pod,
        runtime: &RuntimePod,
        now: Timestamp,
    ) -> Vec<(String, &'a Container, Kind)> {
        let running: Vec<(&str, &str, Timestamp)> = runtime
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| (c.id.as_str(), c.name.as_str(), c.started_at.unwrap_or(now)))
            .collect();
        self.trackers
            .retain(|(id, _), _| running.iter().any(|(running_id, ..)| running_id == id));
        let mut due = Vec::new();
        for (id, name, started) in running {
            let Some(container) = containers(pod).find(|c| c.name == name) else {
                continue;
            };
            let started_up = container.startup_probe.is_none()
                || self
                    .trackers
                    .get(&(id.to_owned(), Kind::Startup))
                    .is_some_and(|t| t.passed);
            for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
                let Some(probe) = kind.probe(container) else {
                    continue;
                };
                if kind == Kind::Startup && started_up {
                    continue;
                }
                if kind != Kind::Startup && !started_up {
                    continue;
                }
                let tracker = self
                    .trackers
                    .entry((id.to_owned(), kind))
                    .or_insert_with(|| Tracker::new(kind, probe, started));
                if tracker.due <= now {
                    due.push((id.to_owned(), container, kind));
                }
            }
        }
        due
    }

    /// Records an outcome; true when the probe's result changed.
    pub fn record(
        &mut self,
        id: &str,
        container: &Container,
        kind: Kind,
        outcome: &Outcome,
        now: Timestamp,
    ) -> bool {
        let (Some(probe), Some(tracker)) = (
            kind.probe(container),
            self.trackers.get_mut(&(id.to_owned(), kind)),
        ) else {
            return false;
        };
        tracker.record(probe, outcome, now)
    }

    /// The next moment a probe is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.trackers.values().map(|t| t.due).min()
    }

    fn passed(&self, id: &str, kind: Kind) -> Option<bool> {
        self.trackers.get(&(id.to_owned(), kind)).map(|t| t.passed)
    }

    /// Which running containers are ready and started (upstream's result managers: a
    /// container without the probe is ready, or started, as soon as it runs).
    pub fn state(&self, pod: &Pod, runtime: &RuntimePod) -> ProbeState {
        let mut state = ProbeState::default();
        for run in runtime
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
        {
            let Some(container) = containers(pod).find(|c| c.name == run.name) else {
                continue;
            };
            let started = container.startup_probe.is_none()
                || self.passed(&run.id, Kind::Startup) == Some(true);
            if started {
                state.started.insert(run.id.clone());
            }
            let ready = started
                && (container.readiness_probe.is_none()
                    || self.passed(&run.id, Kind::Readiness) == Some(true));
            if ready {
                state.ready.insert(run.id.clone());
            }
        }
        state
    }

    /// Running containers whose liveness or startup probe has failed, for the plan.
    pub fn failures(&self) -> ProbeFailures {
        let mut failures = ProbeFailures::default();
        for ((id, kind), tracker) in &self.trackers {
            match kind {
                Kind::Liveness if tracker.failed => {
                    failures.liveness.insert(id.clone());
                }
                Kind::Startup if tracker.failed => {
                    failures.startup.insert(id.clone());
                }
                Kind::Startup if !tracker.passed => {
                    failures.not_started.insert(id.clone());
                }
                _ => {}
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_runtime::ContainerInfo;
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + seconds).unwrap()
    }

    fn pod(container: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [container]}}),
        )
        .unwrap()
    }

    fn running(id: &str) -> RuntimePod {
        RuntimePod {
            sandboxes: vec![],
            containers: vec![ContainerInfo {
                id: id.into(),
                name: "app".into(),
                sandbox_id: "s".into(),
                state: ContainerState::Running,
                created_at: at(0),
                started_at: Some(at(0)),
                finished_at: None,
                exit_code: 0,
                reason: String::new(),
                message: String::new(),
                image: String::new(),
                image_ref: String::new(),
                restart_count: 0,
                hash: String::new(),
                termination_grace_period: None,
            }],
        }
    }

    fn fail() -> Outcome {
        Outcome::Failure("no".into())
    }

    #[test]
    fn readiness_waits_for_its_first_success_and_liveness_for_its_threshold() {
        let p = pod(json!({
            "name": "app",
            "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 5, "periodSeconds": 2},
            "livenessProbe": {"exec": {"command": ["true"]}, "failureThreshold": 2},
        }));
        let runtime = running("c1");
        let container = &p.spec.as_ref().unwrap().containers[0];
        let mut probes = PodProbes::default();
        let due = probes.due(&p, &runtime, at(1));
        assert_eq!(due.len(), 1, "liveness at once, readiness after its delay");
        assert_eq!(due[0].2, Kind::Liveness);
        assert!(probes.state(&p, &runtime).ready.is_empty());
        assert!(probes.state(&p, &runtime).started.contains("c1"));
        assert_eq!(probes.next_due(), Some(at(0)));
        assert!(!probes.record("c1", container, Kind::Liveness, &fail(), at(1)));
        assert!(probes.failures().liveness.is_empty(), "one failure of two");
        assert!(probes.record("c1", container, Kind::Liveness, &fail(), at(11)));
        assert!(probes.failures().liveness.contains("c1"));
        let due = probes.due(&p, &runtime, at(5));
        assert!(due.iter().any(|d| d.2 == Kind::Readiness));
        assert!(probes.record("c1", container, Kind::Readiness, &Outcome::Success, at(5)));
        assert!(probes.state(&p, &runtime).ready.contains("c1"));
        // A new run starts over.
        probes.due(&p, &running("c2"), at(20));
        assert!(probes.failures().liveness.is_empty());
        assert!(probes.state(&p, &running("c2")).ready.is_empty());
    }

    #[test]
    fn a_startup_probe_holds_the_others_back() {
        let p = pod(json!({
            "name": "app",
            "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 3},
            "livenessProbe": {"exec": {"command": ["true"]}},
        }));
        let runtime = running("c1");
        let container = &p.spec.as_ref().unwrap().containers[0];
        let mut probes = PodProbes::default();
        let due = probes.due(&p, &runtime, at(0));
        assert_eq!(due.iter().map(|d| d.2).collect::<Vec<_>>(), [Kind::Startup]);
        assert!(probes.state(&p, &runtime).started.is_empty());
        assert!(probes.failures().not_started.contains("c1"));
        probes.record("c1", container, Kind::Startup, &Outcome::Success, at(0));
        assert!(probes.state(&p, &runtime).started.contains("c1"));
        let due = probes.due(&p, &runtime, at(10));
        assert_eq!(
            due.iter().map(|d| d.2).collect::<Vec<_>>(),
            [Kind::Liveness]
        );
    }
}
