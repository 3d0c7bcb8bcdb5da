//! The v2 document as protobuf: gnostic's `openapi.v2.Document`, the form kubectl asks for.
//!
//! kube-apiserver turns its JSON document into protobuf with gnostic's `ParseDocument` and
//! `proto.Marshal` (kube-openapi `pkg/handler`), and kubectl reads it back with kube-openapi's
//! `pkg/util/proto`. This module does the same walk over the JSON value without a generated
//! message set: each message of `openapiv2/OpenAPIv2.proto` (google/gnostic-models) is a table
//! of JSON key → field number and type, and the encoder writes the wire format directly.
//!
//! What gnostic does, and so what this does:
//! - fields come out in field-number order; proto3 leaves out empty strings, `false` and zero
//!   numbers, except inside a `oneof` (so `additionalProperties: false` is still sent);
//! - `x-` keys become `vendor_extension` entries (`NamedAny`) whose `Any.yaml` is the value as
//!   block YAML (`yaml.rs`) — kubectl finds `x-kubernetes-group-version-kind` by parsing that
//!   text with a YAML 1.1 parser;
//! - `default`, `example` and `enum` values are `Any` the same way;
//! - maps (`definitions`, `properties`, `paths`, `responses`, …) become repeated `Named*`
//!   messages in document order;
//! - `oneof`s are chosen the way gnostic's parser accepts them: a `$ref` object is a
//!   `JsonReference`, a parameter `in: body` a `BodyParameter` and any other `in` its
//!   `NonBodyParameter` sub-schema, a response schema `type: file` a `FileSchema`, a security
//!   definition by its `type` (and `flow`).
//!
//! Where gnostic would refuse the whole document (a key the message has no field for, a value
//! of the wrong JSON type), this leaves the value out and reports its JSON pointer in
//! [`EncodedDocument::dropped`], so a server still serves the rest and can log what it lost.

use serde_json::{Map, Value};

mod yaml;

/// The protobuf form of a v2 document.
#[derive(Debug)]
pub struct EncodedDocument {
    /// The encoded `openapi.v2.Document`.
    pub bytes: Vec<u8>,
    /// JSON pointers of the values that have no place in `openapi.v2.Document` and were left
    /// out (gnostic would have refused the document). Empty for the documents k3rs generates.
    pub dropped: Vec<String>,
}

/// Encodes a Swagger 2.0 document as gnostic's `openapi.v2.Document`.
pub fn openapi_v2_protobuf(document: &Value) -> EncodedDocument {
    let mut encoder = Encoder {
        path: Vec::new(),
        dropped: Vec::new(),
    };
    let mut bytes = Vec::new();
    encoder.message(Message::Document, document, &mut bytes);
    bytes.shrink_to_fit();
    EncodedDocument {
        bytes,
        dropped: encoder.dropped,
    }
}

/// How a JSON value becomes one protobuf field value.
#[derive(Clone, Copy, Debug)]
enum Ty {
    String,
    Bool,
    Double,
    Int64,
    /// `Any` with the value as YAML text in `yaml` (field 2).
    Any,
    Message(Message),
}

/// One field of a message: its JSON key, its number, its type, and whether the JSON value is
/// an array of such values (`repeated`).
#[derive(Clone, Copy, Debug)]
struct Field {
    key: &'static str,
    number: u32,
    ty: Ty,
    repeated: bool,
}

const fn one(key: &'static str, number: u32, ty: Ty) -> Field {
    Field {
        key,
        number,
        ty,
        repeated: false,
    }
}

const fn many(key: &'static str, number: u32, ty: Ty) -> Field {
    Field {
        key,
        number,
        ty,
        repeated: true,
    }
}

