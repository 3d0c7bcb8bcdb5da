//! Admin kubeconfig files with the CA, client certificate and key embedded.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;

use crate::files::write_atomic;
use crate::{PkiError, ServerPki};

/// The name used for the cluster, the user and the context, as k3s does.
pub const KUBECONFIG_NAME: &str = "default";

/// The default mode of a written kubeconfig: it holds the admin key.
pub const DEFAULT_KUBECONFIG_MODE: u32 = 0o600;

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    clusters: [Named<'a, Cluster<'a>>; 1],
    contexts: [Named<'a, Context<'a>>; 1],
    current_context: &'a str,
    preferences: Preferences,
    users: [Named<'a, User>; 1],
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize)]
struct Cluster<'a> {
    cluster: ClusterData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterData<'a> {
    certificate_authority_data: String,
    server: &'a str,
}

#[derive(Serialize)]
struct Context<'a> {
    context: ContextData<'a>,
}

#[derive(Serialize)]
struct ContextData<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct Preferences {}

#[derive(Serialize)]
struct User {
    user: UserData,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserData {
    client_certificate_data: String,
    client_key_data: String,
}

/// The admin kubeconfig for `pki` as YAML text: cluster, user and context all named `default`,
/// pointing at `server_url` (e.g. `https://127.0.0.1:6443`).
pub fn render_admin_kubeconfig(
    pki: &ServerPki,
    server_url: &str,
    path_for_errors: &Path,
) -> Result<String, PkiError> {
    let doc = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: [Named {
            name: KUBECONFIG_NAME,
            value: Cluster {
                cluster: ClusterData {
                    certificate_authority_data: BASE64.encode(&pki.ca_cert_pem),
                    server: server_url,
                },
            },
        }],
        contexts: [Named {
            name: KUBECONFIG_NAME,
            value: Context {
                context: ContextData {
                    cluster: KUBECONFIG_NAME,
                    user: KUBECONFIG_NAME,
                },
            },
        }],
        current_context: KUBECONFIG_NAME,
        preferences: Preferences {},
        users: [Named {
            name: KUBECONFIG_NAME,
            value: User {
                user: UserData {
                    client_certificate_data: BASE64.encode(&pki.admin.cert_pem),
                    client_key_data: BASE64.encode(pki.admin.key_pem.expose()),
                },
            },
        }],
    };
    serde_yaml_ng::to_string(&doc).map_err(|source| PkiError::Kubeconfig {
        path: path_for_errors.to_path_buf(),
        source,
    })
}

/// Writes the admin kubeconfig to `path` atomically with exactly `mode`, creating missing parent
/// directories.
pub fn write_admin_kubeconfig(
    pki: &ServerPki,
    server_url: &str,
    path: &Path,
    mode: u32,
) -> Result<(), PkiError> {
    let text = render_admin_kubeconfig(pki, server_url, path)?;
    write_atomic(path, text.as_bytes(), mode)
}
