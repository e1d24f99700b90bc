//! `--anonymize`: no address of the capture leaves the process, the figures stay the same,
//! the mapping is the same for every worker count and for the same key, and prefixes shared by
//! real addresses stay shared. A bad key file is a clear usage error.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

fn key_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tcpulse-priv-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).expect("write key");
    path
}

/// Every IP address named in the records (servers and flow endpoints).
fn addresses(run: &common::Run) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for i in &run.intervals {
        for s in &i.servers {
            if let Ok(a) = s.server.parse::<SocketAddr>() {
                out.insert(a.ip());
            }
        }
    }
    for f in &run.flows {
        out.insert(f.client.addr.to_ip());
        out.insert(f.server.addr.to_ip());
    }
    out
}

fn common_prefix(a: IpAddr, b: IpAddr) -> Option<u32> {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Some((u32::from(a) ^ u32::from(b)).leading_zeros()),
        (IpAddr::V6(a), IpAddr::V6(b)) => Some((u128::from(a) ^ u128::from(b)).leading_zeros()),
        _ => None,
    }
}

#[test]
fn anonymised_output_names_no_real_address_and_keeps_every_figure() {
    let key = key_file("key", &[0x5a; 32]);
    // Generated: IPv4 and IPv6 clients and servers in several subnets.
    let file = std::env::temp_dir().join(format!("tcpulse-priv-{}-gen.pcap", std::process::id()));
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args(["gen", "--connections", "300", "--seed", "9", "--out"])
        .arg(&file)
        .status()
        .expect("run tcpulse gen");
    assert!(made.success());
    let _cleanup = common::TempFiles(vec![key.clone(), file.clone()]);
    let plain = common::analyze(&[&file], &[]);
    let key_arg = key.to_str().expect("utf-8 path");
    let anon = common::analyze(&[&file], &["--anonymize", key_arg]);
    let anon_w3 = common::analyze(&[&file], &["--anonymize", key_arg, "--workers", "3"]);
    assert_eq!(anon.code, 0, "{}", anon.stderr);

    let real = addresses(&plain);
    let shown = addresses(&anon);
    assert!(
        real.len() >= 4 && real.iter().any(IpAddr::is_ipv6),
        "{real:?}"
    );
    assert_eq!(
        real.len(),
        shown.len(),
        "one anonymised address per real one"
    );
    assert!(
        real.is_disjoint(&shown),
        "real addresses left: {:?}",
        real.intersection(&shown)
    );
    assert_eq!(
        anon.intervals, anon_w3.intervals,
        "the same mapping in every worker"
    );
    for name in ["packets", "syn", "handshakes", "retransmits", "rst", "fin"] {
        assert_eq!(plain.tcp_total(name), anon.tcp_total(name), "{name}");
    }

    // Flows pair up by their times and packet counts; each pair's addresses keep the
    // prefix relations of the real ones.
    let by_shape = |run: &common::Run| -> BTreeMap<String, (IpAddr, IpAddr)> {
        run.flows
            .iter()
            .map(|f| {
                let shape = format!("{} {} {:?}", f.first_ns, f.last_ns, f.packets);
                (shape, (f.client.addr.to_ip(), f.server.addr.to_ip()))
            })
            .collect()
    };
    let (p, a) = (by_shape(&plain), by_shape(&anon));
    let mut pairs = Vec::new();
    for (shape, real) in &p {
        if let Some(masked) = a.get(shape) {
            pairs.push((real.0, masked.0));
            pairs.push((real.1, masked.1));
        }
    }
    assert!(pairs.len() >= 400, "{} pairs", pairs.len());
    for &(r1, m1) in &pairs {
        for &(r2, m2) in &pairs {
            assert_eq!(common_prefix(r1, r2), common_prefix(m1, m2), "{r1} {r2}");
        }
    }
}

#[test]
fn a_bad_key_file_is_a_usage_error() {
    let short = key_file("short", b"too short");
    let _cleanup = common::TempFiles(vec![short.clone()]);
    let file = common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng");
    let run = common::analyze(&[&file], &["--anonymize", short.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("32 bytes or 64 hex digits"),
        "{}",
        run.stderr
    );
    assert!(run.intervals.is_empty(), "nothing written without the key");
}