/// The messages of `OpenAPIv2.proto` that a document can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    Document,
    Info,
    Contact,
    License,
    ExternalDocs,
    Tag,
    Paths,
    PathItem,
    Operation,
    ParametersItem,
    JsonReference,
    Parameter,
    BodyParameter,
    NonBodyParameter,
    HeaderParameterSubSchema,
    FormDataParameterSubSchema,
    QueryParameterSubSchema,
    PathParameterSubSchema,
    PrimitivesItems,
    Header,
    Responses,
    ResponseValue,
    Response,
    SchemaItem,
    FileSchema,
    Schema,
    AdditionalPropertiesItem,
    TypeItem,
    ItemsItem,
    Xml,
    SecurityDefinitionsItem,
    BasicAuthenticationSecurity,
    ApiKeySecurity,
    Oauth2ImplicitSecurity,
    Oauth2PasswordSecurity,
    Oauth2ApplicationSecurity,
    Oauth2AccessCodeSecurity,
    StringArray,
    // Maps: every entry is a `Named*` message in field 1.
    Definitions,
    Properties,
    ParameterDefinitions,
    ResponseDefinitions,
    SecurityDefinitions,
    SecurityRequirement,
    Headers,
    Examples,
    Oauth2Scopes,
}

/// How a message reads its JSON object.
enum Layout {
    /// Known keys by table (in field-number order); `x-` keys become `NamedAny` entries of
    /// the `extensions` field.
    Fields {
        /// Tables in field-number order, each with the number to add to its fields'.
        parts: &'static [(&'static [Field], u32)],
        extensions: Option<u32>,
    },
    /// Every entry is a `Named*` message (name = 1, value = 2 of the given type) in field 1.
    Map(Ty),
    /// A `oneof` or a message whose JSON form is not an object; see [`Encoder::special`].
    Special,
}

use Message as M;
use Ty::{Any, Bool, Double, Int64, String as Str};

const DOCUMENT: &[Field] = &[
    one("swagger", 1, Str),
    one("info", 2, Ty::Message(M::Info)),
    one("host", 3, Str),
    one("basePath", 4, Str),
    many("schemes", 5, Str),
    many("consumes", 6, Str),
    many("produces", 7, Str),
    one("paths", 8, Ty::Message(M::Paths)),
    one("definitions", 9, Ty::Message(M::Definitions)),
    one("parameters", 10, Ty::Message(M::ParameterDefinitions)),
    one("responses", 11, Ty::Message(M::ResponseDefinitions)),
    many("security", 12, Ty::Message(M::SecurityRequirement)),
    one(
        "securityDefinitions",
        13,
        Ty::Message(M::SecurityDefinitions),
    ),
    many("tags", 14, Ty::Message(M::Tag)),
    one("externalDocs", 15, Ty::Message(M::ExternalDocs)),
];

const INFO: &[Field] = &[
    one("title", 1, Str),
    one("version", 2, Str),
    one("description", 3, Str),
    one("termsOfService", 4, Str),
    one("contact", 5, Ty::Message(M::Contact)),
    one("license", 6, Ty::Message(M::License)),
];

const CONTACT: &[Field] = &[
    one("name", 1, Str),
    one("url", 2, Str),
    one("email", 3, Str),
];

const LICENSE: &[Field] = &[one("name", 1, Str), one("url", 2, Str)];

const EXTERNAL_DOCS: &[Field] = &[one("description", 1, Str), one("url", 2, Str)];

const TAG: &[Field] = &[
    one("name", 1, Str),
    one("description", 2, Str),
    one("externalDocs", 3, Ty::Message(M::ExternalDocs)),
];

const PATH_ITEM: &[Field] = &[
    one("$ref", 1, Str),
    one("get", 2, Ty::Message(M::Operation)),
    one("put", 3, Ty::Message(M::Operation)),
    one("post", 4, Ty::Message(M::Operation)),
    one("delete", 5, Ty::Message(M::Operation)),
    one("options", 6, Ty::Message(M::Operation)),
    one("head", 7, Ty::Message(M::Operation)),
    one("patch", 8, Ty::Message(M::Operation)),
    many("parameters", 9, Ty::Message(M::ParametersItem)),
];

