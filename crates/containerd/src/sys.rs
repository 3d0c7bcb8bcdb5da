//! The crate's only unsafe code: the hook that makes containerd die with k3rs.

use std::io;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Makes the child started by `command` receive SIGKILL when the thread that spawns it exits
/// (PR_SET_PDEATHSIG), and refuse to start when this process already exited between fork and
/// exec. The parent-death signal follows the spawning *thread*, not the process: spawn from a
/// thread that lives as long as the child should (see `process.rs`'s spawner thread).
pub(crate) fn kill_with_parent(command: &mut tokio::process::Command) {
    let parent = Pid::this();
    let hook = move || -> io::Result<()> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
        // The parent may have died before the prctl: then no signal would ever come.
        if nix::unistd::getppid() != parent {
            return Err(io::Error::from(nix::errno::Errno::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe calls
    // are allowed: it makes two syscalls (prctl, getppid) and builds an `io::Error` from a raw
    // errno, none of which allocates or takes a lock.
    unsafe {
        command.pre_exec(hook);
    }
}
