//! Running `iptables-save` and `iptables-restore` (whichever backend, nft or legacy, the host's
//! `PATH` has) in the calling thread's network namespace, and reading what they print.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const SAVE: &str = "iptables-save";
const RESTORE: &str = "iptables-restore";

/// Seconds `iptables-restore` waits for the legacy backend's xtables lock.
const LOCK_WAIT_SECONDS: &str = "5";

/// Why `iptables-save` or `iptables-restore` failed.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    /// The program could not be started or fed.
    #[error("iptables: {step} {program}")]
    Run {
        /// The program.
        program: &'static str,
        /// What was being done.
        step: &'static str,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("iptables: {program} {args} exited with {status}: {stderr}")]
    Failed {
        /// The program.
        program: &'static str,
        /// Its arguments.
        args: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
}

/// `iptables-save -t <table>`.
pub(crate) async fn save_table(table: &str) -> Result<String, IptablesError> {
    run(SAVE, &["-t", table], None).await
}

/// `iptables-restore --noflush` of `text`: each table's block is one transaction.
pub(crate) async fn restore(text: &str) -> Result<(), IptablesError> {
    run(RESTORE, &["-w", LOCK_WAIT_SECONDS, "--noflush"], Some(text)).await?;
    Ok(())
}

/// Runs `program` with `args`, `stdin` written to it, and returns its standard output.
async fn run(
    program: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, IptablesError> {
    let failed = |step: &'static str| {
        move |source: std::io::Error| IptablesError::Run {
            program,
            step,
            source,
        }
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(failed("start"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(failed("write rules to"))?;
        drop(pipe);
    }
    let output = child.wait_with_output().await.map_err(failed("wait for"))?;
    if !output.status.success() {
        return Err(IptablesError::Failed {
            program,
            args: args.join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The rule specs (after `-A <from>`) of the rules in `saved` that jump to `chain`, with the
/// chain each is in.
pub(crate) fn jumps_to<'a>(saved: &'a str, chain: &str) -> Vec<(&'a str, &'a str)> {
    saved
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("-A ")?;
            let (from, spec) = rest.split_once(' ')?;
            let tokens: Vec<&str> = spec.split_whitespace().collect();
            let jumps = tokens
                .windows(2)
                .any(|pair| (pair[0] == "-j" || pair[0] == "-g") && pair[1] == chain);
            jumps.then_some((from, spec))
        })
        .collect()
}

/// Whether `saved` declares `chain`.
pub(crate) fn declares(saved: &str, chain: &str) -> bool {
    saved.lines().any(|line| {
        line.strip_prefix(':')
            .and_then(|rest| rest.split_whitespace().next())
            == Some(chain)
    })
}
