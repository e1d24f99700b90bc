//! Synthetic traffic with known answers: captures of many concurrent TCP connections, each
//! with the flow record a correct analysis must produce for it.
//!
//! [`Scenario`] says what to generate (see `scenario.rs` for the rules that keep every
//! connection unambiguous; `file.rs` reads one from a TOML scenario file; `flood.rs` adds a SYN
//! flood), [`write_capture`] streams it to a nanosecond Ethernet pcap and returns the [`Truth`]
//! per connection and the [`FloodTruth`] per flooded server, and [`truth_json`] turns a truth
//! into the shape of a flow record (`docs/schema.md`) with `"type": "truth"`, so the two compare
//! field by field ([`flood_truth_json`]: `"type": "truth_flood"`, docs/gen.md).

pub mod file;
pub mod flood;
pub mod frame;
pub mod scenario;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{json, Value};

use tcpulse_io::capture::pcap_writer::PcapWriter;
use tcpulse_io::transmit::{queue_of, FrameBook, Spread};

pub use flood::{Flood, FloodTruth};
pub use frame::{TcpFrame, Underlay, Wrap};
pub use scenario::{
    CloseMix, EncapMix, Feature, Generated, LatencyTruth, Rng, Scenario, Stamped, StampedFrames,
    Truth,
};

/// pcap LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;

/// The answers for one generated capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroundTruth {
    /// One per connection, in connection order.
    pub truths: Vec<Truth>,
    /// One per flooded server.
    pub floods: Vec<FloodTruth>,
    /// Frames written.
    pub frames: u64,
}

/// Generates `scenario` into a classic pcap at `path` (Ethernet, nanosecond timestamps) and
/// returns the truth for each connection, in connection order (flood truths: [`write_capture`]).
///
/// # Errors
/// Whatever creating or writing the file returns.
pub fn write_pcap(scenario: &Scenario, path: &Path) -> io::Result<Vec<Truth>> {
    write_capture(scenario, path).map(|g| g.truths)
}

/// Generates `scenario` into a classic pcap at `path` frame by frame, so memory holds only the
/// connections under way, however large the capture.
///
/// # Errors
/// Whatever creating or writing the file returns.
pub fn write_capture(scenario: &Scenario, path: &Path) -> io::Result<GroundTruth> {
    let mut stream = scenario.frames();
    let frames = write_frames(stream.by_ref(), path)?;
    let (truths, floods) = stream.into_truths();
    Ok(GroundTruth {
        truths,
        floods,
        frames,
    })
}

/// Writes frames as a classic pcap at `path` (Ethernet, nanosecond timestamps); returns how
/// many.
///
/// # Errors
/// Whatever creating or writing the file returns.
pub fn write_frames<I>(frames: I, path: &Path) -> io::Result<u64>
where
    I: IntoIterator,
    I::Item: std::borrow::Borrow<Stamped>,
{
    use std::borrow::Borrow;
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut pcap = PcapWriter::new(file, LINKTYPE_ETHERNET, true)?;
    let mut buf = Vec::with_capacity(2048);
    let mut n = 0;
    for s in frames {
        let s = s.borrow();
        buf.clear();
        s.frame.write_ethernet(&mut buf);
        pcap.write_frame(s.ts_ns, &buf)?;
        n += 1;
    }
    pcap.flush()?;
    Ok(n)
}

