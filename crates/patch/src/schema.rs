//! The type knowledge strategic merge patch needs: which field of which kind is a list (of what),
//! a map (of what) or an object (of which definition), read from k8s-openapi's schemas.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use k3rs_api::patch_strategy::{FieldStrategy, PATCH_STRATEGIES};

/// Where the generator puts definitions, and so how every `$ref` starts.
const REF_PREFIX: &str = "#/definitions/";

/// Definitions (name → schema, `$ref`s as `#/definitions/<name>`) and the patch strategies of
/// their properties.
#[derive(Debug)]
pub(crate) struct Catalog {
    definitions: &'static Map<String, Value>,
    /// Definition name → the tagged properties of that definition.
    strategies: HashMap<&'static str, Vec<&'static FieldStrategy>>,
}

impl Catalog {
    pub(crate) fn new(
        definitions: &'static Map<String, Value>,
        strategies: &'static [FieldStrategy],
    ) -> Catalog {
        let mut by_definition: HashMap<&'static str, Vec<&'static FieldStrategy>> = HashMap::new();
        for row in strategies {
            by_definition.entry(row.definition).or_default().push(row);
        }
        Catalog {
            definitions,
            strategies: by_definition,
        }
    }

    /// The definitions of every built-in kind and every type they use, generated once.
    fn builtin() -> &'static Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        // Structured merge (server-side apply) reads the list and map markers from the
        // schemas themselves, as it does from a CRD's: the shared definitions carry them.
        BUILTIN.get_or_init(|| {
            Catalog::new(k3rs_api::openapi::builtin_definitions(), PATCH_STRATEGIES)
        })
    }

    pub(crate) fn schema(&'static self, name: &str) -> Option<PatchSchema> {
        let (name, schema) = self.definitions.get_key_value(name)?;
        Some(PatchSchema {
            catalog: self,
            definition: Some(name.as_str()),
            schema: Some(schema),
        })
    }

    fn strategy(&self, definition: &str, property: &str) -> Option<&'static FieldStrategy> {
        self.strategies
            .get(definition)?
            .iter()
            .find(|row| row.property == property)
            .copied()
    }
}

pub(crate) use k3rs_api::openapi::reference_of;

/// The definition a `$ref` of the built-in schemas names (`None`: it points elsewhere).
pub(crate) fn definition_name(reference: &str) -> Option<String> {
    let name = reference.strip_prefix(REF_PREFIX)?;
    Some(name.replace("~1", "/").replace("~0", "~"))
}

/// The definitions of every built-in kind and the types they use, annotated with upstream's
/// `x-kubernetes-*` list and map markers.
pub(crate) fn builtin_definitions() -> &'static Map<String, Value> {
    Catalog::builtin().definitions
}

/// A position in the schema of a built-in kind: the schema of one value, and the definition it
/// belongs to (which is what the patch strategy table is keyed by).
///
/// A position can be *unknown* (a field the schema does not describe, or a free-form value such
/// as `RawExtension`): there strategic merge patch falls back to JSON merge patch rules (maps
/// merge, lists are replaced). Upstream rejects some of these cases instead; k3rs leaves unknown
/// fields to field validation and pruning, which see the patched object afterwards.
#[derive(Clone, Copy)]
pub struct PatchSchema {
    catalog: &'static Catalog,
    definition: Option<&'static str>,
    schema: Option<&'static Value>,
}

impl std::fmt::Debug for PatchSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchSchema")
            .field("definition", &self.definition)
            .field("known", &self.schema.is_some())
            .finish()
    }
}

impl PatchSchema {
    /// The schema of the OpenAPI definition `name` (e.g. `io.k8s.api.apps.v1.Deployment`), if a
    /// built-in kind uses it.
    pub fn for_definition(name: &str) -> Option<PatchSchema> {
        Catalog::builtin().schema(name)
    }

