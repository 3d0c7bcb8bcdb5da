//! The files of a configMap or secret volume (upstream's `MakePayload` of each plugin): every key,
//! or the listed `items` under their paths and modes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret};

use super::atomic_writer::{FileProjection, Payload};

/// The mode of projected files when the volume does not say (the API server's default too).
pub(crate) const DEFAULT_MODE: i32 = 0o644;

/// A listed key the object does not have (upstream's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKey(String),
    #[error("secret references non-existent secret key: {0}")]
    SecretKey(String),
}

fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(0) & 0o7777
}

/// Files from `data` (every key, or the listed items). `missing` names the error for a listed
/// key that `data` lacks, unless the source is optional.
fn make_payload(
    items: Option<&[KeyToPath]>,
    data: &BTreeMap<&str, &[u8]>,
    default_mode: i32,
    optional: bool,
    missing: fn(String) -> PayloadError,
) -> Result<Payload, PayloadError> {
    let mut payload = Payload::new();
    match items {
        None | Some([]) => {
            for (key, bytes) in data {
                payload.insert(
                    (*key).to_owned(),
                    FileProjection {
                        data: bytes.to_vec(),
                        mode: mode_bits(default_mode),
                        fs_user: None,
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(bytes) = data.get(item.key.as_str()) else {
                    if optional {
                        continue;
                    }
                    return Err(missing(item.key.clone()));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: bytes.to_vec(),
                        mode: mode_bits(item.mode.unwrap_or(default_mode)),
                        fs_user: None,
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// The files of a configMap (`data` and `binaryData`; a key in both takes `data`'s bytes, as a
/// listed item does upstream).
pub(crate) fn config_map_payload(
    items: Option<&[KeyToPath]>,
    config_map: &ConfigMap,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, PayloadError> {
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (key, bytes) in config_map.binary_data.iter().flatten() {
        data.insert(key, &bytes.0);
    }
    for (key, text) in config_map.data.iter().flatten() {
        data.insert(key, text.as_bytes());
    }
    make_payload(
        items,
        &data,
        default_mode,
        optional,
        PayloadError::ConfigMapKey,
    )
}

/// The files of a secret (`data`; `stringData` is write-only and already merged by the API server).
pub(crate) fn secret_payload(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, PayloadError> {
    let data: BTreeMap<&str, &[u8]> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, bytes)| (key.as_str(), bytes.0.as_slice()))
        .collect();
    make_payload(
        items,
        &data,
        default_mode,
        optional,
        PayloadError::SecretKey,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn config_map() -> ConfigMap {
        ConfigMap {
            data: Some(
                [
                    ("a".to_owned(), "alpha".to_owned()),
                    ("b".to_owned(), "beta".to_owned()),
                ]
                .into(),
            ),
            binary_data: Some([("bin".to_owned(), ByteString(vec![0, 1, 2]))].into()),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.to_owned(),
            path: path.to_owned(),
            mode,
            ..Default::default()
        }
    }

    fn summary(payload: &Payload) -> Vec<(String, Vec<u8>, u32)> {
        payload
            .iter()
            .map(|(p, f)| (p.clone(), f.data.clone(), f.mode))
            .collect()
    }

    #[test]
    fn every_key_with_default_mode() {
        let payload = config_map_payload(None, &config_map(), 0o600, false).unwrap();
        assert_eq!(
            summary(&payload),
            vec![
                ("a".to_owned(), b"alpha".to_vec(), 0o600),
                ("b".to_owned(), b"beta".to_vec(), 0o600),
                ("bin".to_owned(), vec![0, 1, 2], 0o600),
            ]
        );
    }

    #[test]
    fn items_map_keys_to_paths_and_modes() {
        let items = [
            item("a", "dir/first", Some(0o400)),
            item("bin", "raw", None),
        ];
        let payload = config_map_payload(Some(&items), &config_map(), DEFAULT_MODE, false).unwrap();
        assert_eq!(
            summary(&payload),
            vec![
                ("dir/first".to_owned(), b"alpha".to_vec(), 0o400),
                ("raw".to_owned(), vec![0, 1, 2], 0o644),
            ]
        );
    }

    #[test]
    fn missing_key_fails_unless_optional() {
        let items = [item("nope", "x", None), item("a", "a", None)];
        let err = config_map_payload(Some(&items), &config_map(), DEFAULT_MODE, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configmap references non-existent config key: nope"
        );
        let payload = config_map_payload(Some(&items), &config_map(), DEFAULT_MODE, true).unwrap();
        assert_eq!(payload.keys().collect::<Vec<_>>(), vec!["a"]);

        let secret = Secret {
            data: Some([("token".to_owned(), ByteString(b"t".to_vec()))].into()),
            ..Default::default()
        };
        let err = secret_payload(
            Some(&[item("key", "k", None)]),
            &secret,
            DEFAULT_MODE,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret references non-existent secret key: key"
        );
        let payload = secret_payload(None, &secret, 0o440, false).unwrap();
        assert_eq!(
            summary(&payload),
            vec![("token".to_owned(), b"t".to_vec(), 0o440)]
        );
    }

    #[test]
    fn an_optional_missing_object_is_an_empty_volume() {
        let payload = config_map_payload(
            Some(&[item("a", "a", None)]),
            &ConfigMap::default(),
            DEFAULT_MODE,
            true,
        )
        .unwrap();
        assert!(payload.is_empty());
        assert!(secret_payload(None, &Secret::default(), DEFAULT_MODE, true)
            .unwrap()
            .is_empty());
    }
}
