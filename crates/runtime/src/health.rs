//! The health of the runtime's supervised tasks, by component name, for `/readyz`: a component
//! is down from the moment its task ends or panics until its restart is running again.

use std::collections::BTreeMap;
use std::sync::Mutex;

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
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, ComponentState>>,
}

impl Health {
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
