//! Request bodies: arbitrary bytes through the JSON, YAML and protobuf decoders, then the kind's typed decoding, strict field validation, defaulting and validation.
//!
//! Input: one byte that picks the built-in resource the body is sent to (as the URL would), then
//! the body. Every body goes through all three decoders, as `parse_body` in the API server would
//! with each `Content-Type`.
//!
//! Properties:
//! - no decoder, typed round trip, defaulting or validation panics, whatever the bytes;
//! - a decoded value survives the store (JSON text and back);
//! - the typed round trip is idempotent: decoding the typed form again gives it back unchanged,
//!   with no unknown fields;
//! - a protobuf body's object carries the apiVersion and kind the decoder reports;
//! - defaulting keeps an object decodable as its kind (the server stores defaulted objects);
//! - the wire form (Go's encoding, which the server stores and sends) still decodes as the kind,
//!   and writing it again gives the same bytes.

#![no_main]

use k3rs_api::ResourceInfo;
use k3rs_apiserver_fuzz::{assert_reads_back, resource, split_first};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = split_first(data) else {
        return;
    };
    let resource = resource(selector);

    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        assert_reads_back("JSON body", &value);
        typed(resource, &value);
    }
    if let Ok(value) = serde_yaml_ng::from_slice::<Value>(body) {
        assert_reads_back("YAML body", &value);
        typed(resource, &value);
    }
    if let Ok(decoded) = k3rs_protobuf::decode(body, Some((resource.api_version, resource.kind))) {
        let object = &decoded.object;
        assert_reads_back("protobuf body", object);
        if object.is_object() {
            assert_eq!(object["apiVersion"], decoded.api_version.as_str());
            assert_eq!(object["kind"], decoded.kind.as_str());
        }
        typed(resource, object);
    }
});

/// What the API server does with a body that parsed: the kind's typed decoding (which drops
/// unknown fields), naming the dropped fields, then defaulting and validation.
fn typed(resource: &ResourceInfo, value: &Value) {
    if !value.is_object() {
        // The server answers 400 before decoding anything that is not an object.
        return;
    }
    let Ok(typed) = resource.decode(value) else {
        return;
    };
    let _unknown = k3rs_api::strict::unknown_fields(value, &typed);
    assert_reads_back("typed object", &typed);

    let again = resource.decode(&typed).unwrap_or_else(|err| {
        panic!(
            "{}: a typed object does not decode again: {err}",
            resource.kind
        )
    });
    assert_eq!(
        again, typed,
        "{}: the typed round trip is not idempotent",
        resource.kind
    );
    assert!(
        k3rs_api::strict::unknown_fields(&typed, &again).is_empty(),
        "{}: a typed object has unknown fields",
        resource.kind
    );

    let mut defaulted = typed;
    k3rs_api::apply_defaults(resource, &mut defaulted);
    assert_reads_back("defaulted object", &defaulted);
    if let Err(err) = resource.decode(&defaulted) {
        panic!(
            "{}: defaulting made the object undecodable: {err}",
            resource.kind
        );
    }
    let _errors = k3rs_api::validate_create(resource, &defaulted);

    let ty = k3rs_api::wire::GoType::of_kind(resource.api_version, resource.kind);
    let mut stored = defaulted;
    k3rs_api::wire::normalize(&mut stored, ty);
    if let Err(err) = resource.decode(&stored) {
        panic!(
            "{}: the wire form does not decode: {err}\n{stored}",
            resource.kind
        );
    }
    let mut again = stored.clone();
    k3rs_api::wire::normalize(&mut again, ty);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    k3rs_api::wire::write(&mut first, &stored, ty);
    k3rs_api::wire::write(&mut second, &again, ty);
    assert_eq!(
        first, second,
        "{}: the wire form is not stable",
        resource.kind
    );
}
