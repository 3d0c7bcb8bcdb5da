//! `cargo xtask go-layout`: regenerates `crates/api/src/wire/go_layout.txt` from upstream's Go types.
//!
//! kube-apiserver writes JSON with Go's `encoding/json`: struct fields in declaration order,
//! embedded structs inlined, `omitempty` scalars, slices and maps left out when zero, struct values
//! always written (a zero `ServiceStatus` is `{"loadBalancer":{}}`), map keys sorted. None of that
//! is in the OpenAPI documents (their properties are sorted, and "required" is not "no
//! omitempty"), so the layout is read from the Go sources themselves: `k8s.io/api`,
//! `k8s.io/apimachinery`, `k8s.io/apiextensions-apiserver` and `k8s.io/kube-aggregator`, checked
//! out side by side under `--source` (e.g. `git archive` of each repository at the release tag).
//! The sources are not a build input: the table is committed, and this command is how it is
//! refreshed for a new Kubernetes release.
//!
//! The parser reads only what API types use: `type X struct { … }` with one field per line,
//! `type X <other type>` (named strings, `ResourceList`), `import` aliases, and `json:"…"` tags.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::util::workspace_root;

/// Where the generated table goes, relative to the workspace root.
const LAYOUT_PATH: &str = "crates/api/src/wire/go_layout.txt";

/// The repositories read, as (directory under `--source`, Go module path).
const REPOSITORIES: &[(&str, &str)] = &[
    ("api", "k8s.io/api"),
    ("apimachinery", "k8s.io/apimachinery"),
    ("apiextensions-apiserver", "k8s.io/apiextensions-apiserver"),
    ("kube-aggregator", "k8s.io/kube-aggregator"),
];

/// Packages whose kinds are the roots of the table: every GA version of `k8s.io/api`, plus these.
const EXTRA_ROOT_PACKAGES: &[&str] = &[
    "k8s.io/api/apidiscovery/v2beta1",
    "k8s.io/apimachinery/pkg/apis/meta/v1",
    "k8s.io/apimachinery/pkg/version",
    "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1",
    "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1",
];

/// Types with their own `MarshalJSON`: written as the value they hold, with the keyword the
/// table uses for them (which says how their zero value is written).
const OPAQUE: &[(&str, &str, &str)] = &[
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Time", "time"),
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "MicroTime", "time"),
    (
        "k8s.io/apimachinery/pkg/apis/meta/v1",
        "Duration",
        "duration",
    ),
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "FieldsV1", "raw"),
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension", "raw"),
    (
        "k8s.io/apimachinery/pkg/api/resource",
        "Quantity",
        "quantity",
    ),
    (
        "k8s.io/apimachinery/pkg/util/intstr",
        "IntOrString",
        "intstr",
    ),
    (
        "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1",
        "JSON",
        "raw",
    ),
];

/// `JSONSchemaPropsOr*` marshal as a schema, a list of schemas, a bool or a list of strings:
/// the table names the schema, and the writer follows the value's shape.
const SCHEMA_OR: &[&str] = &[
    "JSONSchemaPropsOrArray",
    "JSONSchemaPropsOrBool",
    "JSONSchemaPropsOrStringArray",
];

#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// A directory holding checkouts of api, apimachinery, apiextensions-apiserver and
    /// kube-aggregator (one subdirectory each, named so).
    #[arg(long)]
    source: PathBuf,
    /// A line recorded in the table's header: which commits or release the sources are.
    #[arg(long, default_value = "")]
    note: String,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let mut universe = Universe::default();
    for (dir, module) in REPOSITORIES {
        let root = args.source.join(dir);
        if !root.is_dir() {
            bail!("{} is missing: check out {module} there", root.display());
        }
        read_tree(&root, module, &mut universe)?;
    }
    let roots = root_types(&universe);
    let text = render(&universe, &roots, &args.note)?;
    let path = workspace_root().join(LAYOUT_PATH);
    fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {LAYOUT_PATH}: {} types, {} bytes",
        text.lines().filter(|l| !l.starts_with(['\t', '#'])).count(),
        text.len()
    );
    Ok(())
}

/// Every package read: Go import path → its declarations.
#[derive(Default)]
struct Universe {
    packages: HashMap<String, Package>,
}

