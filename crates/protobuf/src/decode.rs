//! Schema-driven decoding of one message into the JSON that Go's `encoding/json` would write for it.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::format::{go_duration, rfc3339};
use crate::schema::{Cardinality, Field, FieldType, Schema, Special};
use crate::wire::{read_varint, Records, WireValue};
use crate::{ProtobufError, MAX_DEPTH};

/// Decoding state shared by one call: where we are, and what was skipped.
#[derive(Debug)]
pub(crate) struct Decoder<'s> {
    pub(crate) schema: &'s Schema,
    /// JSON path of the field being decoded, for error messages and unknown-field reports.
    pub(crate) path: Vec<String>,
    pub(crate) unknown_fields: Vec<String>,
}

impl<'s> Decoder<'s> {
    pub(crate) fn new(schema: &'s Schema) -> Self {
        Decoder {
            schema,
            path: Vec::new(),
            unknown_fields: Vec::new(),
        }
    }

    fn path_string(&self) -> String {
        if self.path.is_empty() {
            "<root>".to_owned()
        } else {
            self.path.join(".")
        }
    }

    fn error(&self, problem: impl Into<String>) -> ProtobufError {
        ProtobufError::Field {
            path: self.path_string(),
            problem: problem.into(),
        }
    }

    /// Decodes `data` as message `index`.
    pub(crate) fn message(&mut self, index: usize, data: &[u8]) -> Result<Value, ProtobufError> {
        if self.path.len() > MAX_DEPTH {
            return Err(ProtobufError::TooDeep { limit: MAX_DEPTH });
        }
        let schema = self.schema;
        let message = schema
            .messages
            .get(index)
            .ok_or_else(|| self.error("unknown message type"))?;
        match message.special {
            Special::None => {
                let mut object = Map::new();
                self.fields_into(index, data, &mut object)?;
                Ok(Value::Object(object))
            }
            special => self.special(special, index, data),
        }
    }

    /// Decodes the fields of message `index` into `object` (an embedded struct shares its parent's).
    fn fields_into(
        &mut self,
        index: usize,
        data: &[u8],
        object: &mut Map<String, Value>,
    ) -> Result<(), ProtobufError> {
        let schema = self.schema;
        let message = schema
            .messages
            .get(index)
            .ok_or_else(|| self.error("unknown message type"))?;
        for record in Records::new(data) {
            let (tag, value) = record.map_err(|e| self.error(e.to_string()))?;
            let Some(field) = message.field(tag) else {
                self.unknown_fields
                    .push(format!("{}.#{tag}", self.path_string()));
                continue;
            };
            let Some(json) = field.json.as_deref() else {
                // A Go embedded struct: its fields land in this object.
                let (FieldType::Message(inner), WireValue::Len(bytes)) = (field.ty, value) else {
                    return Err(self.error(format!("embedded field #{tag} is not a message")));
                };
                self.fields_into(inner, bytes, object)?;
                continue;
            };
            self.path.push(json.to_owned());
            let result = self.field_into(field, json, value, object);
            self.path.pop();
            result?;
        }
        Ok(())
    }

