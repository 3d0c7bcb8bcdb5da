//! The Python `kubernetes` client (installed by `cargo xtask deps`) against the real binary:
//! watch with bookmarks from a list's resourceVersion, and a CRD round trip with custom objects.

use std::process::Command;

use anyhow::Result;
use k3rs_tests::K3rsServer;

#[test]
fn python_client_watches_and_round_trips_a_crd() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("client_roundtrip.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&server.kubeconfig)
        .arg("python-client")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "python client failed ({}):\n{stdout}\n{}\nserver log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        server.log_text()
    );
    Ok(())
}