#[derive(Default)]
struct Package {
    /// File-local import aliases, merged per package (API packages use the same aliases in
    /// every file).
    imports: HashMap<String, String>,
    structs: BTreeMap<String, Vec<GoField>>,
    /// `type X <expr>` declarations other than structs.
    named: HashMap<String, String>,
    /// The API group (`const GroupName = "apps"` in `register.go`).
    group: Option<String>,
}

#[derive(Clone, Debug)]
struct GoField {
    /// The JSON name; empty for an inlined (embedded) struct.
    json: String,
    go_type: String,
    omitempty: bool,
    omitzero: bool,
}

fn read_tree(root: &Path, module: &str, universe: &mut Universe) -> Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "testdata" | "vendor" | "hack" | "test" | "examples") {
                    dirs.push(path);
                }
            } else if name.ends_with(".go")
                && !name.ends_with("_test.go")
                && !name.starts_with("zz_generated")
                && !name.ends_with(".pb.go")
            {
                files.push(path);
            }
        }
        if files.is_empty() {
            continue;
        }
        let relative = dir.strip_prefix(root).unwrap_or(&dir);
        let import_path = if relative.as_os_str().is_empty() {
            module.to_owned()
        } else {
            format!("{module}/{}", relative.display())
        };
        let mut package = Package::default();
        for file in files {
            let text =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            parse_file(&text, &mut package);
        }
        universe.packages.insert(import_path, package);
    }
    Ok(())
}

/// Reads imports, struct types and named types of one Go file.
fn parse_file(text: &str, package: &mut Package) {
    let text = strip_comments(text);
    let mut lines = text.lines();
    let mut in_imports = false;
    let mut in_type_group = false;
    while let Some(line) = lines.next() {
        let line = line.trim();
        if in_imports {
            if line == ")" {
                in_imports = false;
            } else {
                add_import(line, package);
            }
            continue;
        }
        if line == "import (" {
            in_imports = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("import ") {
            add_import(rest, package);
            continue;
        }
        if let Some(group) = group_name(line) {
            package.group = Some(group);
            continue;
        }
        if line == "type (" {
            in_type_group = true;
            continue;
        }
        if in_type_group && line == ")" {
            in_type_group = false;
            continue;
        }
        let declaration = match line.strip_prefix("type ") {
            Some(rest) => rest,
            None if in_type_group => line,
            None => continue,
        };
        let mut words = declaration.splitn(2, char::is_whitespace);
        let (Some(name), Some(rest)) = (words.next(), words.next()) else {
            continue;
        };
        let rest = rest.trim();
        if !name.chars().next().is_some_and(char::is_uppercase) || name.contains('[') {
            continue;
        }
        if rest == "struct {" {
            let mut fields = Vec::new();
            let mut depth = 1;
            for field_line in lines.by_ref() {
                let field_line = field_line.trim();
                depth += field_line.matches('{').count();
                depth -= field_line.matches('}').count();
                if depth == 0 {
                    break;
                }
                if depth == 1 {
                    if let Some(field) = parse_field(field_line) {
                        fields.push(field);
                    }
                }
            }
            package.structs.insert(name.to_owned(), fields);
        } else if rest == "struct{}" {
            package.structs.insert(name.to_owned(), Vec::new());
        } else if !rest.starts_with("interface") && !rest.starts_with("func") && !rest.contains('=')
        {
            package.named.insert(name.to_owned(), rest.to_owned());
        }
    }
}

/// `GroupName = "apps"`, alone or after `const`.
fn group_name(line: &str) -> Option<String> {
    let rest = line.strip_prefix("const ").unwrap_or(line);
    let value = rest
        .strip_prefix("GroupName")?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    Some(value.strip_prefix('"')?.strip_suffix('"')?.to_owned())
}

/// The text without comments: `// …` and `/* … */`, outside strings and raw strings (tags).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' | '`' => {
                out.push(c);
                let mut escaped = false;
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c && !escaped {
                        break;
                    }
                    escaped = c == '"' && inner == '\\' && !escaped;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn add_import(line: &str, package: &mut Package) {
    let line = line.trim();
    let Some(start) = line.find('"') else {
        return;
    };
    let path = line[start..].trim_matches('"').to_owned();
    let alias = line[..start].trim();
    let alias = if alias.is_empty() {
        path.rsplit('/').next().unwrap_or(&path).to_owned()
    } else {
        alias.to_owned()
    };
    package.imports.insert(alias, path);
}

/// One field line: `Name Type \`tags\``, or an embedded `Type \`tags\``.
fn parse_field(line: &str) -> Option<GoField> {
    if line.is_empty() {
        return None;
    }
    let (decl, tags) = match line.find('`') {
        Some(at) => (line[..at].trim(), line[at..].trim_matches('`')),
        None => (line, ""),
    };
    let json_tag = tag_value(tags, "json");
    let mut words = decl.split_whitespace();
    let first = words.next()?;
    let rest: Vec<&str> = words.collect();
    let (go_name, go_type) = if rest.is_empty() {
        // Embedded: the type's name is the field's name.
        let name = first.trim_start_matches('*');
        (
            name.rsplit('.').next().unwrap_or(name).to_owned(),
            first.to_owned(),
        )
    } else {
        (first.to_owned(), rest.join(" "))
    };
    let embedded = rest.is_empty();
    if !go_name.chars().next().is_some_and(char::is_uppercase) {
        return None;
    }
    let (mut json, options) = match json_tag {
        Some(tag) => {
            let mut parts = tag.split(',');
            let name = parts.next().unwrap_or("").to_owned();
            (name, parts.map(str::to_owned).collect::<Vec<_>>())
        }
        None => (String::new(), Vec::new()),
    };
    if json == "-" && options.is_empty() {
        return None;
    }
    let inline = options.iter().any(|o| o == "inline");
    if json.is_empty() && !(embedded || inline) {
        json = go_name;
    }
    if inline {
        json.clear();
    }
    Some(GoField {
        json,
        go_type,
        omitempty: options.iter().any(|o| o == "omitempty"),
        omitzero: options.iter().any(|o| o == "omitzero"),
    })
}

/// The value of `key:"…"` in a struct tag.
fn tag_value<'a>(tags: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("{key}:\"");
    let start = tags.find(&needle)? + needle.len();
    let end = tags[start..].find('"')?;
    Some(&tags[start..start + end])
}

