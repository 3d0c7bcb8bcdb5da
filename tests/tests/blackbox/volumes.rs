//! Static PersistentVolume binding with real kubectl: a claim binds to the smallest volume that
//! fits, or to the one it names; a claim nothing fits stays Pending with an event; a released
//! volume is kept (Retain) or deleted (Delete).

use std::time::Duration;

use k3rs_tests::{eventually, kubectls, K3rsServer};

const MANIFESTS: &str = r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: small}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/k3rs-test-small}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: large}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  hostPath: {path: /tmp/k3rs-test-large}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: named}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/k3rs-test-named}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pinned, namespace: default}
spec:
  storageClassName: ""
  volumeName: named
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: huge, namespace: default}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 50Gi}}
"#;

#[test]
fn claims_bind_to_volumes_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let kubectl = kubectls().pop().unwrap();
    let get = |args: &[&str]| kubectl.ok(&server, args).unwrap_or_default();
    let (ok, _, err) = kubectl
        .run_with_input(&server, &["apply", "-f", "-"], MANIFESTS)
        .unwrap();
    assert!(ok, "{err}");
    let bound = eventually(Duration::from_secs(30), || {
        let phases = get(&[
            "get",
            "pvc",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.phase}:{.spec.volumeName} {end}",
        ]);
        (phases.trim() == "data=Bound:large huge=Pending: pinned=Bound:named").then_some(())
    });
    assert!(
        bound.is_some(),
        "claims: {}\nserver log:\n{}",
        get(&["get", "pvc", "-o", "wide"]),
        server.log_text()
    );
    let volumes = get(&[
        "get",
        "pv",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.phase}:{.spec.claimRef.name} {end}",
    ]);
    assert_eq!(
        volumes.trim(),
        "large=Bound:data named=Bound:pinned small=Available:"
    );
    let capacity = get(&[
        "get",
        "pvc",
        "data",
        "-o",
        "jsonpath={.status.capacity.storage}",
    ]);
    assert_eq!(capacity, "5Gi");
    let events = get(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=huge",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("no persistent volumes available for this claim"),
        "{events}"
    );

    // Released: Retain keeps the volume, Delete removes it.
    get(&["delete", "pvc", "pinned", "data"]);
    let released = eventually(Duration::from_secs(30), || {
        let volumes = get(&[
            "get",
            "pv",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}",
        ]);
        (volumes.trim() == "named=Released small=Available").then_some(())
    });
    assert!(released.is_some(), "{}", get(&["get", "pv"]));
}
