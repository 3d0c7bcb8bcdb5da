//! `/healthz`, `/livez`, `/readyz` in kube-apiserver's format, with `?verbose` and `?exclude=`;
//! `/readyz` also runs the checks registered with [`crate::Readiness`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Response, StatusCode};

use crate::response::{not_found, text, ResponseBody};
use crate::routes::AppState;

/// How long the store check may take before it counts as failed.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The three health endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Livez => "livez",
            Self::Readyz => "readyz",
        }
    }

    /// The checks each endpoint runs, in output order. Liveness does not depend on the store:
    /// a slow disk should make the server unready, not get it restarted.
    fn checks(self) -> &'static [Check] {
        match self {
            Self::Healthz => &[
                Check::Ping,
                Check::Log,
                Check::Store,
                Check::Bootstrap,
                Check::RbacBootstrap,
                Check::CrdsSynced,
            ],
            Self::Livez => &[Check::Ping, Check::Log],
            Self::Readyz => &[
                Check::Ping,
                Check::Log,
                Check::Store,
                Check::Bootstrap,
                Check::RbacBootstrap,
                Check::CrdsSynced,
                Check::Shutdown,
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Ping,
    Log,
    Store,
    /// The objects every cluster starts with exist (upstream's bootstrap post-start hooks).
    Bootstrap,
    /// The default RBAC roles and bindings exist (upstream's `rbac/bootstrap-roles` hook).
    RbacBootstrap,
    /// The CRDs in the store are served (upstream's `crd-informer-synced`): right after a
    /// restart, custom resources do not answer 404.
    CrdsSynced,
    Shutdown,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Log => "log",
            Self::Store => "store",
            Self::Bootstrap => "poststarthook/bootstrap-system-namespaces",
            Self::RbacBootstrap => "poststarthook/rbac/bootstrap-roles",
            Self::CrdsSynced => "poststarthook/crd-informer-synced",
            Self::Shutdown => "shutdown",
        }
    }

    async fn run(self, state: &AppState) -> bool {
        match self {
            Self::Ping | Self::Log => true,
            Self::Shutdown => !state.shutting_down.load(Ordering::SeqCst),
            Self::Bootstrap => state.bootstrapped.load(Ordering::SeqCst),
            Self::RbacBootstrap => state.auth.bootstrapped.load(Ordering::SeqCst),
            Self::CrdsSynced => state.crds_synced.load(Ordering::SeqCst),
            Self::Store => {
                let probe = state.store.get("/k3rs/health");
                match tokio::time::timeout(STORE_CHECK_TIMEOUT, probe).await {
                    Ok(Ok(_)) => true,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "store health check failed");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(timeout = ?STORE_CHECK_TIMEOUT, "store health check timed out");
                        false
                    }
                }
            }
        }
    }
}

/// The results of the checks registered with [`crate::Readiness`]; only `/readyz` runs them.
fn registered(state: &AppState, endpoint: Endpoint) -> Vec<(String, bool)> {
    if endpoint == Endpoint::Readyz {
        state.readiness.run()
    } else {
        Vec::new()
    }
}

/// Answers `/<endpoint>` (all checks) or `/<endpoint>/<check>` (one check).
pub(crate) async fn handle(
    state: &AppState,
    endpoint: Endpoint,
    sub_check: Option<&str>,
    query: Option<&str>,
) -> Response<ResponseBody> {
    let params: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let verbose = params.iter().any(|(k, _)| *k == "verbose");
    let excluded: Vec<&str> = params
        .iter()
        .filter(|(k, _)| *k == "exclude")
        .map(|(_, v)| *v)
        .collect();

    if let Some(name) = sub_check {
        let passed = if let Some(check) = endpoint.checks().iter().find(|c| c.name() == name) {
            check.run(state).await
        } else if let Some((_, ready)) = registered(state, endpoint)
            .into_iter()
            .find(|(registered, _)| registered == name)
        {
            ready
        } else {
            return not_found();
        };
        return if passed {
            text(StatusCode::OK, "ok")
        } else {
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {name} check failed\n"),
            )
        };
    }

    let mut report = String::new();
    let mut failed = false;
    let mut line = |name: &str, passed: Option<bool>| match passed {
        None => {
            let _ = writeln!(report, "[+]{name} excluded: ok");
        }
        Some(true) => {
            let _ = writeln!(report, "[+]{name} ok");
        }
        Some(false) => {
            failed = true;
            // kube-apiserver withholds the reason from clients; it is in the server log.
            let _ = writeln!(report, "[-]{name} failed: reason withheld");
        }
    };
    // The registered checks (supervised tasks, components outside this crate) go after the
    // built-in ones and before `shutdown`, which stays last as upstream's does.
    let (built_in, last) = match endpoint.checks().split_last() {
        Some((last, rest)) if *last == Check::Shutdown => (rest, Some(*last)),
        _ => (endpoint.checks(), None),
    };
    for check in built_in {
        if excluded.contains(&check.name()) {
            line(check.name(), None);
        } else {
            line(check.name(), Some(check.run(state).await));
        }
    }
    for (name, ready) in registered(state, endpoint) {
        line(&name, (!excluded.contains(&name.as_str())).then_some(ready));
    }
    if let Some(check) = last {
        if excluded.contains(&check.name()) {
            line(check.name(), None);
        } else {
            line(check.name(), Some(check.run(state).await));
        }
    }
    if failed {
        let _ = writeln!(report, "{} check failed", endpoint.name());
        return text(StatusCode::INTERNAL_SERVER_ERROR, report);
    }
    if verbose {
        let _ = writeln!(report, "{} check passed", endpoint.name());
        return text(StatusCode::OK, report);
    }
    text(StatusCode::OK, "ok")
}