const OPERATION: &[Field] = &[
    many("tags", 1, Str),
    one("summary", 2, Str),
    one("description", 3, Str),
    one("externalDocs", 4, Ty::Message(M::ExternalDocs)),
    one("operationId", 5, Str),
    many("produces", 6, Str),
    many("consumes", 7, Str),
    many("parameters", 8, Ty::Message(M::ParametersItem)),
    one("responses", 9, Ty::Message(M::Responses)),
    many("schemes", 10, Str),
    one("deprecated", 11, Bool),
    many("security", 12, Ty::Message(M::SecurityRequirement)),
];

const JSON_REFERENCE: &[Field] = &[one("$ref", 1, Str), one("description", 2, Str)];

const BODY_PARAMETER: &[Field] = &[
    one("description", 1, Str),
    one("name", 2, Str),
    one("in", 3, Str),
    one("required", 4, Bool),
    one("schema", 5, Ty::Message(M::Schema)),
];

/// What every non-body parameter starts with.
const PARAMETER_HEAD: &[Field] = &[
    one("required", 1, Bool),
    one("in", 2, Str),
    one("description", 3, Str),
    one("name", 4, Str),
];

/// The form-data and query parameters' field after [`PARAMETER_HEAD`].
const ALLOW_EMPTY_VALUE: &[Field] = &[one("allowEmptyValue", 5, Bool)];

/// The keywords of a primitive value, numbered as in `PrimitivesItems` and `Header`; the
/// parameter sub-schemas carry them after their own fields, the same order shifted by 4 (header,
/// path) or 5 (form data, query).
const PRIMITIVES: &[Field] = &[
    one("type", 1, Str),
    one("format", 2, Str),
    one("items", 3, Ty::Message(M::PrimitivesItems)),
    one("collectionFormat", 4, Str),
    one("default", 5, Any),
    one("maximum", 6, Double),
    one("exclusiveMaximum", 7, Bool),
    one("minimum", 8, Double),
    one("exclusiveMinimum", 9, Bool),
    one("maxLength", 10, Int64),
    one("minLength", 11, Int64),
    one("pattern", 12, Str),
    one("maxItems", 13, Int64),
    one("minItems", 14, Int64),
    one("uniqueItems", 15, Bool),
    many("enum", 16, Any),
    one("multipleOf", 17, Double),
];

/// `Header`'s field after [`PRIMITIVES`].
const HEADER_DESCRIPTION: &[Field] = &[one("description", 18, Str)];

const RESPONSE: &[Field] = &[
    one("description", 1, Str),
    one("schema", 2, Ty::Message(M::SchemaItem)),
    one("headers", 3, Ty::Message(M::Headers)),
    one("examples", 4, Ty::Message(M::Examples)),
];

const FILE_SCHEMA: &[Field] = &[
    one("format", 1, Str),
    one("title", 2, Str),
    one("description", 3, Str),
    one("default", 4, Any),
    many("required", 5, Str),
    one("type", 6, Str),
    one("readOnly", 7, Bool),
    one("externalDocs", 8, Ty::Message(M::ExternalDocs)),
    one("example", 9, Any),
];

const SCHEMA: &[Field] = &[
    one("$ref", 1, Str),
    one("format", 2, Str),
    one("title", 3, Str),
    one("description", 4, Str),
    one("default", 5, Any),
    one("multipleOf", 6, Double),
    one("maximum", 7, Double),
    one("exclusiveMaximum", 8, Bool),
    one("minimum", 9, Double),
    one("exclusiveMinimum", 10, Bool),
    one("maxLength", 11, Int64),
    one("minLength", 12, Int64),
    one("pattern", 13, Str),
    one("maxItems", 14, Int64),
    one("minItems", 15, Int64),
    one("uniqueItems", 16, Bool),
    one("maxProperties", 17, Int64),
    one("minProperties", 18, Int64),
    many("required", 19, Str),
    many("enum", 20, Any),
    one(
        "additionalProperties",
        21,
        Ty::Message(M::AdditionalPropertiesItem),
    ),
    one("type", 22, Ty::Message(M::TypeItem)),
    one("items", 23, Ty::Message(M::ItemsItem)),
    many("allOf", 24, Ty::Message(M::Schema)),
    one("properties", 25, Ty::Message(M::Properties)),
    one("discriminator", 26, Str),
    one("readOnly", 27, Bool),
    one("xml", 28, Ty::Message(M::Xml)),
    one("externalDocs", 29, Ty::Message(M::ExternalDocs)),
    one("example", 30, Any),
];