/// Writes one [`truth_json`] line per truth, then one [`flood_truth_json`] line per flooded
/// server.
///
/// # Errors
/// Whatever writing returns.
pub fn write_truth_lines<W: Write>(
    truths: &[Truth],
    floods: &[FloodTruth],
    mut w: W,
) -> io::Result<()> {
    for t in truths {
        serde_json::to_writer(&mut w, &truth_json(t))?;
        w.write_all(b"\n")?;
    }
    for f in floods {
        serde_json::to_writer(&mut w, &flood_truth_json(f, truths))?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// What the analysis must find on a flooded server: the flood's own figures, and the server's
/// interval counters summed over the capture (`server_totals`, legitimate connections to the
/// same server included) that do not depend on the flow table's size or timeouts. Each SYN opens
/// one flow, which ends `unanswered` (no reply; also counted in `unanswered_syn`), `capture_end`
/// (answered), or `evicted` when the table is full (docs/gen.md).
pub fn flood_truth_json(f: &FloodTruth, truths: &[Truth]) -> Value {
    let legit = truths.iter().filter(|t| t.server == f.server);
    let (mut flows, mut syn, mut synack, mut handshakes, mut refused, mut unanswered) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for t in legit {
        flows += 1;
        syn += u64::from(t.syn.0);
        synack += u64::from(t.syn.1);
        handshakes += u64::from(t.total_ns.is_some());
        refused += u64::from(t.close == "refused");
        unanswered += u64::from(t.close == "unanswered");
    }
    json!({
        "type": "truth_flood",
        "server": f.server.to_string(),
        "syns": f.syns,
        "answered": f.answered,
        "unanswered": f.unanswered,
        "flows": f.syns,
        "first_ns": f.first_ns,
        "last_ns": f.last_ns,
        "server_totals": {
            "syn": f.syns + syn,
            "synack": f.answered + synack,
            "handshakes": handshakes,
            "rst_to_syn": refused,
            "new_flows": f.syns + flows,
            "legit_flows": flows,
            "legit_unanswered": unanswered,
        },
    })
}

/// A truth in the shape of a flow record, `"type": "truth"`. Every field but `type` has the
/// name, unit and meaning of the flow record's field of that name.
pub fn truth_json(t: &Truth) -> Value {
    let per = |p: (u64, u64)| json!({ "c2s": p.0, "s2c": p.1 });
    let per32 = |p: (u32, u32)| per((u64::from(p.0), u64::from(p.1)));
    let mut v = json!({
        "type": "truth",
        "client": t.client.to_string(),
        "server": t.server.to_string(),
        "roles_guessed": false,
        "first_ns": t.first_ns,
        "last_ns": t.last_ns,
        "handshake": {
            "syn_synack_ns": t.syn_synack_ns,
            "synack_ack_ns": t.synack_ack_ns,
            "total_ns": t.total_ns,
            "syn_retransmits": t.syn_retransmits,
            "synack_retransmits": t.synack_retransmits,
        },
        "packets": per(t.packets),
        "payload_bytes": per(t.payload_bytes),
        "retransmits": per32(t.retransmits),
        "fast_retransmits": per32(t.fast_retransmits),
        "spurious_retransmits": per32(t.spurious_retransmits),
        "out_of_order": per32(t.out_of_order),
        "dup_acks": per32(t.dup_acks),
        "zero_window": per32(t.zero_window),
        "zero_window_probes": per32(t.zero_window_probes),
        "syn": per32(t.syn),
        "fin": per32(t.fin),
        "rst": per32(t.rst),
        "fin_first": t.fin_first,
        "half_closed_stall": false,
        "close": t.close,
        "rtt": rtt_json(&t.latency),
        "response": response_json(&t.latency.response),
    });
    if let Some((id, outer)) = t.wrap.as_ref().and_then(Wrap::tunnel) {
        let mut tunnel = json!({
            "kind": t.wrap.as_ref().map(Wrap::name),
            "outer_src": outer.src.to_string(),
            "outer_dst": outer.dst.to_string(),
        });
        if let Some(id) = id {
            tunnel["id"] = json!(id);
        }
        v["tunnel"] = tunnel;
    }
    v
}

/// Whether a flow record's field `got` equals the truth's `want`: exactly, but for latency
/// medians (`p50_ns`), which the record takes from a log histogram, within 12.5 % of the
/// truth's exact lower median (docs/schema.md).
pub fn field_matches(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len()
                && w.iter().all(|(k, wv)| match (k.as_str(), g.get(k)) {
                    ("p50_ns", Some(gv)) => match (gv.as_u64(), wv.as_u64()) {
                        (Some(g), Some(w)) => g.abs_diff(w) * 8 <= w,
                        _ => gv == wv,
                    },
                    (_, Some(gv)) => field_matches(gv, wv),
                    (_, None) => false,
                })
        }
        _ => got == want,
    }
}

/// `{samples, min_ns, p50_ns, max_ns}` of `samples`, `p50_ns` the exact lower median (the
/// flow record's is a log bucket's middle, within 12.5 % of it: docs/schema.md).
fn summary_json(samples: &[u64]) -> Value {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    json!({
        "samples": sorted.len(),
        "min_ns": sorted.first(),
        "p50_ns": sorted.get(sorted.len().saturating_sub(1) / 2),
        "max_ns": sorted.last(),
    })
}

