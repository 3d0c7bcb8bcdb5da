//! The text of a JSON-patched or merge-patched object as kube-apiserver's patch library writes it.
//!
//! kube-apiserver applies JSON and merge patches to the object's JSON text with
//! `gopkg.in/evanphx/json-patch.v4`, and when the result does not decode as the kind it quotes
//! that text in its 422 (`patch: Invalid value: "{\"apiVersion\":…}": json: cannot unmarshal
//! …`). The library reads documents lazily: a value stays the raw text it came as until an
//! operation has to look inside it, and an object it looked inside is written back as a Go map,
//! keys sorted. So the quoted text keeps the object's own field order everywhere the patch did
//! not reach and sorts the keys of every object on the patch's way (the top level always).
//! [`merge_patch_text`] and [`json_patch_text`] redo those steps over the same text to give the
//! same bytes; they serve only that message — the patch itself is applied by
//! [`crate::apply_merge_patch`] and [`crate::apply_json_patch`].

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// A value as the library holds it (`lazyNode`): raw text, or an object or list it opened.
/// `None` in a map or list is JSON `null` (Go's nil node).
enum Node {
    Raw(Box<RawValue>),
    Doc(BTreeMap<String, Option<Node>>),
    Ary(Vec<Option<Node>>),
}

type Doc = BTreeMap<String, Option<Node>>;

impl Node {
    fn raw(text: &str) -> Option<Node> {
        RawValue::from_string(text.to_owned()).ok().map(Node::Raw)
    }

    /// Opens the node as an object (`intoDoc`); `false` when it is not one.
    fn open_doc(&mut self) -> bool {
        match self {
            Node::Doc(_) => true,
            Node::Ary(_) => false,
            Node::Raw(raw) => match parse_doc(raw.get()) {
                Some(doc) => {
                    *self = Node::Doc(doc);
                    true
                }
                None => false,
            },
        }
    }

    /// Opens the node as a list (`intoAry`); `false` when it is not one.
    fn open_ary(&mut self) -> bool {
        match self {
            Node::Ary(_) => true,
            Node::Doc(_) => false,
            Node::Raw(raw) => match parse_ary(raw.get()) {
                Some(ary) => {
                    *self = Node::Ary(ary);
                    true
                }
                None => false,
            },
        }
    }

    fn doc_mut(&mut self) -> Option<&mut Doc> {
        match self {
            Node::Doc(doc) => Some(doc),
            _ => None,
        }
    }

    /// Opens the node and everything in it, as the library's `equal` does to the value a
    /// successful `test` compared.
    fn open_all(&mut self) {
        if self.open_doc() {
            if let Node::Doc(doc) = self {
                doc.values_mut().flatten().for_each(Node::open_all);
            }
        } else if self.open_ary() {
            if let Node::Ary(ary) = self {
                ary.iter_mut().flatten().for_each(Node::open_all);
            }
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Raw(raw) => compact(out, raw.get()),
            Node::Doc(doc) => {
                out.push(b'{');
                for (i, (key, value)) in doc.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    k3rs_api::wire::write_string(out, key);
                    out.push(b':');
                    write_opt(out, value.as_ref());
                }
                out.push(b'}');
            }
            Node::Ary(ary) => {
                out.push(b'[');
                for (i, value) in ary.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_opt(out, value.as_ref());
                }
                out.push(b']');
            }
        }
    }
}

fn write_opt(out: &mut Vec<u8>, node: Option<&Node>) {
    match node {
        Some(node) => node.write(out),
        None => out.extend_from_slice(b"null"),
    }
}

fn parse_doc(text: &str) -> Option<Doc> {
    let raw: BTreeMap<String, Option<Box<RawValue>>> = serde_json::from_str(text).ok()?;
    Some(
        raw.into_iter()
            .map(|(k, v)| (k, v.map(Node::Raw)))
            .collect(),
    )
}

fn parse_ary(text: &str) -> Option<Vec<Option<Node>>> {
    let raw: Vec<Option<Box<RawValue>>> = serde_json::from_str(text).ok()?;
    Some(raw.into_iter().map(|v| v.map(Node::Raw)).collect())
}

