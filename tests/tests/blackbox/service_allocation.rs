//! ClusterIP and NodePort allocation with real kubectl (1.33 and 1.37): a deleted Service gives
//! its address and ports back (also through namespace deletion and type changes), a taken one is
//! refused in upstream's words without changing anything, and a record a crash left behind is
//! repaired when the server starts.

use std::time::Duration;

use anyhow::{ensure, Result};
use k3rs_tests::{eventually, with_each_kubectl, K3rsServer, Kubectl};

fn service(name: &str, namespace: &str, ip: &str, node_port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  type: NodePort
  clusterIP: {ip}
  selector: {{app: {name}}}
  ports: [{{port: 80, nodePort: {node_port}}}]
"#
    )
}

fn create(kubectl: &Kubectl, server: &K3rsServer, manifest: &str) -> Result<(bool, String)> {
    let (ok, out, err) = kubectl.run_with_input(server, &["create", "-f", "-"], manifest)?;
    Ok((ok, format!("{out}{err}")))
}

fn created(kubectl: &Kubectl, server: &K3rsServer, manifest: &str) -> Result<()> {
    let (ok, out) = create(kubectl, server, manifest)?;
    ensure!(ok, "create failed: {out}");
    Ok(())
}

fn field(kubectl: &Kubectl, server: &K3rsServer, name: &str, path: &str) -> Result<String> {
    kubectl.ok(
        server,
        &["get", "service", name, "-o", &format!("jsonpath={path}")],
    )
}

#[test]
fn deleted_and_changed_services_give_their_address_and_ports_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let v = kubectl.version.replace("1.", "");
        let ip = format!("10.43.{v}.10");
        let port: u16 = format!("30{v}0").parse()?;
        let tag = format!("v{v}");

        // Create, delete, create again with the same address and port.
        created(
            kubectl,
            server,
            &service(&format!("a-{tag}"), "default", &ip, port),
        )?;
        kubectl.ok(server, &["delete", "service", &format!("a-{tag}")])?;
        created(
            kubectl,
            server,
            &service(&format!("b-{tag}"), "default", &ip, port),
        )?;

        // Taken: upstream's refusals, and nothing is written.
        let (ok, out) = create(
            kubectl,
            server,
            &service(&format!("c-{tag}"), "default", &ip, port + 1),
        )?;
        ensure!(!ok, "a second Service got {ip}");
        let wanted = format!(
            "The Service \"c-{tag}\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        );
        ensure!(out.contains(&wanted), "{out}\nwanted: {wanted}");
        let other_ip = format!("10.43.{v}.11");
        let (ok, out) = create(
            kubectl,
            server,
            &service(&format!("c-{tag}"), "default", &other_ip, port),
        )?;
        ensure!(!ok, "a second Service got port {port}");
        ensure!(
            out.contains(&format!(
                "spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
            )),
            "{out}"
        );
        // The failed creates claimed nothing: both values are free for the next one.
        created(
            kubectl,
            server,
            &service(&format!("c-{tag}"), "default", &other_ip, port + 1),
        )?;

        // NodePort → ClusterIP gives the port back (kubectl patch keeps the nodePort in the
        // body; upstream drops it because the new type does not use it).
        kubectl.ok(
            server,
            &[
                "patch",
                "service",
                &format!("b-{tag}"),
                "-p",
                r#"{"spec":{"type":"ClusterIP"}}"#,
            ],
        )?;
        ensure!(field(
            kubectl,
            server,
            &format!("b-{tag}"),
            "{.spec.ports[0].nodePort}"
        )?
        .is_empty());
        created(
            kubectl,
            server,
            &service(
                &format!("d-{tag}"),
                "default",
                &format!("10.43.{v}.12"),
                port,
            ),
        )?;

        // → ExternalName gives the address back.
        kubectl.ok(
            server,
            &[
                "patch",
                "service",
                &format!("b-{tag}"),
                "-p",
                r#"{"spec":{"type":"ExternalName","externalName":"db.example.com"}}"#,
            ],
        )?;
        ensure!(field(kubectl, server, &format!("b-{tag}"), "{.spec.clusterIP}")?.is_empty());
        created(
            kubectl,
            server,
            &service(&format!("e-{tag}"), "default", &ip, port + 2),
        )?;

        // Deleting the namespace deletes its Services, which give their values back.
        let ns = format!("alloc-{tag}");
        kubectl.ok(server, &["create", "namespace", &ns])?;
        let held_ip = format!("10.43.{v}.13");
        created(kubectl, server, &service("f", &ns, &held_ip, port + 3))?;
        kubectl.ok(server, &["delete", "namespace", &ns, "--timeout=60s"])?;
        created(
            kubectl,
            server,
            &service(&format!("f-{tag}"), "default", &held_ip, port + 3),
        )?;
        Ok(())
    });
}

/// What a `kill -9` between a claim and its Service write leaves: an address record nothing
/// holds. The server repairs it at start; until then the address is taken.
#[test]
fn a_leaked_address_is_repaired_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = K3rsServer::start(dir.path()).unwrap();
    let kubectls = k3rs_tests::kubectls();
    let kubectl = &kubectls[0];
    let leaked = r#"
apiVersion: networking.k8s.io/v1
kind: IPAddress
metadata:
  name: 10.43.99.9
  labels:
    ipaddress.kubernetes.io/ip-family: IPv4
    ipaddress.kubernetes.io/managed-by: ipallocator.k3rs.io
spec:
  parentRef: {group: "", resource: services, namespace: default, name: crashed}
"#;
    created(kubectl, &server, leaked).unwrap();
    let (ok, out) = create(
        kubectl,
        &server,
        &service("after", "default", "10.43.99.9", 31999),
    )
    .unwrap();
    assert!(
        !ok && out.contains("provided IP is already allocated"),
        "{out}"
    );
    server.restart().unwrap();
    let (found, _, _) = kubectl
        .run(&server, &["get", "ipaddress", "10.43.99.9"])
        .unwrap();
    assert!(!found, "the leaked record survived the restart");
    created(
        kubectl,
        &server,
        &service("after", "default", "10.43.99.9", 31999),
    )
    .unwrap();
    // The new Service's own record is there, and survives the next restart.
    server.restart().unwrap();
    let owner = eventually(Duration::from_secs(10), || {
        kubectl
            .ok(
                &server,
                &[
                    "get",
                    "ipaddress",
                    "10.43.99.9",
                    "-o",
                    "jsonpath={.spec.parentRef.name}",
                ],
            )
            .ok()
    });
    assert_eq!(owner.as_deref(), Some("after"));
}
