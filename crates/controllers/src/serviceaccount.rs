//! Per-namespace defaults every active namespace gets (upstream's `serviceaccount` and
//! `root-ca-cert-publisher` controllers): the `default` ServiceAccount, and the
//! `kube-root-ca.crt` ConfigMap holding the cluster CA so pods can verify the API server.
//! Both are put back when deleted and the ConfigMap is repaired when edited.

use std::collections::BTreeMap;
use std::sync::Arc;

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::ObjectMeta;
use kube::{Api, Client, ResourceExt};

use crate::error::Error;
use crate::Context;
use k3rs_runtime::informer::Informer;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap with the cluster CA in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its key holding the CA bundle.
pub const ROOT_CA_KEY: &str = "ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

#[derive(Clone)]
struct Shared {
    client: Client,
    ca_pem: Arc<str>,
    namespaces: Arc<Informer<Namespace>>,
    accounts: Arc<Informer<ServiceAccount>>,
    config_maps: Arc<Informer<ConfigMap>>,
}

/// Registers the controller's handlers and starts its workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let shared = Shared {
        client: ctx.client.clone(),
        ca_pem: ctx.ca_pem.clone(),
        namespaces: ctx.informers.get::<Namespace>(),
        accounts: ctx
            .informers
            .get_selected(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}")),
        config_maps: ctx
            .informers
            .get_selected(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
    };
    Controller::new(&ctx.runtime, "serviceaccount-controller")
        .watches(&shared.namespaces, |change| {
            Some(change.object().name_any())
        })
        .watches(&shared.accounts, |change| {
            Some(change.object().namespace().unwrap_or_default())
        })
        .watches(&shared.config_maps, |change| {
            Some(change.object().namespace().unwrap_or_default())
        })
        .workers(2)
        .run(move |ns: String| {
            let shared = shared.clone();
            async move { reconcile(&shared, &ns).await }
        })
}

async fn reconcile(shared: &Shared, ns: &str) -> Result<Action, Error> {
    let Some(namespace) = shared.namespaces.cache().get_named("", ns) else {
        return Ok(Action::Done);
    };
    if namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let params = crate::post_params();
    if shared
        .accounts
        .cache()
        .get_named(ns, DEFAULT_SERVICE_ACCOUNT)
        .is_none()
    {
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        let accounts: Api<ServiceAccount> = Api::namespaced(shared.client.clone(), ns);
        ignore_exists(accounts.create(&params, &account).await)?;
    }

    let config_maps: Api<ConfigMap> = Api::namespaced(shared.client.clone(), ns);
    let wanted_data = BTreeMap::from([(ROOT_CA_KEY.to_owned(), shared.ca_pem.to_string())]);
    match shared.config_maps.cache().get_named(ns, ROOT_CA_CONFIG_MAP) {
        None => {
            let config_map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA_CONFIG_MAP.into()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/description".to_owned(),
                        DESCRIPTION.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(wanted_data),
                ..ConfigMap::default()
            };
            ignore_exists(config_maps.create(&params, &config_map).await)?;
        }
        Some(existing) if existing.data.as_ref() != Some(&wanted_data) => {
            let mut repaired = (*existing).clone();
            repaired.data = Some(wanted_data);
            repaired.binary_data = None;
            config_maps
                .replace(ROOT_CA_CONFIG_MAP, &params, &repaired)
                .await?;
        }
        Some(_) => {}
    }
    Ok(Action::Done)
}

/// A create that lost a race with another writer (or a cache that lags) is fine.
fn ignore_exists<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result.map_err(Error::from) {
        Ok(_) => Ok(()),
        Err(err) if err.is_conflict() => Ok(()),
        // The namespace started terminating since the cache saw it.
        Err(err) if err.status() == Some(403) => Ok(()),
        Err(err) => Err(err),
    }
}