const XML: &[Field] = &[
    one("name", 1, Str),
    one("namespace", 2, Str),
    one("prefix", 3, Str),
    one("attribute", 4, Bool),
    one("wrapped", 5, Bool),
];

const BASIC_AUTHENTICATION: &[Field] = &[one("type", 1, Str), one("description", 2, Str)];

const API_KEY: &[Field] = &[
    one("type", 1, Str),
    one("name", 2, Str),
    one("in", 3, Str),
    one("description", 4, Str),
];

/// `Oauth2ImplicitSecurity` (no token URL).
const OAUTH2_IMPLICIT: &[Field] = &[
    one("type", 1, Str),
    one("flow", 2, Str),
    one("scopes", 3, Ty::Message(M::Oauth2Scopes)),
    one("authorizationUrl", 4, Str),
    one("description", 5, Str),
];

/// `Oauth2PasswordSecurity` and `Oauth2ApplicationSecurity` (no authorization URL).
const OAUTH2_TOKEN_ONLY: &[Field] = &[
    one("type", 1, Str),
    one("flow", 2, Str),
    one("scopes", 3, Ty::Message(M::Oauth2Scopes)),
    one("tokenUrl", 4, Str),
    one("description", 5, Str),
];

const OAUTH2_ACCESS_CODE: &[Field] = &[
    one("type", 1, Str),
    one("flow", 2, Str),
    one("scopes", 3, Ty::Message(M::Oauth2Scopes)),
    one("authorizationUrl", 4, Str),
    one("tokenUrl", 5, Str),
    one("description", 6, Str),
];

impl Message {
    fn layout(self) -> Layout {
        let fields = |parts, extensions| Layout::Fields {
            parts,
            extensions: Some(extensions),
        };
        match self {
            M::Document => fields(&[(DOCUMENT, 0)], 16),
            M::Info => fields(&[(INFO, 0)], 7),
            M::Contact => fields(&[(CONTACT, 0)], 4),
            M::License => fields(&[(LICENSE, 0)], 3),
            M::ExternalDocs => fields(&[(EXTERNAL_DOCS, 0)], 3),
            M::Tag => fields(&[(TAG, 0)], 4),
            M::PathItem => fields(&[(PATH_ITEM, 0)], 10),
            M::Operation => fields(&[(OPERATION, 0)], 13),
            M::JsonReference => Layout::Fields {
                parts: &[(JSON_REFERENCE, 0)],
                extensions: None,
            },
            M::BodyParameter => fields(&[(BODY_PARAMETER, 0)], 6),
            M::HeaderParameterSubSchema | M::PathParameterSubSchema => {
                fields(&[(PARAMETER_HEAD, 0), (PRIMITIVES, 4)], 22)
            }
            M::FormDataParameterSubSchema | M::QueryParameterSubSchema => fields(
                &[(PARAMETER_HEAD, 0), (ALLOW_EMPTY_VALUE, 0), (PRIMITIVES, 5)],
                23,
            ),
            M::PrimitivesItems => fields(&[(PRIMITIVES, 0)], 18),
            M::Header => fields(&[(PRIMITIVES, 0), (HEADER_DESCRIPTION, 0)], 19),
            M::Response => fields(&[(RESPONSE, 0)], 5),
            M::FileSchema => fields(&[(FILE_SCHEMA, 0)], 10),
            M::Schema => fields(&[(SCHEMA, 0)], 31),
            M::Xml => fields(&[(XML, 0)], 6),
            M::BasicAuthenticationSecurity => fields(&[(BASIC_AUTHENTICATION, 0)], 3),
            M::ApiKeySecurity => fields(&[(API_KEY, 0)], 5),
            M::Oauth2ImplicitSecurity => fields(&[(OAUTH2_IMPLICIT, 0)], 6),
            M::Oauth2PasswordSecurity | M::Oauth2ApplicationSecurity => {
                fields(&[(OAUTH2_TOKEN_ONLY, 0)], 6)
            }
            M::Oauth2AccessCodeSecurity => fields(&[(OAUTH2_ACCESS_CODE, 0)], 7),
            M::Definitions | M::Properties => Layout::Map(Ty::Message(M::Schema)),
            M::ParameterDefinitions => Layout::Map(Ty::Message(M::Parameter)),
            M::ResponseDefinitions => Layout::Map(Ty::Message(M::Response)),
            M::SecurityDefinitions => Layout::Map(Ty::Message(M::SecurityDefinitionsItem)),
            M::SecurityRequirement => Layout::Map(Ty::Message(M::StringArray)),
            M::Headers => Layout::Map(Ty::Message(M::Header)),
            M::Examples => Layout::Map(Any),
            M::Oauth2Scopes => Layout::Map(Str),
            M::Paths
            | M::ParametersItem
            | M::Parameter
            | M::NonBodyParameter
            | M::Responses
            | M::ResponseValue
            | M::SchemaItem
            | M::AdditionalPropertiesItem
            | M::TypeItem
            | M::ItemsItem
            | M::SecurityDefinitionsItem
            | M::StringArray => Layout::Special,
        }
    }
}

