//! The pod annotations that tell a hollow node how a pod's (fake) containers behave, so that
//! controller tests can make pods slow to become ready, finish, fail or crash-loop.
//!
//! They reach the [fake runtime](crate::fake_runtime) the way pod annotations reach containerd:
//! on the sandbox configuration the kubelet builds for the pod. Every container of the pod
//! behaves the same way. A value that does not parse is logged and ignored (the pod then runs
//! as if the annotation were absent).

use std::collections::{BTreeMap, HashMap};

/// `"N"`: the containers run at once, but the pod stays `Ready=False` (and `ContainersReady`)
/// for N seconds after each container start, then becomes ready. `"never"`: it never becomes
/// ready. Default: ready as soon as it runs. Read from the pod as it is at each sync, so
/// changing it on a running pod takes effect at once (the fake runtime is the kubelet's
/// readiness gate: [`k3rs_kubelet::readiness_gate`]).
pub const READY_AFTER_SECONDS: &str = "hollow.k3rs.io/ready-after-seconds";

/// The value of [`READY_AFTER_SECONDS`] for a pod that never becomes ready.
pub const NEVER: &str = "never";

/// `"N"`: the containers exit N seconds after they start, with [`EXIT_CODE`]. What follows is
/// the kubelet's restart policy: with `restartPolicy: Never`, or `OnFailure` and code 0, the pod
/// ends `Succeeded` (code 0) or `Failed`; otherwise the kubelet restarts the containers (one
/// more in `restartCount`, the run that ended in `lastState.terminated`) with its crash-loop
/// back-off (the first restart at once, then 10 s, 20 s, … as on any node) and they exit again
/// N seconds after each start. Default: the containers run until the pod is deleted.
pub const EXIT_AFTER_SECONDS: &str = "hollow.k3rs.io/exit-after-seconds";

/// `"N"`: once the pod is deleted, its containers take N seconds to stop (at most the pod's
/// grace period): the pod keeps running, and ready, while it terminates — what endpoint and
/// rollout tests need to see a terminating pod. Default: the node's
/// [`crate::HollowNodeConfig::termination_delay`] (zero unless set: they stop at once).
pub const STOP_AFTER_SECONDS: &str = "hollow.k3rs.io/stop-after-seconds";

/// `"C"` (0–255): the exit code for [`EXIT_AFTER_SECONDS`]. Default 0. Without
/// [`EXIT_AFTER_SECONDS`] it has no effect.
pub const EXIT_CODE: &str = "hollow.k3rs.io/exit-code";

/// How a pod's containers behave, read from its annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Behaviour {
    /// Seconds from a container's start until it is ready; `None`: never.
    pub(crate) ready_after: Option<u64>,
    /// When and how the containers exit; `None`: they run until the pod is deleted.
    pub(crate) exit: Option<Exit>,
    /// Seconds the containers take to stop once the pod is deleted; `None`: at once.
    pub(crate) stop_after: Option<u64>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            ready_after: Some(0),
            exit: None,
            stop_after: None,
        }
    }
}

/// A container exit: `after` seconds from its start, with `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    pub(crate) after: u64,
    pub(crate) code: i32,
}

/// The behaviour a pod's annotations ask for (as a sandbox configuration carries them), and a
/// message for every annotation that was ignored.
pub(crate) fn behaviour_of(annotations: &HashMap<String, String>) -> (Behaviour, Vec<String>) {
    parse(|key| annotations.get(key).map(String::as_str))
}

/// Seconds from a container's start until it is ready (`None`: never), from a pod's
/// annotations as the API has them.
pub(crate) fn ready_after(annotations: Option<&BTreeMap<String, String>>) -> Option<u64> {
    parse(|key| annotations.and_then(|a| a.get(key)).map(String::as_str))
        .0
        .ready_after
}

fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> (Behaviour, Vec<String>) {
    let mut behaviour = Behaviour::default();
    let mut problems = Vec::new();
    let mut bad = |key: &str, value: &str, expected: &str| {
        problems.push(format!(
            "annotation {key}: {value:?} is not {expected}; ignored"
        ));
    };
    if let Some(value) = get(READY_AFTER_SECONDS) {
        match value.trim() {
            NEVER => behaviour.ready_after = None,
            text => match text.parse::<u64>() {
                Ok(seconds) => behaviour.ready_after = Some(seconds),
                Err(_) => bad(
                    READY_AFTER_SECONDS,
                    value,
                    "a whole number of seconds or \"never\"",
                ),
            },
        }
    }
    let code = match get(EXIT_CODE) {
        None => 0,
        Some(value) => match value.trim().parse::<i32>() {
            Ok(code) if (0..=255).contains(&code) => code,
            _ => {
                bad(EXIT_CODE, value, "an exit code from 0 to 255");
                0
            }
        },
    };
    if let Some(value) = get(STOP_AFTER_SECONDS) {
        match value.trim().parse::<u64>() {
            Ok(seconds) => behaviour.stop_after = Some(seconds),
            Err(_) => bad(STOP_AFTER_SECONDS, value, "a whole number of seconds"),
        }
    }
    match get(EXIT_AFTER_SECONDS) {
        Some(value) => match value.trim().parse::<u64>() {
            Ok(after) => behaviour.exit = Some(Exit { after, code }),
            Err(_) => bad(EXIT_AFTER_SECONDS, value, "a whole number of seconds"),
        },
        None if get(EXIT_CODE).is_some() => problems.push(format!(
            "annotation {EXIT_CODE} has no effect without {EXIT_AFTER_SECONDS}"
        )),
        None => {}
    }
    (behaviour, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (Behaviour, Vec<String>) {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        behaviour_of(&map)
    }

    #[test]
    fn stop_after_is_read() {
        let (behaviour, problems) = parse(&[(STOP_AFTER_SECONDS, "7")]);
        assert_eq!(behaviour.stop_after, Some(7));
        assert!(problems.is_empty());
        let (behaviour, problems) = parse(&[(STOP_AFTER_SECONDS, "soon")]);
        assert_eq!(behaviour.stop_after, None);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn defaults_without_annotations() {
        assert_eq!(parse(&[]), (Behaviour::default(), vec![]));
        assert_eq!(parse(&[("other", "x")]), (Behaviour::default(), vec![]));
    }

    #[test]
    fn reads_every_knob() {
        let (b, problems) = parse(&[
            (READY_AFTER_SECONDS, "5"),
            (EXIT_AFTER_SECONDS, " 3 "),
            (EXIT_CODE, "2"),
        ]);
        assert!(problems.is_empty());
        assert_eq!(b.ready_after, Some(5));
        assert_eq!(b.exit, Some(Exit { after: 3, code: 2 }));
        assert_eq!(parse(&[(READY_AFTER_SECONDS, "never")]).0.ready_after, None);
        assert_eq!(
            parse(&[(EXIT_AFTER_SECONDS, "0")]).0.exit,
            Some(Exit { after: 0, code: 0 })
        );
    }

    #[test]
    fn ignores_what_does_not_parse() {
        let (b, problems) = parse(&[
            (READY_AFTER_SECONDS, "-1"),
            (EXIT_AFTER_SECONDS, "soon"),
            (EXIT_CODE, "256"),
        ]);
        assert_eq!(b, Behaviour::default());
        assert_eq!(
            problems,
            [
                "annotation hollow.k3rs.io/ready-after-seconds: \"-1\" is not a whole number of seconds or \"never\"; ignored",
                "annotation hollow.k3rs.io/exit-code: \"256\" is not an exit code from 0 to 255; ignored",
                "annotation hollow.k3rs.io/exit-after-seconds: \"soon\" is not a whole number of seconds; ignored",
            ]
        );
        let (_, problems) = parse(&[(EXIT_CODE, "1")]);
        assert_eq!(
            problems,
            ["annotation hollow.k3rs.io/exit-code has no effect without hollow.k3rs.io/exit-after-seconds"]
        );
    }
}