    /// The names of every definition built-in kinds use.
    pub fn definition_names() -> impl Iterator<Item = &'static str> {
        Catalog::builtin().definitions.keys().map(String::as_str)
    }

    /// The definition this position is the schema of, if it is one.
    pub fn definition(&self) -> Option<&'static str> {
        self.resolve().definition
    }

    /// Whether the definition has the property `name`.
    pub fn has_property(&self, name: &str) -> bool {
        self.resolve()
            .schema
            .and_then(|schema| schema.get("properties"))
            .and_then(|properties| properties.get(name))
            .is_some()
    }

    /// The JSON Schema `type` of the value at this position (`object`, `array`, `string`, ...).
    #[cfg(test)]
    pub(crate) fn type_name(self) -> Option<&'static str> {
        self.resolve()
            .schema
            .and_then(|schema| schema.get("type"))
            .and_then(Value::as_str)
    }

    /// A position the schema does not describe.
    fn unknown(self) -> PatchSchema {
        PatchSchema {
            catalog: self.catalog,
            definition: None,
            schema: None,
        }
    }

    /// The position of `schema`, a schema inside this position's catalog.
    fn at(self, schema: &'static Value) -> PatchSchema {
        PatchSchema {
            catalog: self.catalog,
            definition: None,
            schema: Some(schema),
        }
    }

    /// Follows `$ref`s (also a lone `$ref` wrapped in `allOf`) to the schema that describes the
    /// value.
    fn resolve(self) -> PatchSchema {
        let mut here = self;
        // References between definitions are never chained deeply; the bound keeps a malformed
        // cycle from looping.
        for _ in 0..8 {
            let Some(schema) = here.schema else {
                return here;
            };
            let Some(reference) = reference_of(schema) else {
                return here;
            };
            let Some(name) = definition_name(reference) else {
                return self.unknown();
            };
            match self.catalog.schema(&name) {
                Some(definition) => here = definition,
                None => return self.unknown(),
            }
        }
        here
    }

    /// The schema of the value under `key` of an object at this position, and the field's patch
    /// strategy if upstream tags one.
    pub(crate) fn field(self, key: &str) -> (PatchSchema, Option<&'static FieldStrategy>) {
        let here = self.resolve();
        let Some(schema) = here.schema else {
            return (self.unknown(), None);
        };
        if let Some(property) = schema.get("properties").and_then(|p| p.get(key)) {
            let strategy = here
                .definition
                .and_then(|definition| self.catalog.strategy(definition, key));
            return (self.at(property), strategy);
        }
        match schema.get("additionalProperties") {
            Some(values @ Value::Object(_)) => (self.at(values), None),
            _ => (self.unknown(), None),
        }
    }

    /// The schema of the elements of a list at this position.
    pub(crate) fn items(self) -> PatchSchema {
        let here = self.resolve();
        match here.schema.and_then(|schema| schema.get("items")) {
            Some(items @ Value::Object(_)) => self.at(items),
            _ => self.unknown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_kind_has_a_schema() {
        for resource in k3rs_api::builtin_resources() {
            let name = (resource.schema_name)();
            let schema = PatchSchema::for_definition(&name);
            assert!(schema.is_some(), "no schema for {name}");
        }
    }

    #[test]
    fn navigates_refs_items_and_maps() {
        let deployment = PatchSchema::for_definition("io.k8s.api.apps.v1.Deployment").unwrap();
        let (spec, _) = deployment.field("spec");
        let (template, _) = spec.field("template");
        let (pod_spec, _) = template.field("spec");
        assert_eq!(pod_spec.definition(), Some("io.k8s.api.core.v1.PodSpec"));
        let (containers, strategy) = pod_spec.field("containers");
        assert_eq!(strategy.map(|s| s.merge_key), Some("name"));
        let container = containers.items();
        assert_eq!(container.definition(), Some("io.k8s.api.core.v1.Container"));
        let (resources, _) = container.field("resources");
        let (limits, _) = resources.field("limits");
        let (cpu, _) = limits.field("cpu");
        assert_eq!(
            cpu.definition(),
            Some("io.k8s.apimachinery.pkg.api.resource.Quantity")
        );
        let (metadata, _) = deployment.field("metadata");
        let (_, finalizers) = metadata.field("finalizers");
        assert_eq!(finalizers.map(|s| s.strategy), Some("merge"));
        let (unknown, strategy) = deployment.field("nonsense");
        assert!(unknown.definition().is_none() && strategy.is_none());
    }

    /// A typo in the table would silently turn a merged list into a replaced one: every row must
    /// name a real property of the right shape.
    #[test]
    fn every_row_names_a_property_of_the_right_shape() {
        let mut problems = Vec::new();
        for row in PATCH_STRATEGIES {
            let name = format!("{}.{}", row.definition, row.property);
            let Some(schema) = PatchSchema::for_definition(row.definition) else {
                problems.push(format!("{name}: no such definition"));
                continue;
            };
            if !schema.has_property(row.property) {
                problems.push(format!("{name}: no such property"));
                continue;
            }
            let (field, strategy) = schema.field(row.property);
            if strategy != Some(row) {
                problems.push(format!("{name}: lookup does not find the row"));
            }
            let shape = field.type_name();
            let items = field.items();
            match (row.merges(), row.merge_key) {
                (true, "") => {
                    if shape != Some("array") || items.type_name() == Some("object") {
                        problems.push(format!("{name}: merge without key wants a scalar list"));
                    }
                }
                (true, key) => {
                    if shape != Some("array") || !items.has_property(key) {
                        problems.push(format!("{name}: elements lack merge key {key}"));
                    }
                }
                (false, _) => {
                    if shape != Some("object") || !row.merge_key.is_empty() {
                        problems.push(format!("{name}: {} wants an object", row.strategy));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