/// Raw text as Go's `json.Marshal` re-emits a `RawMessage`: compacted, with `<`, `>`, `&`,
/// U+2028 and U+2029 escaped.
fn compact(out: &mut Vec<u8>, text: &str) {
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match c {
                '<' => out.extend_from_slice(b"\\u003c"),
                '>' => out.extend_from_slice(b"\\u003e"),
                '&' => out.extend_from_slice(b"\\u0026"),
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            if c == '"' {
                in_string = true;
            }
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

fn finish(node: &Node) -> Option<String> {
    let mut out = Vec::new();
    node.write(&mut out);
    String::from_utf8(out).ok()
}

/// The text `jsonpatch.MergePatch(doc, patch)` gives for an object `doc` and an object merge
/// patch; `None` when either is not one (the patch was refused before this is needed).
pub fn merge_patch_text(doc: &str, patch: &str) -> Option<String> {
    let mut doc = parse_doc(doc)?;
    let patch = parse_doc(patch)?;
    merge_docs(&mut doc, patch);
    finish(&Node::Doc(doc))
}

/// `mergeDocs`: `null` deletes, a new key takes the patch's value without its nulls, an
/// existing one is merged.
fn merge_docs(doc: &mut Doc, patch: Doc) {
    for (key, value) in patch {
        match value {
            None => {
                doc.remove(&key);
            }
            Some(mut value) => match doc.get_mut(&key) {
                Some(Some(current)) => {
                    let cur = std::mem::replace(current, Node::Ary(Vec::new()));
                    *current = merge(cur, value);
                }
                _ => {
                    prune_nulls(&mut value);
                    doc.insert(key, Some(value));
                }
            },
        }
    }
}

/// `merge`: two objects merge (the current one opened); otherwise the patch's value wins,
/// pruned of nulls only when the current value was not an object.
fn merge(mut current: Node, mut patch: Node) -> Node {
    if !current.open_doc() {
        prune_nulls(&mut patch);
        return patch;
    }
    if !patch.open_doc() {
        return patch;
    }
    if let (Node::Doc(doc), Node::Doc(patch)) = (&mut current, patch) {
        merge_docs(doc, patch);
    }
    current
}

/// `pruneNulls`: removes `null` members of objects, at every depth (list items stay).
fn prune_nulls(node: &mut Node) {
    if node.open_doc() {
        if let Node::Doc(doc) = node {
            doc.retain(|_, v| v.is_some());
            doc.values_mut().flatten().for_each(prune_nulls);
        }
    } else if node.open_ary() {
        if let Node::Ary(ary) = node {
            ary.iter_mut().flatten().for_each(prune_nulls);
        }
    }
}

/// The text `jsonpatch.DecodePatch(patch).Apply(doc)` gives; `None` when the patch is not a
/// list of operations or an operation does not apply (it was refused before this is needed).
pub fn json_patch_text(doc: &str, patch: &str) -> Option<String> {
    let ops: Vec<BTreeMap<String, Option<Box<RawValue>>>> = serde_json::from_str(patch).ok()?;
    let mut root = Node::raw(doc)?;
    if !(root.open_ary() || root.open_doc()) {
        return None;
    }
    for op in &ops {
        let text = |name: &str| -> Option<String> {
            serde_json::from_str(op.get(name)?.as_ref()?.get()).ok()
        };
        // A missing or null `value` is a node that writes `null`.
        let value = || match op.get("value") {
            Some(Some(raw)) => Node::Raw(raw.clone()),
            _ => Node::raw("null").unwrap_or(Node::Ary(Vec::new())),
        };
        let path = text("path")?;
        match text("op")?.as_str() {
            "add" => {
                let (container, key) = find(&mut root, &path)?;
                add(container, &key, Some(value()))?;
            }
            "remove" => {
                let (container, key) = find(&mut root, &path)?;
                take(container, &key)?;
            }
            "replace" => {
                let (container, key) = find(&mut root, &path)?;
                *slot(container, &key)? = Some(value());
            }
            "move" => {
                let from = text("from")?;
                let (container, key) = find(&mut root, &from)?;
                let moved = take(container, &key)?;
                let (container, key) = find(&mut root, &path)?;
                add(container, &key, moved)?;
            }
            "copy" => {
                let from = text("from")?;
                let (container, key) = find(&mut root, &from)?;
                // `deepCopy`: the value written out and kept as raw text.
                let copied = match slot(container, &key)? {
                    Some(node) => Node::raw(&finish(node)?),
                    None => None,
                };
                let (container, key) = find(&mut root, &path)?;
                add(container, &key, copied)?;
            }
            "test" => {
                let (container, key) = find(&mut root, &path)?;
                if let Some(node) = slot(container, &key)? {
                    node.open_all();
                }
            }
            _ => return None,
        }
    }
    finish(&root)
}

/// `findObject`: the container holding the path's last segment, every container on the way
/// opened; with the last segment unescaped (`~1` → `/`, `~0` → `~`).
fn find<'n>(root: &'n mut Node, path: &str) -> Option<(&'n mut Node, String)> {
    let mut parts: Vec<String> = path.split('/').map(unescape).collect();
    if parts.len() < 2 {
        return None;
    }
    let key = parts.pop()?;
    let mut node = root;
    for part in &parts[1..] {
        let next = slot(node, part)?.as_mut()?;
        let is_array = match next {
            Node::Raw(raw) => raw.get().trim_start().starts_with('['),
            Node::Ary(_) => true,
            Node::Doc(_) => false,
        };
        let opened = if is_array {
            next.open_ary()
        } else {
            next.open_doc()
        };
        if !opened {
            return None;
        }
        node = next;
    }
    Some((node, key))
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// A list index as the library reads it: negative counts from the end.
fn index(len: usize, key: &str) -> Option<usize> {
    let idx: i64 = key.parse().ok()?;
    let len = i64::try_from(len).ok()?;
    let idx = if idx < 0 { idx + len } else { idx };
    usize::try_from(idx).ok()
}

/// The existing member or item at `key`.
fn slot<'n>(container: &'n mut Node, key: &str) -> Option<&'n mut Option<Node>> {
    match container {
        Node::Doc(doc) => doc.get_mut(key),
        Node::Ary(ary) => {
            let i = index(ary.len(), key)?;
            ary.get_mut(i)
        }
        Node::Raw(_) => None,
    }
}

