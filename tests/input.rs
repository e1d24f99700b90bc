//! Input conventions: `analyze -` reads standard input as it comes and writes each interval's
//! records when it closes; gzip and zstd captures (files and streams) are detected from their
//! magic number; every result equals the analysis of the plain file.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// tcpulse's output without the `source` field, which names the input.
fn without_source(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if let Some(o) = v.as_object_mut() {
            o.remove("source");
        }
        lines.push(v.to_string());
    }
    lines.join("\n")
}

fn analyze_bytes(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .arg("analyze")
        .args(args)
        .args(["--flows", "-", "--progress", "false"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tcpulse");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plain(path: &Path) -> Vec<u8> {
    let (code, out, err) = analyze_bytes(&[path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn stdin_gzip_and_zstd_equal_the_plain_file() {
    let pcaps = common::shared_pcaps();
    let tmp = |file: &str| {
        std::env::temp_dir().join(format!("tcpulse-input-{}-{file}", std::process::id()))
    };
    let files = common::TempFiles(["a.pcap.gz", "b.pcapng.zst", "c.cap"].map(tmp).to_vec());
    for name in [
        "ndpi_reddit.pcap",
        "ndpi_sites.pcapng",
        "chrissanders_tcp_retransmissions.pcapng",
    ] {
        let path = pcaps.join(name);
        let want = without_source(&plain(&path));
        let data = std::fs::read(&path).unwrap();
        let zst = zstd::encode_all(&data[..], 3).unwrap();
        let gz = gzip(&data);
        // Standard input: plain, gzip, zstd.
        for (what, bytes) in [("plain", &data), ("gzip", &gz), ("zstd", &zst)] {
            let (code, out, err) = analyze_bytes(&["-"], bytes);
            assert_eq!(code, 0, "{name} {what} on stdin: {err}");
            assert_eq!(without_source(&out), want, "{name} {what} on stdin");
        }
        // Files, whatever their names say.
        for (p, bytes) in files.0.iter().zip([&gz, &zst, &gz]) {
            let file = p.display();
            std::fs::write(p, bytes).unwrap();
            let (code, out, err) = analyze_bytes(&[p.to_str().unwrap()], &[]);
            assert_eq!(code, 0, "{name} as {file}: {err}");
            assert_eq!(without_source(&out), want, "{name} as {file}");
        }
    }
    // The shared gzip capture reads like its decompressed bytes.
    let shared = pcaps.join("encap/zeek_1000-requests-one-dropped-response.pcap.gz");
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&shared).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let (code, from_raw, err) = analyze_bytes(&["-"], &raw);
    assert_eq!(code, 0, "{err}");
    assert_eq!(without_source(&plain(&shared)), without_source(&from_raw));
}

#[test]
fn a_cut_compressed_stream_keeps_what_came_before_and_says_so() {
    let data = std::fs::read(common::shared_pcaps().join("ndpi_reddit.pcap")).unwrap();
    let gz = gzip(&data);
    let (code, out, err) = analyze_bytes(&["-"], &gz[..gz.len() / 2]);
    assert_eq!(code, 4, "exit code for damaged input: {err}");
    assert!(err.contains("standard input"), "{err}");
    let run = common::parse_output(&out, err, code);
    let packets: u64 = run.intervals.iter().map(|i| i.capture.packets).sum();
    assert!(packets > 0, "the frames before the cut were analysed");
    let (code, _, err) = analyze_bytes(&["-"], b"not a capture at all");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not a pcap or pcapng file"), "{err}");
}

/// The first interval's record arrives while standard input is still open: tcpulse reads a
/// pipe as it comes, as behind `tcpdump -w -`.
#[test]
fn records_leave_as_intervals_close_while_stdin_stays_open() {
    let data = std::fs::read(common::shared_pcaps().join("ndpi_reddit.pcap")).unwrap();
    // Classic pcap: the file header, then records of 16 bytes + captured length. Cut after
    // the first record stamped 2 s past the first: two intervals are complete by then.
    let le = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    assert_eq!(le(0), 0xa1b2_c3d4, "a little-endian microsecond pcap");
    let (mut at, first) = (24, le(24));
    while at < data.len() && le(at) < first + 2 {
        at += 16 + le(at + 8) as usize;
    }
    assert!(at < data.len(), "the capture spans more than 2 s");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args(["analyze", "-", "--progress", "false"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&data[..at + 16 + le(at + 8) as usize])
        .unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first.map(|l| l.unwrap()));
        lines.count()
    });
    // Generous: the analysis of 1,942 frames takes milliseconds; the bound only stops a
    // reader that waits for the end of input from hanging the suite.
    let first = rx.recv_timeout(Duration::from_secs(60));
    let got_first = matches!(&first, Ok(Some(line)) if line.contains("\"type\":\"interval\""));
    stdin
        .write_all(&data[at + 16 + le(at + 8) as usize..])
        .unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let rest = reader.join().unwrap();
    assert!(
        got_first,
        "no interval record before the end of input: {first:?}"
    );
    assert!(rest > 0, "the later intervals followed");
}
