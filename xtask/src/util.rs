//! Helpers shared by xtask subcommands: locating the workspace, running commands.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Runs `cmd`, echoing it first, and fails if it exits unsuccessfully.
pub(crate) fn run_cmd(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", describe(cmd));
    }
    Ok(())
}

/// A printable form of a command line.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Whether this process runs with effective uid 0.
///
/// Read from `/proc/self/status` so that xtask needs neither libc nor `unsafe` for it.
pub(crate) fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        // The fields are real, effective, saved and filesystem uid.
        .and_then(|uids| uids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// The full path of `program` if it is an executable file somewhere on `PATH`.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `program` is an executable on `PATH`.
pub(crate) fn command_exists(program: &str) -> bool {
    find_on_path(program).is_some()
}

/// A `cargo` command: the cargo that runs xtask (`$CARGO`), started in the workspace root, in
/// the environment the user's own `cargo` would see (see [`scrub_cargo_run_environment`]).
pub(crate) fn cargo() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    scrub_cargo_run_environment(&mut cmd, env::vars_os());
    cmd
}

/// Removes from `cmd` what `cargo run` added to xtask's own environment, so that a cargo started
/// by xtask computes the same fingerprints as the user's `cargo build` and reuses its build.
///
/// `cargo run` hands the program it runs `CARGO_MANIFEST_DIR`, `CARGO_MANIFEST_PATH`, the
/// `CARGO_PKG_*` set and its own library directories prepended to `LD_LIBRARY_PATH`. A build
/// script that declares `cargo:rerun-if-env-changed` on one of them is rerun when its value
/// differs from the last build's: ring's does so for `CARGO_MANIFEST_DIR`
/// (`CARGO_LOG=cargo::core::compiler::fingerprint=info` shows `EnvVarChanged { name:
/// "CARGO_MANIFEST_DIR", old_value: None, new_value: Some(".../xtask") }`), and from ring up
/// rustls, rcgen, kube and every crate of ours were rebuilt, each time `cargo xtask up` and
/// `cargo build --release -p k3rs` took turns. `RUSTUP_TOOLCHAIN` and the other rustup
/// variables stay: the rustup proxy sets the same for a `cargo` typed in a shell.
fn scrub_cargo_run_environment(
    cmd: &mut Command,
    environment: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) {
    const SET_BY_CARGO_RUN: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    // Directories `cargo run` prepends to the library path: the profile directory xtask was
    // built into (and its `deps`), and the toolchain's sysroot (two levels above `$CARGO`).
    let own_profile_dir = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from));
    let sysroot = env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| cargo.parent()?.parent().map(PathBuf::from));
    let added_by_cargo = |dir: &std::path::Path| {
        own_profile_dir
            .as_deref()
            .is_some_and(|own| dir.starts_with(own))
            || sysroot.as_deref().is_some_and(|root| dir.starts_with(root))
    };
    for (name, value) in environment {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if SET_BY_CARGO_RUN.contains(&name_str) || name_str.starts_with("CARGO_PKG_") {
            cmd.env_remove(&name);
        } else if name_str == "LD_LIBRARY_PATH" {
            let kept: Vec<PathBuf> = env::split_paths(&value)
                .filter(|dir| !added_by_cargo(dir))
                .collect();
            if kept.is_empty() {
                cmd.env_remove(&name);
            } else if let Ok(joined) = env::join_paths(kept) {
                cmd.env(&name, joined);
            }
        }
    }
}

/// `cargo metadata --no-deps` for this workspace, parsed.
pub(crate) fn cargo_metadata() -> Result<serde_json::Value> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("parsing cargo metadata output")
}

/// Cargo's target directory for this workspace (honours `CARGO_TARGET_DIR` and config files).
pub(crate) fn target_dir() -> Result<PathBuf> {
    let metadata = cargo_metadata()?;
    let dir = metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .context("cargo metadata output has no target_directory")?;
    Ok(PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child_environment(cmd: &Command) -> Vec<(String, Option<String>)> {
        cmd.get_envs()
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.map(|value| value.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn cargo_run_variables_are_removed_and_others_kept() {
        let mut cmd = Command::new("cargo");
        let environment = [
            ("CARGO_MANIFEST_DIR", "/src/xtask"),
            ("CARGO_PKG_NAME", "xtask"),
            ("CARGO_PKG_VERSION_MAJOR", "0"),
            ("RUSTUP_TOOLCHAIN", "stable-x86_64-unknown-linux-gnu"),
            ("CARGO_TARGET_DIR", "/tmp/target"),
            ("PATH", "/usr/bin"),
        ]
        .map(|(name, value)| (name.into(), value.into()));
        scrub_cargo_run_environment(&mut cmd, environment);
        let mut changed = child_environment(&cmd);
        changed.sort();
        assert_eq!(
            changed,
            [
                ("CARGO_MANIFEST_DIR".to_owned(), None),
                ("CARGO_PKG_NAME".to_owned(), None),
                ("CARGO_PKG_VERSION_MAJOR".to_owned(), None),
            ]
        );
    }

    #[test]
    fn library_path_loses_only_the_directories_cargo_run_added() {
        let own_profile_dir = env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .expect("the test binary has a directory");
        let users = PathBuf::from("/opt/users/lib");
        let value =
            env::join_paths([own_profile_dir.join("deps"), users.clone()]).expect("joinable paths");
        let mut cmd = Command::new("cargo");
        scrub_cargo_run_environment(&mut cmd, [("LD_LIBRARY_PATH".into(), value)]);
        assert_eq!(
            child_environment(&cmd),
            [(
                "LD_LIBRARY_PATH".to_owned(),
                Some(users.to_string_lossy().into_owned())
            )]
        );

        let mut cmd = Command::new("cargo");
        let only_cargos = env::join_paths([own_profile_dir]).expect("joinable path");
        scrub_cargo_run_environment(&mut cmd, [("LD_LIBRARY_PATH".into(), only_cargos)]);
        assert_eq!(
            child_environment(&cmd),
            [("LD_LIBRARY_PATH".to_owned(), None)]
        );
    }
}