fn add(container: &mut Node, key: &str, value: Option<Node>) -> Option<()> {
    match container {
        Node::Doc(_) => {
            container.doc_mut()?.insert(key.to_owned(), value);
        }
        Node::Ary(ary) if key == "-" => ary.push(value),
        Node::Ary(ary) => {
            let i = index(ary.len(), key)?;
            if i > ary.len() {
                return None;
            }
            ary.insert(i, value);
        }
        Node::Raw(_) => return None,
    }
    Some(())
}

fn take(container: &mut Node, key: &str) -> Option<Option<Node>> {
    match container {
        Node::Doc(doc) => doc.remove(key),
        Node::Ary(ary) => {
            let i = index(ary.len(), key)?;
            (i < ary.len()).then(|| ary.remove(i))
        }
        Node::Raw(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object as kube-apiserver encodes it: Go's field order, not sorted.
    const DEPLOYMENT: &str = r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d","namespace":"default"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"d"}},"template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#;

    #[test]
    fn merge_patch_sorts_only_what_it_opened() {
        let text = merge_patch_text(DEPLOYMENT, r#"{"spec":{"replicas":"x"}}"#).unwrap();
        assert_eq!(
            text,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"default"},"spec":{"replicas":"x","selector":{"matchLabels":{"app":"d"}},"template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#
        );
        // A new object loses its nulls and is sorted; an object replacing a scalar too; a
        // scalar replacing an object stays as sent; null deletes.
        let text = merge_patch_text(
            r#"{"b":{"y":1,"x":2},"a":3,"c":{"k":1}}"#,
            r#"{"n":{"z":1,"q":null, "a" : "<&>"},"a":{"w":null,"v":1},"b":"s","c":null}"#,
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"a":{"v":1},"b":"s","n":{"a":"\u003c\u0026\u003e","z":1}}"#
        );
    }

    #[test]
    fn json_patch_opens_the_containers_on_its_paths() {
        let patch = r#"[{"op":"replace","path":"/spec/selector","value":"x"}]"#;
        assert_eq!(
            json_patch_text(DEPLOYMENT, patch).unwrap(),
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"default"},"spec":{"replicas":1,"selector":"x","template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#
        );
        let patch = r#"[
            {"op":"add","path":"/spec/template/spec/containers/0/ports","value":[{"containerPort":"80","name":"http"}]},
            {"op":"add","path":"/spec/template/spec/containers/-","value":{"name":"b","image":"x"}},
            {"op":"copy","from":"/metadata/name","path":"/metadata/generateName"},
            {"op":"move","from":"/spec/replicas","path":"/spec/paused"},
            {"op":"remove","path":"/metadata/namespace"},
            {"op":"test","path":"/spec/selector","value":{"matchLabels":{"app":"d"}}}
        ]"#;
        assert_eq!(
            json_patch_text(DEPLOYMENT, patch).unwrap(),
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"generateName":"d","name":"d"},"spec":{"paused":1,"selector":{"matchLabels":{"app":"d"}},"template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"image":"nginx","name":"c","ports":[{"containerPort":"80","name":"http"}]},{"name":"b","image":"x"}]}}}}"#
        );
        // Not a list of operations, or an operation that does not apply: no text.
        assert_eq!(json_patch_text(DEPLOYMENT, r#"{"op":"add"}"#), None);
        assert_eq!(
            json_patch_text(DEPLOYMENT, r#"[{"op":"remove","path":"/nope/x"}]"#),
            None
        );
    }
}