/// The flow record's `rtt`: `null` without any sample.
fn rtt_json(l: &LatencyTruth) -> Value {
    let source = match (l.from_timestamps, l.from_seq_ack) {
        (true, true) => "both",
        (true, false) => "timestamps",
        (false, true) => "seq_ack",
        (false, false) => return Value::Null,
    };
    json!({
        "server_leg": summary_json(&l.server_leg),
        "client_leg": summary_json(&l.client_leg),
        "source": source,
    })
}

/// The flow record's `response`: `null` without a completed turn.
fn response_json(turns: &[u64]) -> Value {
    if turns.is_empty() {
        return Value::Null;
    }
    let mut v = summary_json(turns);
    let map = v.as_object_mut().expect("an object");
    let n = map.remove("samples").expect("samples");
    map.insert("turns".into(), n);
    v
}

/// Serialises `frames` (in time order) as Ethernet frames for sending, each assigned one of
/// `queues` TX queues by `spread`.
pub fn frame_book(frames: &[Stamped], queues: u16, spread: Spread) -> FrameBook {
    let mut book = FrameBook::default();
    let mut one = Vec::with_capacity(2048);
    for s in frames {
        one.clear();
        s.frame.write_ethernet(&mut one);
        let (src, dst) = ((s.frame.src, s.frame.sport), (s.frame.dst, s.frame.dport));
        book.push(s.ts_ns, &one, queue_of(src, dst, queues, spread));
    }
    book
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcpulse_io::capture::pcap_file::CaptureFile;

    #[test]
    fn pcap_reads_back_frame_for_frame() {
        let sc = Scenario::mixed(21, 40);
        let path =
            std::env::temp_dir().join(format!("tcpulse-gen-unit-{}.pcap", std::process::id()));
        let written = write_capture(&sc, &path).unwrap();
        let generated = sc.generate();
        assert_eq!(written.truths, generated.truths);
        assert_eq!(written.frames, generated.frames.len() as u64);
        let file = CaptureFile::open(&path).unwrap();
        let mut n = 0;
        let mut buf = Vec::new();
        for (frame, s) in file.frames().zip(&generated.frames) {
            let frame = frame.unwrap();
            buf.clear();
            s.frame.write_ethernet(&mut buf);
            assert_eq!((frame.ts_ns, frame.data), (s.ts_ns, &buf[..]));
            n += 1;
        }
        assert_eq!(n, generated.frames.len());
        assert_eq!(file.frames().count(), n);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn truth_json_has_the_flow_record_shape() {
        let t = &Scenario::default().generate().truths[0];
        let v = truth_json(t);
        assert_eq!(v["type"], "truth");
        assert_eq!(v["client"], t.client.to_string());
        assert_eq!(v["handshake"]["total_ns"], t.total_ns.unwrap());
        assert_eq!(v["packets"]["s2c"], t.packets.1);
        assert_eq!(v["close"], "fin");
        assert_eq!(v["fin_first"], "client");
        let mut out = Vec::new();
        write_truth_lines(std::slice::from_ref(t), &[], &mut out).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, v);
        assert_eq!(out.last(), Some(&b'\n'));
    }

    #[test]
    fn flows_stay_on_one_queue_or_split_by_direction() {
        let g = Scenario::mixed(3, 200).generate();
        let by_flow = frame_book(&g.frames, 2, Spread::Flow);
        let by_dir = frame_book(&g.frames, 2, Spread::Direction);
        let mut flow_queue = std::collections::HashMap::new();
        let mut dir_queues = std::collections::HashMap::new();
        for (i, s) in g.frames.iter().enumerate() {
            let f = &s.frame;
            let key = if (f.src, f.sport) <= (f.dst, f.dport) {
                ((f.src, f.sport), (f.dst, f.dport))
            } else {
                ((f.dst, f.dport), (f.src, f.sport))
            };
            assert_eq!(
                *flow_queue.entry(key).or_insert(by_flow.queue(i)),
                by_flow.queue(i)
            );
            let from_low = (f.src, f.sport) == key.0;
            dir_queues
                .entry(key)
                .or_insert_with(std::collections::HashMap::new)
                .insert(from_low, by_dir.queue(i));
        }
        let used: std::collections::HashSet<u16> = flow_queue.values().copied().collect();
        assert_eq!(used.len(), 2, "flows spread over both queues");
        // A connection with frames both ways has each direction on its own queue.
        let both_ways: Vec<_> = dir_queues.values().filter(|d| d.len() == 2).collect();
        assert!(both_ways.len() > 150, "{}", both_ways.len());
        assert!(both_ways.iter().all(|d| d[&true] != d[&false]));
    }
}
