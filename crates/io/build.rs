//! Compiles the XDP program `bpf/capture.bpf.c` into `$OUT_DIR/capture.bpf.o`, which
//! `src/capture/xdp/program.rs` embeds with `include_bytes!`.
//!
//! Needs clang (any version with the BPF target; Debian 12's clang 14 works) and the libbpf and
//! kernel UAPI headers (`libbpf-dev`, `linux-libc-dev`). `CLANG` overrides the compiler.

use std::env;
use std::path::PathBuf;
use std::process::{self, Command};

const SOURCE: &str = "bpf/capture.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("capture.bpf.o");

    match Command::new(&clang).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(_) | Err(_) => fail(&format!(
            "cannot run `{clang}`: tcpulse compiles its XDP program ({SOURCE}) with clang.\n\
             Install it (Debian/Ubuntu: `apt-get install clang libbpf-dev`, or run scripts/setup), \
             or point the CLANG environment variable at a clang binary."
        )),
    }

    // The kernel UAPI headers include <asm/types.h>, which lives in the multiarch directory on
    // Debian; `-target bpf` does not know about it.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => "",
    };

    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]);
    if !multiarch.is_empty() {
        cmd.arg(format!("-I/usr/include/{multiarch}"));
    }
    cmd.arg("-c").arg(SOURCE).arg("-o").arg(&out);

    match cmd.output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => fail(&format!(
            "clang failed to compile {SOURCE}:\n{}\n\
             Missing headers? The XDP program needs libbpf-dev (bpf/bpf_helpers.h) and \
             linux-libc-dev (linux/bpf.h); scripts/setup installs both.",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => fail(&format!("cannot run `{clang}`: {e}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    process::exit(1);
}