/// A step of the JSON pointer to the value being encoded.
#[derive(Clone, Copy, Debug)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

struct Encoder<'a> {
    path: Vec<Step<'a>>,
    dropped: Vec<String>,
}

impl<'a> Encoder<'a> {
    /// Records that the value at the current path (plus `key`, if given) was left out.
    fn drop_value(&mut self, key: Option<&str>) {
        let mut pointer = String::new();
        let steps = self.path.iter().map(|step| match step {
            Step::Key(key) => escape_pointer(key),
            Step::Index(index) => index.to_string(),
        });
        for step in steps.chain(key.map(escape_pointer)) {
            pointer.push('/');
            pointer.push_str(&step);
        }
        self.dropped.push(pointer);
    }

    /// Writes the fields of message `message` read from `value` (without a tag or length).
    fn message(&mut self, message: Message, value: &'a Value, out: &mut Vec<u8>) {
        match message.layout() {
            Layout::Fields { parts, extensions } => {
                let Some(object) = value.as_object() else {
                    self.drop_value(None);
                    return;
                };
                self.fields(parts, extensions, object, out);
            }
            Layout::Map(ty) => {
                let Some(object) = value.as_object() else {
                    self.drop_value(None);
                    return;
                };
                for (name, value) in object {
                    self.named(1, name, ty, value, out);
                }
            }
            Layout::Special => self.special(message, value, out),
        }
    }