    fn field_into(
        &mut self,
        field: &Field,
        json: &str,
        value: WireValue<'_>,
        object: &mut Map<String, Value>,
    ) -> Result<(), ProtobufError> {
        match field.cardinality {
            Cardinality::One => {
                let decoded = self.value(field.ty, value)?;
                // Go non-pointer zero values are equal to absent ones; omitempty drops them.
                if is_scalar(field.ty) && !field.explicit_zero && is_zero(&decoded) {
                    object.remove(json);
                } else {
                    object.insert(json.to_owned(), decoded);
                }
            }
            Cardinality::List => {
                let entry = object
                    .entry(json.to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                let mut items = Vec::new();
                match (field.ty, value) {
                    // Packed repeated numbers (proto2 permits either form on the wire).
                    (
                        FieldType::Int32 | FieldType::Int64 | FieldType::Bool | FieldType::Double,
                        WireValue::Len(bytes),
                    ) => {
                        let mut pos = 0;
                        while pos < bytes.len() {
                            let item = if field.ty == FieldType::Double {
                                let chunk = bytes
                                    .get(pos..pos + 8)
                                    .ok_or_else(|| self.error("truncated packed double"))?;
                                pos += 8;
                                WireValue::Fixed64(u64::from_le_bytes(
                                    chunk
                                        .try_into()
                                        .map_err(|_| self.error("truncated packed double"))?,
                                ))
                            } else {
                                WireValue::Varint(
                                    read_varint(bytes, &mut pos)
                                        .map_err(|e| self.error(e.to_string()))?,
                                )
                            };
                            items.push(self.value(field.ty, item)?);
                        }
                    }
                    _ => items.push(self.value(field.ty, value)?),
                }
                match entry {
                    Value::Array(list) => list.extend(items),
                    other => *other = Value::Array(items),
                }
            }
            Cardinality::Map => {
                let WireValue::Len(bytes) = value else {
                    return Err(self.error(format!("map entry sent as {}", value.wire_type_name())));
                };
                let (key, entry_value) = self.map_entry(field.ty, bytes)?;
                let entry = object
                    .entry(json.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                match entry {
                    Value::Object(map) => {
                        map.insert(key, entry_value);
                    }
                    other => *other = Value::Object(Map::from_iter([(key, entry_value)])),
                }
            }
        }
        Ok(())
    }

    /// One map entry: key (field 1, always a string in Kubernetes) and value (field 2). A missing
    /// part is its type's zero value, as in Go.
    fn map_entry(&mut self, ty: FieldType, data: &[u8]) -> Result<(String, Value), ProtobufError> {
        let mut key = String::new();
        let mut value = None;
        for record in Records::new(data) {
            match record.map_err(|e| self.error(e.to_string()))? {
                (1, WireValue::Len(bytes)) => key = String::from_utf8_lossy(bytes).into_owned(),
                (1, other) => {
                    return Err(self.error(format!("map key sent as {}", other.wire_type_name())))
                }
                (2, wire) => value = Some(wire),
                _ => {}
            }
        }
        self.path.push(key.clone());
        let decoded = match value {
            Some(wire) => self.value(ty, wire),
            None => self.zero(ty),
        };
        self.path.pop();
        Ok((key, decoded?))
    }

    fn zero(&mut self, ty: FieldType) -> Result<Value, ProtobufError> {
        Ok(match ty {
            FieldType::String | FieldType::Bytes => Value::String(String::new()),
            FieldType::Int32 | FieldType::Int64 => Value::from(0),
            FieldType::Bool => Value::Bool(false),
            FieldType::Double => Value::from(0),
            FieldType::Message(index) => self.message(index, &[])?,
        })
    }

    /// One value of type `ty`.
    fn value(&mut self, ty: FieldType, wire: WireValue<'_>) -> Result<Value, ProtobufError> {
        match (ty, wire) {
            (FieldType::String, WireValue::Len(bytes)) => {
                Ok(Value::String(String::from_utf8_lossy(bytes).into_owned()))
            }
            (FieldType::Bytes, WireValue::Len(bytes)) => Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(bytes),
            )),
            // int32 is sent sign-extended to 64 bits; truncating is what every protobuf decoder does.
            (FieldType::Int32, WireValue::Varint(v)) => Ok(Value::from(v as i32)),
            (FieldType::Int64, WireValue::Varint(v)) => Ok(Value::from(v as i64)),
            (FieldType::Bool, WireValue::Varint(v)) => Ok(Value::Bool(v != 0)),
            (FieldType::Double, WireValue::Fixed64(bits)) => self.double(f64::from_bits(bits)),
            (FieldType::Message(index), WireValue::Len(bytes)) => self.message(index, bytes),
            (ty, wire) => Err(self.error(format!(
                "expected {ty:?}, got a {} value",
                wire.wire_type_name()
            ))),
        }
    }

