//! Build script: compiles `rootfs/pause/pause.c` into the freestanding static `pause` program
//! that `pause.rs` embeds, with the C compiler the `cc` crate finds for the target.

use std::env;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let source = manifest_dir.join("../../rootfs/pause/pause.c");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("pause");
    println!("cargo:rerun-if-changed={}", source.display());

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" && arch != "aarch64" {
        println!("cargo:warning=the pause program is written for x86_64 and aarch64, not {arch}");
        return ExitCode::FAILURE;
    }

    // The build's own profile must not matter: `cc` gets fixed settings (no debug info, no
    // forced frame pointers, `-Os`, no PIC), the flags below come last and win, and the result is
    // stripped, so debug and release builds embed the same bytes.
    let mut compiler = cc::Build::new()
        .cargo_metadata(false)
        .debug(false)
        .force_frame_pointer(false)
        .opt_level_str("s")
        .pic(false)
        .get_compiler()
        .to_command();
    compiler
        .args([
            "-Os",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-pic",
            "-fno-pie",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-fno-ident",
            "-g0",
            "-Wall",
            "-Wextra",
            "-nostdlib",
            "-static",
            "-no-pie",
            // Deterministic output: no build id (a hash that would still be stable, but says
            // nothing), no symbols or debug info with the build's paths.
            "-Wl,--build-id=none",
            "-Wl,-z,noexecstack",
            "-Wl,--gc-sections",
            "-s",
            "-o",
        ])
        .arg(&out)
        .arg(&source);
    match compiler.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            println!(
                "cargo:warning=compiling {} failed: {status}",
                source.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            println!(
                "cargo:warning=running the C compiler {:?} for {}: {err}",
                compiler.get_program(),
                source.display()
            );
            ExitCode::FAILURE
        }
    }
}
