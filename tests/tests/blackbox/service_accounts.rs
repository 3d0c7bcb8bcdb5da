//! ServiceAccount admission with real kubectl: a pod runs as `default`, every container mounts
//! the projected `kube-api-access-*` volume (bound token, cluster CA, namespace) unless the
//! account turns automounting off, and a pod naming a missing account is refused with 403.

use anyhow::{ensure, Result};
use k3rs_tests::{kubectls, K3rsServer};

#[test]
fn pods_run_as_a_service_account_with_its_token_projected() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let kubectl = kubectls().pop().expect("a kubectl");
    kubectl.ok(&server, &["create", "namespace", "sa"])?;
    server.wait_for_default_service_account("sa")?;
    kubectl.ok(&server, &["-n", "sa", "run", "web", "--image=nginx"])?;
    let get = |pod: &str, path: &str| {
        kubectl.ok(
            &server,
            &[
                "-n",
                "sa",
                "get",
                "pod",
                pod,
                "-o",
                &format!("jsonpath={path}"),
            ],
        )
    };
    ensure!(get("web", "{.spec.serviceAccountName}")? == "default");
    let volume = get("web", "{.spec.volumes[0].name}")?;
    ensure!(volume.starts_with("kube-api-access-"), "{volume}");
    let sources = get(
        "web",
        "{.spec.volumes[0].projected.sources[0].serviceAccountToken.path} \
         {.spec.volumes[0].projected.sources[1].configMap.name} \
         {.spec.volumes[0].projected.sources[2].downwardAPI.items[0].fieldRef.fieldPath}",
    )?;
    ensure!(
        sources == "token kube-root-ca.crt metadata.namespace",
        "{sources}"
    );
    let mount = get(
        "web",
        "{.spec.containers[0].volumeMounts[0].name} {.spec.containers[0].volumeMounts[0].mountPath}",
    )?;
    ensure!(
        mount == format!("{volume} /var/run/secrets/kubernetes.io/serviceaccount"),
        "{mount}"
    );

    // An account that does not automount: no volume.
    kubectl.run_with_input(
        &server,
        &["-n", "sa", "apply", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: quiet}\nautomountServiceAccountToken: false\n",
    )?;
    kubectl.ok(
        &server,
        &[
            "-n",
            "sa",
            "run",
            "quiet",
            "--image=nginx",
            "--overrides={\"spec\": {\"serviceAccountName\": \"quiet\"}}",
        ],
    )?;
    ensure!(get("quiet", "{.spec.volumes}")?.is_empty());

    // A missing account: refused, nothing stored.
    let (ok, _, err) = kubectl.run(
        &server,
        &[
            "-n",
            "sa",
            "run",
            "lost",
            "--image=nginx",
            "--overrides={\"spec\": {\"serviceAccountName\": \"missing\"}}",
        ],
    )?;
    ensure!(!ok);
    ensure!(
        err.contains("Forbidden")
            && err.contains(
                "error looking up service account sa/missing: serviceaccount \"missing\" not found"
            ),
        "{err}"
    );
    let pods = kubectl.ok(&server, &["-n", "sa", "get", "pods", "-o", "name"])?;
    ensure!(pods.lines().count() == 2, "{pods}");
    Ok(())
}