    fn fields(
        &mut self,
        parts: &'static [(&'static [Field], u32)],
        extensions: Option<u32>,
        object: &'a Map<String, Value>,
        out: &mut Vec<u8>,
    ) {
        for (fields, shift) in parts {
            for field in *fields {
                let Some(value) = object.get(field.key) else {
                    continue;
                };
                let number = field.number + shift;
                self.path.push(Step::Key(field.key));
                if field.repeated {
                    if let Some(items) = value.as_array() {
                        for (index, item) in items.iter().enumerate() {
                            self.path.push(Step::Index(index));
                            self.field(number, field.ty, item, true, out);
                            self.path.pop();
                        }
                    } else {
                        self.drop_value(None);
                    }
                } else {
                    self.field(number, field.ty, value, false, out);
                }
                self.path.pop();
            }
        }
        let known = |key: &str| {
            parts
                .iter()
                .any(|(fields, _)| fields.iter().any(|f| f.key == key))
        };
        for (key, value) in object {
            if key.starts_with("x-") {
                match extensions {
                    Some(number) => self.named(number, key, Any, value, out),
                    None => self.drop_value(Some(key)),
                }
            } else if !known(key) {
                self.drop_value(Some(key));
            }
        }
    }

    /// Writes a `Named*` message (`name` = 1, `value` = 2) as field `number`.
    fn named(&mut self, number: u32, name: &'a str, ty: Ty, value: &'a Value, out: &mut Vec<u8>) {
        self.path.push(Step::Key(name));
        let mut entry = Vec::new();
        write_string(&mut entry, 1, name);
        // A map value is always written, even when empty (a message field, or an element).
        self.field(2, ty, value, true, &mut entry);
        write_bytes(out, number, &entry);
        self.path.pop();
    }

    /// Writes one field value. `present` writes zero values too: repeated elements and
    /// `oneof` members are sent even when empty, proto3 singular scalars are not.
    fn field(&mut self, number: u32, ty: Ty, value: &'a Value, present: bool, out: &mut Vec<u8>) {
        match ty {
            Ty::String => match value {
                Value::String(text) => {
                    if present || !text.is_empty() {
                        write_string(out, number, text);
                    }
                }
                // gnostic takes an integer's text for a string field, and null as "".
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    write_string(out, number, &n.to_string());
                }
                Value::Null => {
                    if present {
                        write_string(out, number, "");
                    }
                }
                _ => self.drop_value(None),
            },
            Ty::Bool => match value {
                Value::Bool(flag) => {
                    if present || *flag {
                        write_key(out, number, WIRE_VARINT);
                        write_varint(out, u64::from(*flag));
                    }
                }
                _ => self.drop_value(None),
            },
            Ty::Double => match value.as_f64() {
                Some(number_value) => {
                    if present || number_value.to_bits() != 0 {
                        write_key(out, number, WIRE_FIXED64);
                        out.extend_from_slice(&number_value.to_le_bytes());
                    }
                }
                None => self.drop_value(None),
            },
            // gnostic reads only integers (`5`, not `5.0`) into int64 fields.
            Ty::Int64 => match value.as_i64() {
                Some(integer) => {
                    if present || integer != 0 {
                        write_key(out, number, WIRE_VARINT);
                        // Negative int64 values are their two's complement, as protobuf says.
                        write_varint(out, integer as u64);
                    }
                }
                None => self.drop_value(None),
            },
            Ty::Any => {
                let mut any = Vec::new();
                write_string(&mut any, 2, &yaml::to_yaml(value));
                write_bytes(out, number, &any);
            }
            Ty::Message(message) => {
                let mut inner = Vec::new();
                self.message(message, value, &mut inner);
                write_bytes(out, number, &inner);
            }
        }
    }

    /// The messages that are `oneof`s or whose JSON form is not an object with fixed keys.
    fn special(&mut self, message: Message, value: &'a Value, out: &mut Vec<u8>) {
        let object = value.as_object();
        let text = |key: &str| object.and_then(|o| o.get(key)).and_then(Value::as_str);
        let is_reference = object.is_some_and(|o| o.contains_key("$ref"));
        let choice = match message {
            M::Paths => {
                let Some(object) = object else {
                    self.drop_value(None);
                    return;
                };
                // Field order: every `vendor_extension` (1) before every `path` (2).
                for (key, value) in object {
                    if key.starts_with("x-") {
                        self.named(1, key, Any, value, out);
                    } else if !key.starts_with('/') {
                        self.drop_value(Some(key));
                    }
                }
                for (key, value) in object {
                    if key.starts_with('/') {
                        self.named(2, key, Ty::Message(M::PathItem), value, out);
                    }
                }
                return;
            }
            M::Responses => {
                let Some(object) = object else {
                    self.drop_value(None);
                    return;
                };
                // Field order: every `response_code` (1) before every `vendor_extension` (2).
                for (key, value) in object {
                    if is_response_code(key) {
                        self.named(1, key, Ty::Message(M::ResponseValue), value, out);
                    } else if !key.starts_with("x-") {
                        self.drop_value(Some(key));
                    }
                }
                for (key, value) in object {
                    if key.starts_with("x-") {
                        self.named(2, key, Any, value, out);
                    }
                }
                return;
            }
            M::TypeItem | M::StringArray => {
                match value {
                    Value::String(single) if message == M::TypeItem => {
                        write_string(out, 1, single);
                    }
                    Value::Array(items) => {
                        for (index, item) in items.iter().enumerate() {
                            self.path.push(Step::Index(index));
                            self.field(1, Str, item, true, out);
                            self.path.pop();
                        }
                    }
                    _ => self.drop_value(None),
                }
                return;
            }
            M::ItemsItem => {
                match value {
                    Value::Object(_) => self.field(1, Ty::Message(M::Schema), value, true, out),
                    // gnostic refuses tuple `items`; each schema is still a `Schema`.
                    Value::Array(items) => {
                        for (index, item) in items.iter().enumerate() {
                            self.path.push(Step::Index(index));
                            self.field(1, Ty::Message(M::Schema), item, true, out);
                            self.path.pop();
                        }
                    }
                    _ => self.drop_value(None),
                }
                return;
            }
            M::AdditionalPropertiesItem => match value {
                Value::Object(_) => (1, M::Schema),
                Value::Bool(allowed) => {
                    write_key(out, 2, WIRE_VARINT);
                    write_varint(out, u64::from(*allowed));
                    return;
                }
                _ => {
                    self.drop_value(None);
                    return;
                }
            },
            M::ParametersItem if is_reference => (2, M::JsonReference),
            M::ParametersItem => (1, M::Parameter),
            M::ResponseValue if is_reference => (2, M::JsonReference),
            M::ResponseValue => (1, M::Response),
            M::Parameter if text("in") == Some("body") => (1, M::BodyParameter),
            M::Parameter => (2, M::NonBodyParameter),
            M::NonBodyParameter => match text("in") {
                Some("header") => (1, M::HeaderParameterSubSchema),
                Some("formData") => (2, M::FormDataParameterSubSchema),
                Some("query") => (3, M::QueryParameterSubSchema),
                Some("path") => (4, M::PathParameterSubSchema),
                _ => {
                    self.drop_value(None);
                    return;
                }
            },
            M::SchemaItem if text("type") == Some("file") => (2, M::FileSchema),
            M::SchemaItem => (1, M::Schema),
            M::SecurityDefinitionsItem => match (text("type"), text("flow")) {
                (Some("basic"), _) => (1, M::BasicAuthenticationSecurity),
                (Some("apiKey"), _) => (2, M::ApiKeySecurity),
                (Some("oauth2"), Some("implicit")) => (3, M::Oauth2ImplicitSecurity),
                (Some("oauth2"), Some("password")) => (4, M::Oauth2PasswordSecurity),
                (Some("oauth2"), Some("application")) => (5, M::Oauth2ApplicationSecurity),
                (Some("oauth2"), Some("accessCode")) => (6, M::Oauth2AccessCodeSecurity),
                _ => {
                    self.drop_value(None);
                    return;
                }
            },
            _ => {
                self.drop_value(None);
                return;
            }
        };
        let (number, inner) = choice;
        self.field(number, Ty::Message(inner), value, true, out);
    }
}

/// `^([0-9]{3})$|^(default)$`, gnostic's pattern for a response's key.
fn is_response_code(key: &str) -> bool {
    key == "default" || (key.len() == 3 && key.bytes().all(|b| b.is_ascii_digit()))
}

/// A JSON pointer step: `~` and `/` escaped (RFC 6901).
fn escape_pointer(step: &str) -> String {
    step.replace('~', "~0").replace('/', "~1")
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    write_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

fn write_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    write_key(out, number, WIRE_LEN);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn write_string(out: &mut Vec<u8>, number: u32, text: &str) {
    write_bytes(out, number, text.as_bytes());
}

#[cfg(test)]
mod tests;