    /// Go writes whole floats without a fraction (`1`, not `1.0`); JSON has no NaN or infinity.
    fn double(&self, value: f64) -> Result<Value, ProtobufError> {
        if value.fract() == 0.0 && value.abs() < 9.0e15 {
            return Ok(Value::from(value as i64));
        }
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| self.error(format!("{value} is not a JSON number")))
    }

    fn special(
        &mut self,
        special: Special,
        index: usize,
        data: &[u8],
    ) -> Result<Value, ProtobufError> {
        let records = Records::new(data)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e.to_string()))?;
        // The last occurrence of a singular field wins, as in every protobuf decoder.
        let last = |tag: u32| {
            records
                .iter()
                .rev()
                .find(|(t, _)| *t == tag)
                .map(|(_, v)| *v)
        };
        let varint = |tag: u32| match last(tag) {
            Some(WireValue::Varint(v)) => Ok(v),
            None => Ok(0),
            Some(other) => {
                Err(self.error(format!("field #{tag} sent as {}", other.wire_type_name())))
            }
        };
        let bytes = |tag: u32| match last(tag) {
            Some(WireValue::Len(b)) => Ok(b),
            None => Ok(&[][..]),
            Some(other) => {
                Err(self.error(format!("field #{tag} sent as {}", other.wire_type_name())))
            }
        };
        let string = |tag: u32| bytes(tag).map(|b| String::from_utf8_lossy(b).into_owned());
        match special {
            Special::None => Err(self.error("not a special type")),
            // type 1 is a string; anything else an int (Go's IntOrString.MarshalJSON).
            Special::IntOrString => match varint(1)? {
                1 => Ok(Value::String(string(3)?)),
                _ => Ok(Value::from(varint(2)? as i32)),
            },
            Special::Quantity => Ok(Value::String(string(1)?)),
            // An empty message is Go's zero time, which encoding/json writes as null.
            Special::Time | Special::MicroTime if data.is_empty() => Ok(Value::Null),
            Special::Time => {
                // Upstream keeps whole seconds only: JSON clients cannot see more.
                let seconds = varint(1)? as i64;
                rfc3339(seconds, None)
                    .map(Value::String)
                    .ok_or_else(|| self.error(format!("time {seconds}s out of range")))
            }
            Special::MicroTime => {
                let seconds = varint(1)? as i64;
                let nanos = varint(2)? as i32;
                let micros = u32::try_from(nanos / 1000).ok().filter(|m| *m < 1_000_000);
                let micros =
                    micros.ok_or_else(|| self.error(format!("nanos {nanos} out of range")))?;
                rfc3339(seconds, Some(micros))
                    .map(Value::String)
                    .ok_or_else(|| self.error(format!("time {seconds}s out of range")))
            }
            Special::Duration => Ok(Value::String(go_duration(varint(1)? as i64))),
            Special::EmbeddedJson => self.embedded_json(bytes(1)?),
            Special::StringList => {
                let mut items = Vec::new();
                for (tag, wire) in &records {
                    match (tag, wire) {
                        (1, WireValue::Len(b)) => {
                            items.push(Value::String(String::from_utf8_lossy(b).into_owned()))
                        }
                        (1, other) => {
                            return Err(
                                self.error(format!("list item sent as {}", other.wire_type_name()))
                            )
                        }
                        _ => {}
                    }
                }
                Ok(Value::Array(items))
            }
            Special::JsonSchemaPropsOrArray
            | Special::JsonSchemaPropsOrBool
            | Special::JsonSchemaPropsOrStringArray => {
                self.json_schema_props_or(special, index, &records)
            }
        }
    }

    /// `RawExtension`, `JSON`, `FieldsV1`: JSON bytes, or a nested protobuf object.
    fn embedded_json(&mut self, raw: &[u8]) -> Result<Value, ProtobufError> {
        if raw.is_empty() {
            return Ok(Value::Null);
        }
        if raw.starts_with(crate::MAGIC) {
            let (object, _) = crate::decode_envelope(self, raw, None)?;
            return Ok(object);
        }
        serde_json::from_slice(raw).map_err(|e| self.error(format!("embedded JSON: {e}")))
    }

    /// The three apiextensions unions, written as a schema, a list or a bool depending on which
    /// field is set (Go's `MarshalJSON` of each).
    fn json_schema_props_or(
        &mut self,
        special: Special,
        index: usize,
        records: &[(u32, WireValue<'_>)],
    ) -> Result<Value, ProtobufError> {
        let schema = self.schema;
        let message = schema
            .messages
            .get(index)
            .ok_or_else(|| self.error("unknown message type"))?;
        let props_type = message
            .fields
            .iter()
            .find_map(|f| match f.ty {
                FieldType::Message(i) => Some(i),
                _ => None,
            })
            .ok_or_else(|| self.error("JSONSchemaProps union without a schema field"))?;
        let (schema_tag, list_tag) = match special {
            Special::JsonSchemaPropsOrArray => (1, 2),
            Special::JsonSchemaPropsOrStringArray => (1, 2),
            _ => (2, 0),
        };
        let mut list = Vec::new();
        let mut props = None;
        let mut allows = false;
        for (tag, wire) in records {
            match (*tag, wire) {
                (t, WireValue::Len(b)) if t == schema_tag => {
                    props = Some(self.message(props_type, b)?)
                }
                (t, WireValue::Len(b))
                    if t == list_tag && special == Special::JsonSchemaPropsOrArray =>
                {
                    list.push(self.message(props_type, b)?)
                }
                (t, WireValue::Len(b)) if t == list_tag => {
                    list.push(Value::String(String::from_utf8_lossy(b).into_owned()))
                }
                (1, WireValue::Varint(v)) if special == Special::JsonSchemaPropsOrBool => {
                    allows = *v != 0
                }
                (t, other) => {
                    return Err(self.error(format!("field #{t} sent as {}", other.wire_type_name())))
                }
            }
        }
        Ok(match special {
            Special::JsonSchemaPropsOrBool => props.unwrap_or(Value::Bool(allows)),
            _ if !list.is_empty() => Value::Array(list),
            _ => props.unwrap_or(Value::Null),
        })
    }
}

fn is_scalar(ty: FieldType) -> bool {
    !matches!(ty, FieldType::Message(_))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}
