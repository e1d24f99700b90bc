//! The layering is a rule the code keeps: within each crate, a top-level module names only
//! modules below it in the pipeline order below (so there is no import cycle either), and the
//! core crate depends on no system, threading or CLI crate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each crate's top-level modules, lowest first. A module may name those before it.
const ORDER: [(&str, &[&str]); 3] = [
    (
        "crates/core/src",
        &["units", "decode", "schema", "flow", "metrics"],
    ),
    (
        "crates/io/src",
        &[
            "sys", "capture", "transmit", "dispatch", "flow", "sink", "pipeline",
        ],
    ),
    ("src", &["config", "gen", "view", "cli"]),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source file names through `crate::` paths (comments left out).
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
            rest = after;
        }
        // `use crate::{a, b::c}` names several.
        if let Some(group) = code.split("crate::{").nth(1) {
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        }
    }
    names
}

#[test]
fn every_module_names_only_modules_below_it() {
    let mut violations = Vec::new();
    for (root, order) in ORDER {
        let root = repo().join(root);
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for file in files {
            let rel = file.strip_prefix(&root).expect("under the root");
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("")
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let rank = order
                .iter()
                .position(|m| *m == top)
                .unwrap_or_else(|| panic!("{}: module `{top}` is not in ORDER", file.display()));
            let text = std::fs::read_to_string(&file).expect("read source");
            for name in named_modules(&text) {
                let Some(other) = order.iter().position(|m| *m == name) else {
                    continue;
                };
                if other > rank {
                    violations.push(format!("{} names `{name}`", file.display()));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports pointing up:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_core_depends_on_no_system_threading_or_cli_crate() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "tcpulse-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(repo())
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(crates.contains("tcpulse-core"), "{tree}");
    for banned in [
        "libc",
        "clap",
        "crossbeam-channel",
        "xsk-rs",
        "libxdp-sys",
        "memmap2",
    ] {
        assert!(
            !crates.contains(banned),
            "tcpulse-core depends on {banned}:\n{tree}"
        );
    }
}
