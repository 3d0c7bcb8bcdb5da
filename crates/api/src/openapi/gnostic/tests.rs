//! Tests of the gnostic encoder: decoded with a prost message set written from `OpenAPIv2.proto`.

use prost::Message as _;
use serde_json::json;

use super::*;
use crate::openapi::{openapi_v2, CustomResourceSchema, GVK_EXTENSION};
use crate::resources::builtin_resources;

/// `openapi.v2` messages, field by field from gnostic-models' `openapiv2/OpenAPIv2.proto`
/// (the messages a Kubernetes document uses, complete, so that a decode and re-encode keeps
/// every field).
mod pb {
    /// The `Named*` messages: `name` = 1, `value` = 2.
    macro_rules! named {
        ($($name:ident($value:ty)),* $(,)?) => {$(
            #[derive(Clone, PartialEq, prost::Message)]
            pub(super) struct $name {
                #[prost(string, tag = "1")]
                pub name: String,
                #[prost(message, optional, tag = "2")]
                pub value: Option<$value>,
            }
        )*};
    }

    named!(
        NamedAny(Any),
        NamedPathItem(PathItem),
        NamedResponseValue(ResponseValue),
        NamedSchema(Schema),
        NamedSecurityDefinitionsItem(SecurityDefinitionsItem),
        NamedStringArray(StringArray)
    );

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Document {
        #[prost(string, tag = "1")]
        pub swagger: String,
        #[prost(message, optional, tag = "2")]
        pub info: Option<Info>,
        #[prost(string, tag = "3")]
        pub host: String,
        #[prost(string, tag = "4")]
        pub base_path: String,
        #[prost(string, repeated, tag = "5")]
        pub schemes: Vec<String>,
        #[prost(string, repeated, tag = "6")]
        pub consumes: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub produces: Vec<String>,
        #[prost(message, optional, tag = "8")]
        pub paths: Option<Paths>,
        #[prost(message, optional, tag = "9")]
        pub definitions: Option<Properties>,
        #[prost(message, repeated, tag = "12")]
        pub security: Vec<SecurityRequirement>,
        #[prost(message, optional, tag = "13")]
        pub security_definitions: Option<SecurityDefinitions>,
        #[prost(message, repeated, tag = "16")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Info {
        #[prost(string, tag = "1")]
        pub title: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(message, repeated, tag = "7")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Any {
        #[prost(string, tag = "2")]
        pub yaml: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Paths {
        #[prost(message, repeated, tag = "1")]
        pub vendor_extension: Vec<NamedAny>,
        #[prost(message, repeated, tag = "2")]
        pub path: Vec<NamedPathItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct PathItem {
        #[prost(string, tag = "1")]
        pub xref: String,
        #[prost(message, optional, tag = "2")]
        pub get: Option<Operation>,
        #[prost(message, optional, tag = "3")]
        pub put: Option<Operation>,
        #[prost(message, optional, tag = "4")]
        pub post: Option<Operation>,
        #[prost(message, optional, tag = "5")]
        pub delete: Option<Operation>,
        #[prost(message, optional, tag = "6")]
        pub options: Option<Operation>,
        #[prost(message, optional, tag = "7")]
        pub head: Option<Operation>,
        #[prost(message, optional, tag = "8")]
        pub patch: Option<Operation>,
        #[prost(message, repeated, tag = "9")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, repeated, tag = "10")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Operation {
        #[prost(string, repeated, tag = "1")]
        pub tags: Vec<String>,
        #[prost(string, tag = "2")]
        pub summary: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "5")]
        pub operation_id: String,
        #[prost(string, repeated, tag = "6")]
        pub produces: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub consumes: Vec<String>,
        #[prost(message, repeated, tag = "8")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, optional, tag = "9")]
        pub responses: Option<Responses>,
        #[prost(string, repeated, tag = "10")]
        pub schemes: Vec<String>,
        #[prost(bool, tag = "11")]
        pub deprecated: bool,
        #[prost(message, repeated, tag = "13")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ParametersItem {
        #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
        pub oneof: Option<ParametersItemOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum ParametersItemOneof {
        #[prost(message, tag = "1")]
        Parameter(Box<Parameter>),
        #[prost(message, tag = "2")]
        JsonReference(JsonReference),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct JsonReference {
        #[prost(string, tag = "1")]
        pub xref: String,
        #[prost(string, tag = "2")]
        pub description: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Parameter {
        #[prost(oneof = "ParameterOneof", tags = "1, 2")]
        pub oneof: Option<ParameterOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum ParameterOneof {
        #[prost(message, tag = "1")]
        BodyParameter(Box<BodyParameter>),
        #[prost(message, tag = "2")]
        NonBodyParameter(Box<NonBodyParameter>),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct BodyParameter {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub r#in: String,
        #[prost(bool, tag = "4")]
        pub required: bool,
        #[prost(message, optional, tag = "5")]
        pub schema: Option<Schema>,
        #[prost(message, repeated, tag = "6")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct NonBodyParameter {
        #[prost(oneof = "NonBodyOneof", tags = "1, 2, 3, 4")]
        pub oneof: Option<NonBodyOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum NonBodyOneof {
        #[prost(message, tag = "1")]
        Header(HeaderOrPathParameter),
        #[prost(message, tag = "2")]
        FormData(QueryOrFormDataParameter),
        #[prost(message, tag = "3")]
        Query(QueryOrFormDataParameter),
        #[prost(message, tag = "4")]
        Path(HeaderOrPathParameter),
    }

    /// `HeaderParameterSubSchema` and `PathParameterSubSchema` (same fields and numbers).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct HeaderOrPathParameter {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "5")]
        pub r#type: String,
        #[prost(string, tag = "6")]
        pub format: String,
        #[prost(bool, tag = "19")]
        pub unique_items: bool,
        #[prost(message, repeated, tag = "22")]
        pub vendor_extension: Vec<NamedAny>,
    }

    /// `QueryParameterSubSchema` and `FormDataParameterSubSchema` (same fields and numbers).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct QueryOrFormDataParameter {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(bool, tag = "5")]
        pub allow_empty_value: bool,
        #[prost(string, tag = "6")]
        pub r#type: String,
        #[prost(string, tag = "7")]
        pub format: String,
        #[prost(message, optional, tag = "10")]
        pub default: Option<Any>,
        #[prost(double, tag = "11")]
        pub maximum: f64,
        #[prost(double, tag = "13")]
        pub minimum: f64,
        #[prost(int64, tag = "15")]
        pub max_length: i64,
        #[prost(bool, tag = "20")]
        pub unique_items: bool,
        #[prost(message, repeated, tag = "21")]
        pub r#enum: Vec<Any>,
        #[prost(message, repeated, tag = "23")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Responses {
        #[prost(message, repeated, tag = "1")]
        pub response_code: Vec<NamedResponseValue>,
        #[prost(message, repeated, tag = "2")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ResponseValue {
        #[prost(oneof = "ResponseValueOneof", tags = "1, 2")]
        pub oneof: Option<ResponseValueOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum ResponseValueOneof {
        #[prost(message, tag = "1")]
        Response(Box<Response>),
        #[prost(message, tag = "2")]
        JsonReference(JsonReference),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Response {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(message, optional, tag = "2")]
        pub schema: Option<SchemaItem>,
        #[prost(message, repeated, tag = "5")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SchemaItem {
        #[prost(oneof = "SchemaItemOneof", tags = "1")]
        pub oneof: Option<SchemaItemOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum SchemaItemOneof {
        #[prost(message, tag = "1")]
        Schema(Schema),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Schema {
        #[prost(string, tag = "1")]
        pub xref: String,
        #[prost(string, tag = "2")]
        pub format: String,
        #[prost(string, tag = "3")]
        pub title: String,
        #[prost(string, tag = "4")]
        pub description: String,
        #[prost(message, optional, tag = "5")]
        pub default: Option<Any>,
        #[prost(double, tag = "6")]
        pub multiple_of: f64,
        #[prost(double, tag = "7")]
        pub maximum: f64,
        #[prost(bool, tag = "8")]
        pub exclusive_maximum: bool,
        #[prost(double, tag = "9")]
        pub minimum: f64,
        #[prost(bool, tag = "10")]
        pub exclusive_minimum: bool,
        #[prost(int64, tag = "11")]
        pub max_length: i64,
        #[prost(int64, tag = "12")]
        pub min_length: i64,
        #[prost(string, tag = "13")]
        pub pattern: String,
        #[prost(int64, tag = "14")]
        pub max_items: i64,
        #[prost(int64, tag = "15")]
        pub min_items: i64,
        #[prost(bool, tag = "16")]
        pub unique_items: bool,
        #[prost(int64, tag = "17")]
        pub max_properties: i64,
        #[prost(int64, tag = "18")]
        pub min_properties: i64,
        #[prost(string, repeated, tag = "19")]
        pub required: Vec<String>,
        #[prost(message, repeated, tag = "20")]
        pub r#enum: Vec<Any>,
        #[prost(message, optional, boxed, tag = "21")]
        pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
        #[prost(message, optional, tag = "22")]
        pub r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "23")]
        pub items: Option<ItemsItem>,
        #[prost(message, repeated, tag = "24")]
        pub all_of: Vec<Schema>,
        #[prost(message, optional, tag = "25")]
        pub properties: Option<Properties>,
        #[prost(string, tag = "26")]
        pub discriminator: String,
        #[prost(bool, tag = "27")]
        pub read_only: bool,
        #[prost(message, optional, tag = "30")]
        pub example: Option<Any>,
        #[prost(message, repeated, tag = "31")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct AdditionalPropertiesItem {
        #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
        pub oneof: Option<AdditionalPropertiesOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum AdditionalPropertiesOneof {
        #[prost(message, tag = "1")]
        Schema(Box<Schema>),
        #[prost(bool, tag = "2")]
        Boolean(bool),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ItemsItem {
        #[prost(message, repeated, tag = "1")]
        pub schema: Vec<Schema>,
    }

    /// `Definitions` and `Properties` (both a list of `NamedSchema` in field 1).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Properties {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SecurityDefinitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSecurityDefinitionsItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SecurityDefinitionsItem {
        #[prost(oneof = "SecurityDefinitionsOneof", tags = "2")]
        pub oneof: Option<SecurityDefinitionsOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum SecurityDefinitionsOneof {
        #[prost(message, tag = "2")]
        ApiKeySecurity(ApiKeySecurity),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ApiKeySecurity {
        #[prost(string, tag = "1")]
        pub r#type: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub r#in: String,
        #[prost(string, tag = "4")]
        pub description: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SecurityRequirement {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedStringArray>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct StringArray {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }
}

fn decode(document: &Value) -> (pb::Document, EncodedDocument) {
    let encoded = openapi_v2_protobuf(document);
    let decoded = pb::Document::decode(encoded.bytes.as_slice()).expect("decodes");
    (decoded, encoded)
}

fn extension(extensions: &[pb::NamedAny], name: &str) -> Option<Value> {
    let yaml = &extensions
        .iter()
        .find(|e| e.name == name)?
        .value
        .as_ref()?
        .yaml;
    Some(serde_yaml_ng::from_str(yaml).expect("extension YAML parses"))
}

fn schema_of<'a>(properties: &'a Option<pb::Properties>, name: &str) -> &'a pb::Schema {
    properties
        .as_ref()
        .and_then(|p| p.additional_properties.iter().find(|n| n.name == name))
        .and_then(|n| n.value.as_ref())
        .unwrap_or_else(|| panic!("no schema {name}"))
}

/// The served document (every built-in kind plus a CRD) encodes without losing anything, decodes
/// with a message set written from the .proto, and re-encodes to the same bytes (fields in
/// number order, proto3 zero values left out, as Go's `proto.Marshal` writes them).
#[test]
fn served_document_round_trips_through_the_proto_messages() {
    let crds = CustomResourceSchema::from_crd(&crate::openapi::tests::crontab_crd());
    let document = openapi_v2(&builtin_resources(), &crds);
    let (decoded, encoded) = decode(&document);
    assert_eq!(encoded.dropped, Vec::<String>::new());
    assert_eq!(decoded.encode_to_vec(), encoded.bytes, "canonical encoding");

    assert_eq!(decoded.swagger, "2.0");
    assert_eq!(decoded.info.as_ref().unwrap().title, "Kubernetes");
    let json_definitions = document["definitions"].as_object().unwrap();
    let definitions = &decoded.definitions.as_ref().unwrap().additional_properties;
    let names: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
    let json_names: Vec<&str> = json_definitions.keys().map(String::as_str).collect();
    assert_eq!(names, json_names, "definitions in document order");
    // Every kind stays findable by its group-version-kind, the way kubectl reads it.
    let mut kinds = 0;
    for named in definitions {
        let schema = named.value.as_ref().unwrap();
        let gvk = extension(&schema.vendor_extension, GVK_EXTENSION);
        assert_eq!(
            gvk.as_ref(),
            json_definitions[&named.name].get(GVK_EXTENSION),
            "{}",
            named.name
        );
        kinds += usize::from(gvk.is_some());
    }
    assert!(kinds > 100, "{kinds} kinds");
    let paths = &decoded.paths.as_ref().unwrap().path;
    assert_eq!(paths.len(), document["paths"].as_object().unwrap().len());

    let pod = schema_of(&decoded.definitions, "io.k8s.api.core.v1.Pod");
    assert_eq!(pod.r#type.as_ref().unwrap().value, ["object"]);
    let spec = schema_of(&pod.properties, "spec");
    assert_eq!(spec.xref, "#/definitions/io.k8s.api.core.v1.PodSpec");
    let pod_spec = schema_of(&decoded.definitions, "io.k8s.api.core.v1.PodSpec");
    let containers = schema_of(&pod_spec.properties, "containers");
    assert_eq!(
        extension(&containers.vendor_extension, "x-kubernetes-patch-merge-key"),
        Some(json!("name"))
    );
    assert_eq!(
        containers.items.as_ref().unwrap().schema[0].xref,
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    let crontab = schema_of(&decoded.definitions, "com.example.stable.v1.CronTab");
    let extra = schema_of(&schema_of(&crontab.properties, "spec").properties, "extra");
    assert_eq!(
        extension(
            &extra.vendor_extension,
            "x-kubernetes-preserve-unknown-fields"
        ),
        Some(json!(true))
    );
}

/// Each `oneof` is chosen as gnostic's parser chooses it, and proto3's rules for zero values
/// hold (a zero scalar is left out, a `oneof` member and a repeated element are not).
#[test]
fn oneofs_and_zero_values_follow_gnostic() {
    let document = json!({
        "swagger": "2.0",
        "info": {"title": "t", "version": "v"},
        "x-top": {"on": "on"},
        "paths": {
            "/a/{name}": {
                "parameters": [
                    {"$ref": "#/parameters/pretty"},
                    {"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true},
                ],
                "post": {
                    "operationId": "postA",
                    "parameters": [
                        {"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/A"}},
                        {"name": "limit", "in": "query", "type": "integer", "minimum": 0, "maximum": 5, "maxLength": 7, "default": 1, "enum": ["on", ""]},
                        {"name": "X-Trace", "in": "header", "type": "string"},
                        {"name": "f", "in": "formData", "type": "string", "allowEmptyValue": true},
                    ],
                    "responses": {
                        "200": {"description": "OK", "schema": {"$ref": "#/definitions/A"}},
                        "401": {"$ref": "#/responses/unauthorized"},
                        "x-note": "n",
                    },
                    "deprecated": false,
                    "x-kubernetes-action": "post",
                },
            },
            "x-paths": [1],
        },
        "definitions": {
            "A": {
                "type": ["object", "null"],
                "required": ["b"],
                "properties": {
                    "b": {"type": "object", "additionalProperties": false},
                    "c": {"type": "object", "additionalProperties": {"type": "string"}},
                    "d": {"type": "array", "items": {"type": "integer", "format": "int64", "minimum": -3, "maxItems": 0}},
                    "e": {"type": "object", "properties": {}, "default": {"k": "yes"}, "example": "12:30"},
                },
            },
        },
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
    });
    let (decoded, encoded) = decode(&document);
    assert_eq!(encoded.dropped, Vec::<String>::new());
    assert_eq!(decoded.encode_to_vec(), encoded.bytes, "canonical encoding");
    assert_eq!(
        extension(&decoded.vendor_extension, "x-top"),
        Some(json!({"on": "on"}))
    );

    let paths = decoded.paths.as_ref().unwrap();
    assert_eq!(
        extension(&paths.vendor_extension, "x-paths"),
        Some(json!([1]))
    );
    let item = paths.path[0].value.as_ref().unwrap();
    assert_eq!(paths.path[0].name, "/a/{name}");
    use pb::{NonBodyOneof as NB, ParameterOneof as P, ParametersItemOneof as PI};
    let parameter = |item: &pb::ParametersItem| match &item.oneof {
        Some(PI::Parameter(p)) => p.oneof.clone().unwrap(),
        other => panic!("not a parameter: {other:?}"),
    };
    let non_body = |item: &pb::ParametersItem| match parameter(item) {
        P::NonBodyParameter(p) => p.oneof.unwrap(),
        other => panic!("not a non-body parameter: {other:?}"),
    };
    assert_eq!(
        item.parameters[0].oneof,
        Some(PI::JsonReference(pb::JsonReference {
            xref: "#/parameters/pretty".into(),
            description: String::new()
        }))
    );
    match non_body(&item.parameters[1]) {
        NB::Path(path) => assert!(path.required && path.unique_items && path.name == "name"),
        other => panic!("{other:?}"),
    }
    let post = item.post.as_ref().unwrap();
    assert_eq!(post.operation_id, "postA");
    assert!(!post.deprecated);
    assert_eq!(
        extension(&post.vendor_extension, "x-kubernetes-action"),
        Some(json!("post"))
    );
    match parameter(&post.parameters[0]) {
        P::BodyParameter(body) => {
            assert!(body.required);
            assert_eq!(body.schema.unwrap().xref, "#/definitions/A");
        }
        other => panic!("{other:?}"),
    }
    match non_body(&post.parameters[1]) {
        NB::Query(query) => {
            assert_eq!(
                (query.minimum, query.maximum, query.max_length),
                (0.0, 5.0, 7)
            );
            assert_eq!(query.default.unwrap().yaml, "1\n");
            let values: Vec<&str> = query.r#enum.iter().map(|a| a.yaml.as_str()).collect();
            assert_eq!(values, ["\"on\"\n", "\"\"\n"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(non_body(&post.parameters[2]), NB::Header(_)));
    match non_body(&post.parameters[3]) {
        NB::FormData(form) => assert!(form.allow_empty_value),
        other => panic!("{other:?}"),
    }
    let responses = post.responses.as_ref().unwrap();
    let codes: Vec<&str> = responses
        .response_code
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(codes, ["200", "401"]);
    assert!(matches!(
        &responses.response_code[0].value.as_ref().unwrap().oneof,
        Some(pb::ResponseValueOneof::Response(r)) if r.description == "OK"
    ));
    assert!(matches!(
        &responses.response_code[1].value.as_ref().unwrap().oneof,
        Some(pb::ResponseValueOneof::JsonReference(r)) if r.xref == "#/responses/unauthorized"
    ));
    assert_eq!(
        extension(&responses.vendor_extension, "x-note"),
        Some(json!("n"))
    );

    let a = schema_of(&decoded.definitions, "A");
    assert_eq!(a.r#type.as_ref().unwrap().value, ["object", "null"]);
    assert_eq!(a.required, ["b"]);
    let b = schema_of(&a.properties, "b");
    assert_eq!(
        b.additional_properties.as_deref().unwrap().oneof,
        Some(pb::AdditionalPropertiesOneof::Boolean(false)),
        "a oneof's false is sent"
    );
    let c = schema_of(&a.properties, "c");
    match &c.additional_properties.as_deref().unwrap().oneof {
        Some(pb::AdditionalPropertiesOneof::Schema(s)) => {
            assert_eq!(s.r#type.as_ref().unwrap().value, ["string"]);
        }
        other => panic!("{other:?}"),
    }
    let d = &schema_of(&a.properties, "d").items.as_ref().unwrap().schema;
    assert_eq!((d.len(), d[0].minimum, d[0].max_items), (1, -3.0, 0));
    assert_eq!(d[0].format, "int64");
    let e = schema_of(&a.properties, "e");
    assert_eq!(
        e.properties,
        Some(pb::Properties::default()),
        "empty but present"
    );
    assert_eq!(e.default.as_ref().unwrap().yaml, "k: \"yes\"\n");
    assert_eq!(e.example.as_ref().unwrap().yaml, "\"12:30\"\n");

    assert_eq!(
        decoded.security[0].additional_properties[0],
        pb::NamedStringArray {
            name: "BearerToken".into(),
            value: Some(pb::StringArray::default())
        }
    );
    let bearer = &decoded
        .security_definitions
        .as_ref()
        .unwrap()
        .additional_properties[0];
    assert_eq!(bearer.name, "BearerToken");
    match &bearer.value.as_ref().unwrap().oneof {
        Some(pb::SecurityDefinitionsOneof::ApiKeySecurity(key)) => {
            assert_eq!(
                (key.name.as_str(), key.r#in.as_str()),
                ("authorization", "header")
            );
        }
        other => panic!("{other:?}"),
    }
}

/// What `openapi.v2.Document` has no field for is left out and reported by its JSON pointer.
#[test]
fn reports_what_has_no_place_in_the_message() {
    let document = json!({
        "swagger": "2.0",
        "info": {"title": "t", "version": "v"},
        "paths": {"nope": {}, "/ok": {"get": {"responses": {"2xx": {}}}}},
        "definitions": {"A/B": {"type": "object", "nullable": true, "maxLength": 1.5, "required": "x"}},
        "extra": 1,
    });
    let (_, encoded) = decode(&document);
    assert_eq!(
        encoded.dropped,
        [
            "/paths/nope",
            "/paths/~1ok/get/responses/2xx",
            "/definitions/A~1B/maxLength",
            "/definitions/A~1B/required",
            "/definitions/A~1B/nullable",
            "/extra",
        ]
    );
}

/// Byte for byte what `proto.Marshal` writes for a small document (worked out by hand from
/// the .proto field numbers).
#[test]
fn bytes_are_the_wire_format_of_the_proto() {
    let document = json!({
        "swagger": "2.0",
        "info": {"title": "K", "version": "v1"},
        "definitions": {"P": {"type": "object", "x-k": "on"}},
    });
    let encoded = openapi_v2_protobuf(&document);
    let expected: Vec<u8> = [
        // swagger = 1: "2.0"
        &[0x0a, 3][..],
        b"2.0",
        // info = 2: {title = 1: "K", version = 2: "v1"}
        &[0x12, 7, 0x0a, 1, b'K', 0x12, 2],
        b"v1",
        // definitions = 9: {additional_properties = 1: NamedSchema {name = 1: "P", value = 2:
        // Schema {type = 22: TypeItem {value = 1: "object"}, vendor_extension = 31: NamedAny
        // {name = 1: "x-k", value = 2: Any {yaml = 2: "\"on\"\n"}}}}}
        &[0x4a, 35, 0x0a, 33, 0x0a, 1, b'P', 0x12, 28],
        &[0xb2, 0x01, 8, 0x0a, 6],
        b"object",
        &[0xfa, 0x01, 14, 0x0a, 3],
        b"x-k",
        &[0x12, 7, 0x12, 5],
        b"\"on\"\n",
    ]
    .concat();
    assert_eq!(encoded.bytes, expected);
}
