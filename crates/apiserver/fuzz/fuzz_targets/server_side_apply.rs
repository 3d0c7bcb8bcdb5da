//! Server-side apply and field tracking (`k3rs_patch::apply`) on arbitrary live objects and configurations.
//!
//! Input: one byte of flags, then the live object (`null`: none yet) and the configuration as
//! JSON, separated by the first newline. The flags pick the schema (a Deployment half of the
//! time; a Pod, Service, ConfigMap or a custom resource without a schema otherwise), the scope
//! the endpoint writes, the manager (`kubectl`, whose applies take over from client-side apply,
//! or another), `force`, and whether another manager created the live object first (so that its
//! fields can conflict).
//!
//! Properties:
//! - neither `apply` nor `track_update` panics; a bad input is an `Err`;
//! - their results survive the store (JSON text and back);
//! - applying the same configuration again to the result of an apply gives that result back;
//! - tracking the same update again gives the same managed fields.

#![no_main]

use k3rs_apiserver_fuzz::{assert_reads_back, split_first, two_documents};
use k3rs_patch::apply::{apply, track_update, ApplySchema, Manager, Scope, Writer};
use libfuzzer_sys::fuzz_target;

/// The schemas to pick from: a Deployment for half of the inputs.
const SCHEMAS: [ApplySchema<'static>; 8] = [
    ApplySchema::Builtin("io.k8s.api.apps.v1.Deployment"),
    ApplySchema::Builtin("io.k8s.api.apps.v1.Deployment"),
    ApplySchema::Builtin("io.k8s.api.apps.v1.Deployment"),
    ApplySchema::Builtin("io.k8s.api.apps.v1.Deployment"),
    ApplySchema::Builtin("io.k8s.api.core.v1.Pod"),
    ApplySchema::Builtin("io.k8s.api.core.v1.Service"),
    ApplySchema::Builtin("io.k8s.api.core.v1.ConfigMap"),
    ApplySchema::Custom(None),
];

/// A fixed clock: the properties compare results of writes made "at the same time".
const NOW: &str = "2025-01-02T03:04:05Z";

fuzz_target!(|data: &[u8]| {
    let Some((flags, rest)) = split_first(data) else {
        return;
    };
    let Some((live, config)) = two_documents(rest) else {
        return;
    };
    let force = flags & 1 != 0;
    let name = if flags & 2 != 0 { "kubectl" } else { "fuzzer" };
    let (scope, subresource) = match (flags >> 2) & 3 {
        0 => (Scope::Whole, ""),
        1 => (Scope::OnlyStatus, "status"),
        _ => (Scope::AllButStatus, ""),
    };
    let schema = SCHEMAS[usize::from((flags >> 4) & 7)];
    let created_by_other = flags & 0x80 != 0;

    let writer = |name| Writer {
        manager: Manager {
            name,
            api_version: "apps/v1",
            subresource,
            now: NOW,
        },
        schema,
        scope,
    };
    let me = writer(name);

    let mut live = (!live.is_null()).then_some(live);
    if created_by_other {
        if let Some(live) = &mut live {
            // A failed tracking leaves the object as it was, like the API server does.
            let _ = track_update(None, live, &writer("other"));
        }
    }
    let live = live.as_ref();

    // An update (not an apply) that replaces the live object with the configuration.
    let mut updated = config.clone();
    if track_update(live, &mut updated, &me).is_ok() {
        assert_reads_back("tracked update", &updated);
        let mut again = updated.clone();
        track_update(live, &mut again, &me).expect("an update that was tracked is tracked again");
        assert_eq!(again, updated, "tracking the same update twice differs");
    }

    let Ok(applied) = apply(live, &config, &me, force) else {
        return;
    };
    assert_reads_back("applied object", &applied);
    let reapplied = apply(Some(&applied), &config, &me, force)
        .unwrap_or_else(|err| panic!("the same configuration does not apply again: {err}"));
    assert_eq!(
        reapplied, applied,
        "applying the same configuration twice differs"
    );
});