/// The kinds of the root packages (structs that embed `TypeMeta`), and the meta types the
/// API server writes without a kind of their own.
fn root_types(universe: &Universe) -> Vec<(String, String)> {
    let mut roots = Vec::new();
    for (path, package) in &universe.packages {
        let ga = path.starts_with("k8s.io/api/")
            && path
                .rsplit('/')
                .next()
                .is_some_and(|v| v.len() > 1 && v[1..].chars().all(|c| c.is_ascii_digit()));
        if !ga && !EXTRA_ROOT_PACKAGES.contains(&path.as_str()) {
            continue;
        }
        for (name, fields) in &package.structs {
            let kind = fields
                .iter()
                .any(|f| f.json.is_empty() && f.go_type.ends_with("TypeMeta"));
            if kind || path.ends_with("/version") || name == "WatchEvent" {
                roots.push((path.clone(), name.clone()));
            }
        }
    }
    roots.sort();
    roots
}

/// A type expression of the table: `string`, `int`, `float`, `bool`, `bytes`, an opaque
/// keyword, a definition name, or `*T`, `[]T`, `map[]T` of those.
fn resolve(
    universe: &Universe,
    package: &str,
    go_type: &str,
    wanted: &mut Vec<(String, String)>,
) -> Result<String> {
    let go_type = go_type.trim();
    if let Some(inner) = go_type.strip_prefix('*') {
        return Ok(format!("*{}", resolve(universe, package, inner, wanted)?));
    }
    if go_type == "[]byte" {
        return Ok("bytes".into());
    }
    if let Some(inner) = go_type.strip_prefix("[]") {
        return Ok(format!("[]{}", resolve(universe, package, inner, wanted)?));
    }
    if let Some(rest) = go_type.strip_prefix("map[") {
        let close = rest.find(']').context("map type without ]")?;
        return Ok(format!(
            "map[]{}",
            resolve(universe, package, &rest[close + 1..], wanted)?
        ));
    }
    match go_type {
        "string" => return Ok("string".into()),
        "bool" => return Ok("bool".into()),
        "int" | "int8" | "int16" | "int32" | "int64" | "uint" | "uint8" | "uint16" | "uint32"
        | "uint64" | "byte" => return Ok("int".into()),
        "float32" | "float64" => return Ok("float".into()),
        "interface{}" | "any" => return Ok("raw".into()),
        _ => {}
    }
    let (target, name) = qualified(universe, package, go_type)?;
    if let Some((_, _, keyword)) = OPAQUE.iter().find(|(p, n, _)| *p == target && *n == name) {
        return Ok((*keyword).into());
    }
    if SCHEMA_OR.contains(&name.as_str()) {
        return Ok(definition_name(&target, "JSONSchemaProps"));
    }
    let declared = universe
        .packages
        .get(&target)
        .with_context(|| format!("{go_type}: package {target} not read"))?;
    if declared.structs.contains_key(&name) {
        wanted.push((target.clone(), name.clone()));
        return Ok(definition_name(&target, &name));
    }
    if let Some(underlying) = declared.named.get(&name) {
        return resolve(universe, &target, underlying, wanted);
    }
    bail!("{package}: type {go_type} not found")
}

