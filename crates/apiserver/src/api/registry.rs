//! The resources this server serves, looked up by group, version and plural.

use std::sync::Arc;

use k3rs_api::{builtin_resources, ResourceInfo};

/// Every served resource. Built-in today; custom resources join when CRDs land.
#[derive(Debug)]
pub(crate) struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
}

impl Registry {
    /// The built-in resources of this Kubernetes version.
    pub(crate) fn builtin() -> Registry {
        Registry {
            resources: builtin_resources().into_iter().map(Arc::new).collect(),
        }
    }

    /// The resource `plural` of `group/version`.
    pub(crate) fn find(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Every served resource.
    pub(crate) fn all(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    /// Groups in discovery order, each with its versions (preferred first).
    pub(crate) fn groups(&self) -> Vec<(String, Vec<&'static str>)> {
        let mut out: Vec<(String, Vec<&'static str>)> = Vec::new();
        for resource in &self.resources {
            match out.iter_mut().find(|(g, _)| g == resource.group) {
                Some((_, versions)) => {
                    if !versions.contains(&resource.version) {
                        versions.push(resource.version);
                    }
                }
                None => out.push((resource.group.to_owned(), vec![resource.version])),
            }
        }
        out
    }

    /// The resources of one group version.
    pub(crate) fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }
}
