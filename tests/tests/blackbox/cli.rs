//! The command line without a running server: version, help, unknown flags, bad config files.

use k3rs_tests::run_k3rs;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_flag_prints_the_version() {
    let output = run_k3rs(["--version"]).unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), format!("k3rs {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_the_server_and_its_flags() {
    let output = run_k3rs(["--help"]).unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("server"));

    let output = run_k3rs(["server", "--help"]).unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--data-dir",
        "--config",
        "--https-listen-port",
        "--bind-address",
        "--node-ip",
        "--node-name",
        "--tls-san",
        "--service-cidr",
        "--write-kubeconfig",
        "--write-kubeconfig-mode",
        "--etcd-compaction-interval",
        "--store-compaction-retention",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn unknown_and_unimplemented_flags_exit_2() {
    for flag in [
        "--no-such-flag",
        "--kube-controller-manager-arg=terminated-pod-gc-threshold=10",
        "--disable=traefik",
        "--token=secret",
        "--server=https://example:6443",
        "--datastore-endpoint=http://etcd:2379",
    ] {
        let output = run_k3rs(["server", "--disable-agent", flag]).unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag}: {}", stderr(&output));
        let name = flag.split('=').next().unwrap();
        assert!(
            stderr(&output).contains(name),
            "{flag}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_bad_config_key_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("cluster-dns: not-an-ip\n", "cluster-dns"),
        ("disable-agent: maybe\n", "disable-agent"),
        (
            "kube-controller-manager-arg: [node-monitor-period=never]\n",
            "kube-controller-manager-arg",
        ),
        ("https-listen-port: not-a-port\n", "https-listen-port"),
        ("tls-san: {a: b}\n", "tls-san"),
        ("write-kubeconfig-mode: \"0999\"\n", "write-kubeconfig-mode"),
    ] {
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, text).unwrap();
        let data_dir = dir.path().join("data");
        // `--disable-agent`: were a case to start a server by mistake, no node side on the
        // host's own network.
        let output = run_k3rs([
            "server".as_ref(),
            "--disable-agent".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
        ])
        .unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!data_dir.exists(), "nothing is created for a bad config");
    }
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let output = run_k3rs(["server".as_ref(), "-c".as_ref(), missing.as_os_str()]).unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("nope.yaml"), "{}", stderr(&output));
}

/// `k3rs check-config` passes on a machine with the node's dependencies (CI installs them)
/// and fails, naming what is missing, when the binaries cannot be found.
#[test]
fn check_config_reports_what_the_node_needs() {
    let output = run_k3rs(["check-config"]).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping the passing half: not root");
    } else {
        assert!(output.status.success(), "{stdout}{}", stderr(&output));
        assert!(
            stdout.contains("  - containerd: ok: containerd "),
            "{stdout}"
        );
        assert!(stdout.contains("  - CNI plugins: ok: "), "{stdout}");
        assert!(stdout.contains("  - memory controller: ok"), "{stdout}");
        assert!(
            stdout.contains("\nSTATUS: pass (0 required missing"),
            "{stdout}"
        );
    }

    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(k3rs_tests::k3rs_bin())
        .arg("check-config")
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("  - containerd: MISSING: not found on PATH"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  - runc: MISSING: not found on PATH"),
        "{stdout}"
    );
    assert!(stdout.contains("\nSTATUS: fail ("), "{stdout}");
}