/// The package and name of a type named in `package`: `metav1.Time` through the package's
/// imports, `Pod` in `package` itself.
fn qualified(universe: &Universe, package: &str, go_type: &str) -> Result<(String, String)> {
    match go_type.split_once('.') {
        Some((alias, name)) => {
            let imports = &universe
                .packages
                .get(package)
                .with_context(|| format!("package {package} not read"))?
                .imports;
            let path = imports
                .get(alias)
                .with_context(|| format!("{package}: unknown import {alias} in {go_type}"))?;
            Ok((path.clone(), name.to_owned()))
        }
        None => Ok((package.to_owned(), go_type.to_owned())),
    }
}

/// The OpenAPI definition name of a Go type: `k8s.io/api/core/v1` `Pod` →
/// `io.k8s.api.core.v1.Pod`.
fn definition_name(package: &str, name: &str) -> String {
    let path = package.strip_prefix("k8s.io/").unwrap_or(package);
    format!("io.k8s.{}.{name}", path.replace('/', "."))
}

/// Fields of a struct with embedded structs inlined, as `encoding/json` sees them.
fn flattened(universe: &Universe, package: &str, name: &str) -> Result<Vec<(String, GoField)>> {
    let fields = universe
        .packages
        .get(package)
        .and_then(|p| p.structs.get(name))
        .with_context(|| format!("struct {package}.{name} not found"))?;
    let mut out = Vec::new();
    for field in fields {
        if field.json.is_empty() {
            let embedded = field.go_type.trim_start_matches('*');
            let (target, inner) = qualified(universe, package, embedded)?;
            out.extend(flattened(universe, &target, &inner)?);
        } else {
            out.push((package.to_owned(), field.clone()));
        }
    }
    Ok(out)
}

fn render(universe: &Universe, roots: &[(String, String)], note: &str) -> Result<String> {
    let mut text = String::new();
    writeln!(text, "# Go's JSON layout of the Kubernetes API types: generated by `cargo xtask go-layout`, do not edit.")?;
    if !note.is_empty() {
        writeln!(text, "# sources: {note}")?;
    }
    writeln!(text, "# <definition name>, then one line a field in declaration order: <json name> <type> [omitempty] [omitzero]")?;
    writeln!(
        text,
        "# a kind's line also names its apiVersion and kind: <definition name> <apiVersion> <kind>"
    )?;
    let mut kinds = HashMap::new();
    for (package, name) in roots {
        let is_kind = universe.packages[package].structs[name]
            .iter()
            .any(|f| f.json.is_empty() && f.go_type.ends_with("TypeMeta"));
        let version = package.rsplit('/').next().unwrap_or("");
        if let (true, Some(group)) = (is_kind, &universe.packages[package].group) {
            let api_version = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            kinds.insert(
                definition_name(package, name),
                format!("{api_version} {name}"),
            );
        }
    }
    let mut wanted: Vec<(String, String)> = roots.to_vec();
    let mut done = BTreeSet::new();
    let mut blocks = BTreeMap::new();
    while let Some((package, name)) = wanted.pop() {
        if !done.insert((package.clone(), name.clone())) {
            continue;
        }
        let mut block = String::new();
        for (declared_in, field) in flattened(universe, &package, &name)? {
            let ty = resolve(universe, &declared_in, &field.go_type, &mut wanted)?;
            write!(block, "\t{} {ty}", field.json)?;
            if field.omitempty {
                block.push_str(" omitempty");
            }
            if field.omitzero {
                block.push_str(" omitzero");
            }
            block.push('\n');
        }
        blocks.insert(definition_name(&package, &name), block);
    }
    for (name, block) in blocks {
        match kinds.get(&name) {
            Some(gvk) => writeln!(text, "{name} {gvk}")?,
            None => writeln!(text, "{name}")?,
        }
        text.push_str(&block);
    }
    Ok(text)
}
