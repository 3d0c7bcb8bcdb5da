//! The health of the runtime's supervised tasks, by component name, for `/readyz`: a component
//! is down from the moment its task ends or panics until its restart is running again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// What is known about one component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentState {
    /// Its task is running.
    Running,
    /// Its task ended or panicked and waits for its restart.
    Down {
        /// Why it ended, as logged.
        reason: String,
        /// How many times in a row it ended.
        failures: u32,
    },
}

/// The components that are down, as [`Health::check`] reports them.
#[derive(Debug, thiserror::Error)]
#[error("components down: {}", .down.iter().map(|(name, reason)| format!("{name} ({reason})")).collect::<Vec<_>>().join(", "))]
pub struct Unhealthy {
    /// Each component that is down, with the reason it went down.
    pub down: Vec<(String, String)>,
}

/// The state of every supervised component of the process.
#[derive(Debug)]
pub struct Health {
    components: Mutex<BTreeMap<String, ComponentState>>,
    /// How many supervised tasks reporting here are alive (running, or waiting to restart).
    alive: watch::Sender<usize>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            components: Mutex::default(),
            alive: watch::channel(0).0,
        }
    }
}

/// Counts one supervised task as alive until dropped.
#[derive(Debug)]
pub(crate) struct Alive<'a>(&'a Health);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0
            .alive
            .send_modify(|alive| *alive = alive.saturating_sub(1));
    }
}

impl Health {
    /// Counts the calling task as alive until the result is dropped.
    pub(crate) fn task_alive(&self) -> Alive<'_> {
        self.alive
            .send_modify(|alive| *alive = alive.saturating_add(1));
        Alive(self)
    }

    /// Returns once no supervised task reporting here is alive: after the component's tasks
    /// were aborted (dropped), it waits until the runtime has dropped every one of them, and
    /// with them their informers' watches and their workers' requests.
    pub async fn wait_stopped(&self) {
        let mut alive = self.alive.subscribe();
        // The sender lives as long as `self`.
        let _ = alive.wait_for(|alive| *alive == 0).await;
    }

    fn components(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ComponentState>> {
        // Every change is one insert: a poisoned map is still a good map.
        self.components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `component`'s task is running.
    pub fn running(&self, component: &str) {
        self.components()
            .insert(component.to_owned(), ComponentState::Running);
    }

    /// `component`'s task ended for `reason`; returns how many times in a row it has.
    pub fn down(&self, component: &str, reason: String) -> u32 {
        let mut components = self.components();
        let failures = match components.get(component) {
            Some(ComponentState::Down { failures, .. }) => failures.saturating_add(1),
            _ => 1,
        };
        components.insert(
            component.to_owned(),
            ComponentState::Down { reason, failures },
        );
        failures
    }

    /// The state of `component`, if it was ever started.
    pub fn state(&self, component: &str) -> Option<ComponentState> {
        self.components().get(component).cloned()
    }

    /// `Ok` when no component is down; otherwise which are, and why.
    pub fn check(&self) -> Result<(), Unhealthy> {
        let down: Vec<(String, String)> = self
            .components()
            .iter()
            .filter_map(|(name, state)| match state {
                ComponentState::Running => None,
                ComponentState::Down { reason, .. } => Some((name.clone(), reason.clone())),
            })
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(Unhealthy { down })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_down_until_it_runs_again() {
        let health = Health::default();
        assert!(health.check().is_ok());
        health.running("informer Pod");
        assert!(health.check().is_ok());
        assert_eq!(health.down("informer Pod", "panicked: boom".into()), 1);
        assert_eq!(health.down("informer Pod", "panicked: boom".into()), 2);
        let err = health.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "components down: informer Pod (panicked: boom)"
        );
        health.running("informer Pod");
        assert!(health.check().is_ok());
        assert_eq!(health.state("informer Pod"), Some(ComponentState::Running));
    }
}
