//! Single-core throughput of the offline pipeline's stages on a realistic mix of traffic.
//!
//! The fixture is one synthetic capture (`Scenario::mixed`: every feature on, 20 % IPv6, VLAN
//! tags, retransmissions, zero windows, all kinds of teardown), written once as a nanosecond pcap
//! under `CARGO_TARGET_TMPDIR` and memory-mapped. Each group reports elements = packets, so
//! criterion prints packets/s next to the time per pass:
//!
//! - `capture_iter`: walking the mapped pcap frame by frame.
//! - `decode`: `decode_frame` over the frames (pre-collected, so iteration is not counted).
//! - `reader`: iteration, decode and flow hash in one loop: the reader thread of
//!   `tcpulse analyze` without its batching and channels.
//! - `engine`: the records (pre-decoded, each with its flow hash as the dispatcher computes it)
//!   fed through one `Engine` the way a worker drives it: `on_packet` for each record,
//!   `on_tick` + `take_interval` at every 1 s boundary of capture time, `finish` at the end.
//!   `fresh/*` builds a new engine per pass, so the pass also pays for faulting in the table's
//!   pages (a start-up cost); `reused/*` replays the capture through one engine that has
//!   already seen it once: the steady state of a long-running monitor (table pages and server
//!   entries warm; every flow of the previous pass ended by `finish`).
//!
//! Run: `cargo bench --bench engine` (add `-- engine` to run one group).
//! Override the fixture size with `TCPULSE_BENCH_CONNECTIONS` (default 20000).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use tcpulse::gen::{scenario::Scenario, write_pcap};
use tcpulse_core::decode::{decode_frame, LinkType, PacketRecord};
use tcpulse_core::flow::{Engine, FlowConfig, FlowHasher, WorkerInterval};
use tcpulse_io::capture::{CaptureFile, Frame};

const SEED: u64 = 7;
const DEFAULT_CONNECTIONS: u32 = 20_000;
/// The interval length `tcpulse analyze` uses by default.
const INTERVAL_NS: u64 = 1_000_000_000;
/// Flows per worker with the CLI defaults (`--max-flows 1048576`, one worker).
const CAPACITY: usize = 1 << 20;

fn connections() -> u32 {
    std::env::var("TCPULSE_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONNECTIONS)
}

/// The fixture capture, generated on first use and kept between runs (same seed, same bytes).
fn fixture() -> CaptureFile {
    let n = connections();
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-mixed-s{SEED}-c{n}.pcap"));
    if !path.exists() {
        let tmp = path.with_extension("pcap.part");
        write_pcap(&Scenario::mixed(SEED, n), &tmp).expect("write the fixture capture");
        std::fs::rename(&tmp, &path).expect("move the fixture capture into place");
    }
    CaptureFile::open(&path).expect("open the fixture capture")
}

fn frames(file: &CaptureFile) -> Vec<Frame<'_>> {
    file.frames()
        .map(|f| f.expect("fixture frames are well formed"))
        .collect()
}

/// Records with their dispatcher hash, in capture order.
fn records(frames: &[Frame<'_>], hasher: &FlowHasher) -> Vec<(PacketRecord, u64)> {
    frames
        .iter()
        .filter_map(|f| {
            let link = LinkType::from_linktype(f.link_type)?;
            let rec = decode_frame(link, f.data, f.wire_len, f.ts_ns).ok()?;
            Some((rec, hasher.shard_hash(&rec)))
        })
        .collect()
}

fn config(emit_flows: bool) -> FlowConfig {
    FlowConfig {
        capacity: CAPACITY,
        emit_flows,
        ..FlowConfig::default()
    }
}

/// One worker's share of an offline run: every record, interval closes on capture time, and
/// the final flush. Intervals go out in two shares that come back emptied, as the merger
/// hands them back in the pipeline (so histograms are reused, not allocated per interval).
/// Returns the flows handed over, so the work cannot be optimised away.
fn drive(engine: &mut Engine, records: &[(PacketRecord, u64)]) -> usize {
    let mut handed_over = 0;
    let mut shares = [WorkerInterval::default(), WorkerInterval::default()];
    let mut turn = 0;
    let mut take = |engine: &mut Engine| {
        let share = &mut shares[turn % 2];
        turn += 1;
        share.empty_histograms();
        engine.take_interval_into(share);
        let flows = share.flows.len();
        share.flows.clear();
        flows
    };
    let mut interval_end = match records.first() {
        Some((r, _)) => (r.ts_ns / INTERVAL_NS + 1) * INTERVAL_NS,
        None => return 0,
    };
    for (rec, _) in records {
        while rec.ts_ns >= interval_end {
            engine.on_tick(interval_end);
            handed_over += take(engine);
            interval_end += INTERVAL_NS;
        }
        black_box(engine.on_packet(rec));
    }
    engine.finish();
    handed_over + take(engine)
}

fn benches(c: &mut Criterion) {
    let file = fixture();
    let frames = frames(&file);
    let hasher = FlowHasher::random();
    let records = records(&frames, &hasher);
    let v6 = records.iter().filter(|(r, _)| !r.src.is_v4()).count();
    eprintln!(
        "fixture: {} connections, {} frames, {} TCP records ({:.1} % IPv6), {:.1} MB; \
         load average {}",
        connections(),
        frames.len(),
        records.len(),
        100.0 * v6 as f64 / records.len().max(1) as f64,
        file.len() as f64 / 1e6,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim_end(),
    );

    let mut g = c.benchmark_group("capture_iter");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("pcap_mmap", |b| {
        b.iter(|| {
            let mut bytes = 0u64;
            for f in file.frames() {
                bytes += f.map_or(0, |f| f.data.len() as u64);
            }
            black_box(bytes)
        });
    });
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("decode_frame", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for f in &frames {
                let Some(link) = LinkType::from_linktype(f.link_type) else {
                    continue;
                };
                if let Ok(rec) = decode_frame(link, f.data, f.wire_len, f.ts_ns) {
                    black_box(&rec);
                    ok += 1;
                }
            }
            black_box(ok)
        });
    });
    g.finish();

    // The reader thread's share of `tcpulse analyze`, without batching and channels.
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("iter_decode_hash", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for f in file.frames() {
                let Ok(f) = f else { break };
                let Some(link) = LinkType::from_linktype(f.link_type) else {
                    continue;
                };
                if let Ok(rec) = decode_frame(link, f.data, f.wire_len, f.ts_ns) {
                    acc ^= hasher.shard_hash(&rec);
                }
            }
            black_box(acc)
        });
    });
    g.finish();

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(15));
    for (name, emit_flows) in [("fresh/flows_off", false), ("fresh/flows_on", true)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || Engine::new(config(emit_flows)),
                |mut engine| {
                    black_box(drive(&mut engine, &records));
                    // Returned so that freeing the table falls outside the measurement.
                    engine
                },
                BatchSize::PerIteration,
            );
        });
    }
    for (name, emit_flows) in [("reused/flows_off", false), ("reused/flows_on", true)] {
        let mut engine = Engine::new(config(emit_flows));
        drive(&mut engine, &records);
        g.bench_function(name, |b| {
            b.iter(|| black_box(drive(&mut engine, &records)));
        });
    }
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
