//! The in-memory copy of one resource type that an informer keeps: objects by namespace and name,
//! in order, so a namespace's objects are one range read.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use kube::Resource;

/// Where an object lives: its namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace, or `""` for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a namespaced object.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        Self::new("", name)
    }

    /// The key of `object`, from its metadata.
    pub fn of<K: Resource>(object: &K) -> Self {
        let meta = object.meta();
        Self::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// The namespace as an option (`None` for cluster-scoped objects).
    pub fn namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A shared, read-mostly map of objects. Readers get `Arc`s: an object read stays valid (and
/// unchanged) after the cache moves on. Only the informer writes.
#[derive(Debug)]
pub struct Cache<K> {
    objects: RwLock<BTreeMap<ObjectKey, Arc<K>>>,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self {
            objects: RwLock::new(BTreeMap::new()),
        }
    }
}

impl<K> Cache<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ObjectKey, Arc<K>>> {
        // A panic while holding the lock cannot leave the map half-changed (every write is one
        // insert or remove), so a poisoned lock is still a good map.
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ObjectKey, Arc<K>>> {
        self.objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// The object `name` in `namespace` (`""` for cluster-scoped kinds).
    pub fn get_named(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.get(&ObjectKey::new(namespace, name))
    }

    /// Every object in `namespace`, by name.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let start = ObjectKey::new(namespace, "");
        self.read()
            .range(start..)
            .take_while(|(key, _)| key.namespace == namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Every object.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.read().keys().cloned().collect()
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_ranges_do_not_leak_into_neighbours() {
        let cache: Cache<u32> = Cache::default();
        for (i, (ns, name)) in [("a", "x"), ("ab", "y"), ("a", "z"), ("", "c"), ("b", "x")]
            .iter()
            .enumerate()
        {
            cache
                .write()
                .insert(ObjectKey::new(*ns, *name), Arc::new(i as u32));
        }
        let values = |ns| {
            cache
                .in_namespace(ns)
                .iter()
                .map(|v| **v)
                .collect::<Vec<_>>()
        };
        assert_eq!(values("a"), vec![0, 2]);
        assert_eq!(values("ab"), vec![1]);
        assert_eq!(values(""), vec![3]);
        assert_eq!(values("zz"), Vec::<u32>::new());
        assert_eq!(cache.len(), 5);
        assert_eq!(ObjectKey::new("a", "x").to_string(), "a/x");
        assert_eq!(ObjectKey::cluster("n").to_string(), "n");
    }
}
