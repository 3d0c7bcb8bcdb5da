//! The resources this server serves, looked up by group, version and plural: the built-in
//! table, fixed at start, plus the served versions of every established CRD, replaced as a
//! whole by the CRD controller ([`super::crd`]) whenever the CRDs change.

use std::sync::{Arc, RwLock};

use k3rs_api::{builtin_resources, CustomResourceSchema, ResourceInfo};

/// Every served resource.
#[derive(Debug)]
pub(crate) struct Registry {
    builtin: Vec<Arc<ResourceInfo>>,
    /// Swapped whole, never edited in place: readers clone the `Arc` and let go of the lock.
    custom: RwLock<Arc<CustomSet>>,
}

/// The custom resources served at one moment.
#[derive(Debug, Default)]
pub(crate) struct CustomSet {
    /// Served versions, by group, version priority and plural.
    pub(crate) resources: Vec<Arc<ResourceInfo>>,
    /// The same versions as the OpenAPI documents need them (`openapi.rs` rebuilds its
    /// documents when `revision` moves).
    pub(crate) schemas: Vec<CustomResourceSchema>,
    /// Moves on every change of the set (OpenAPI documents are rebuilt when it moves).
    pub(crate) revision: u64,
}

impl Registry {
    /// The built-in resources of this Kubernetes version, and no custom resources yet.
    pub(crate) fn builtin() -> Registry {
        Registry {
            builtin: builtin_resources().into_iter().map(Arc::new).collect(),
            custom: RwLock::new(Arc::default()),
        }
    }

    /// The custom resources served now.
    pub(crate) fn custom(&self) -> Arc<CustomSet> {
        self.custom
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether `group` has built-in resources (a CRD may not add to it).
    pub(crate) fn is_builtin_group(&self, group: &str) -> bool {
        self.builtin.iter().any(|r| r.group == group)
    }

    /// Replaces the custom resources; returns whether anything changed.
    pub(crate) fn set_custom(
        &self,
        mut resources: Vec<ResourceInfo>,
        schemas: Vec<CustomResourceSchema>,
    ) -> bool {
        resources.retain(|r| !self.is_builtin_group(r.group));
        // Group by group; within a group, the CRD's version order (priority) is kept by a stable
        // sort, so the first version of a group is its preferred one.
        resources.sort_by(|a, b| {
            a.group
                .cmp(b.group)
                .then_with(|| k3rs_api::custom::compare_versions(a.version, b.version))
                .then_with(|| a.plural.cmp(b.plural))
        });
        let mut guard = self
            .custom
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let same = guard.schemas == schemas
            && guard.resources.len() == resources.len()
            && guard.resources.iter().zip(&resources).all(|(old, new)| {
                (old.group, old.version, old.plural, old.kind, old.list_kind)
                    == (new.group, new.version, new.plural, new.kind, new.list_kind)
                    && (old.short_names, old.categories, old.subresources)
                        == (new.short_names, new.categories, new.subresources)
                    && old.singular == new.singular
                    && old.namespaced == new.namespaced
                    && old.custom == new.custom
            });
        if same {
            return false;
        }
        *guard = Arc::new(CustomSet {
            resources: resources.into_iter().map(Arc::new).collect(),
            schemas,
            revision: guard.revision + 1,
        });
        true
    }

    /// The resource `plural` of `group/version`.
    pub(crate) fn find(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceInfo>> {
        let matches =
            |r: &&Arc<ResourceInfo>| r.group == group && r.version == version && r.plural == plural;
        if let Some(found) = self.builtin.iter().find(matches) {
            return Some(found.clone());
        }
        self.custom().resources.iter().find(matches).cloned()
    }

    /// Every built-in resource (custom resources: [`Registry::custom`]).
    pub(crate) fn builtins(&self) -> &[Arc<ResourceInfo>] {
        &self.builtin
    }

    /// Groups in discovery order (built-in groups, then custom ones), each with its versions
    /// (preferred first).
    pub(crate) fn groups(&self) -> Vec<(String, Vec<&'static str>)> {
        let custom = self.custom();
        let mut out: Vec<(String, Vec<&'static str>)> = Vec::new();
        for resource in self.builtin.iter().chain(custom.resources.iter()) {
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
        let custom = self.custom();
        self.builtin
            .iter()
            .chain(custom.resources.iter())
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }
}
