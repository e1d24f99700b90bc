//! Prints tcpulse's per-segment analysis verdicts for a capture, one line per TCP segment, to
//! compare with `tshark -T fields -e frame.number -e tcp.analysis.flags`.
//!
//! Usage: cargo run --release --example verdicts -- FILE [PORT]

use tcpulse_core::decode::{decode_frame, LinkType};
use tcpulse_core::flow::seq_analysis::verdict as v;
use tcpulse_core::flow::{Engine, FlowConfig};
use tcpulse_io::capture::CaptureFile;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: verdicts FILE [PORT]");
        std::process::exit(2);
    };
    let port: Option<u16> = args.next().and_then(|p| p.parse().ok());
    let file = CaptureFile::open(path.as_ref()).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let mut engine = Engine::new(FlowConfig {
        capacity: 1 << 16,
        ..FlowConfig::default()
    });
    let names = [
        (v::RETRANSMISSION, "retrans"),
        (v::FAST_RETRANSMISSION, "fast"),
        (v::SPURIOUS_RETRANSMISSION, "spurious"),
        (v::OUT_OF_ORDER, "ooo"),
        (v::DUP_ACK, "dupack"),
        (v::ZERO_WINDOW, "zwin"),
        (v::ZERO_WINDOW_PROBE, "zwp"),
        (v::ZERO_WINDOW_PROBE_ACK, "zwp_ack"),
        (v::KEEP_ALIVE, "keepalive"),
        (v::KEEP_ALIVE_ACK, "keepalive_ack"),
        (v::WINDOW_UPDATE, "winupdate"),
        (v::LOST_SEGMENT, "lost"),
        (v::ACKED_UNSEEN, "acked_unseen"),
    ];
    for (n, frame) in file.frames().enumerate() {
        let Ok(frame) = frame else { break };
        let Some(link) = LinkType::from_linktype(frame.link_type) else {
            continue;
        };
        let Ok(rec) = decode_frame(link, frame.data, frame.wire_len, frame.ts_ns) else {
            continue;
        };
        let verdict = engine.on_packet(&rec);
        if port.is_some_and(|p| rec.sport != p && rec.dport != p) {
            continue;
        }
        let flags: Vec<_> = names
            .iter()
            .filter(|(b, _)| verdict & b != 0)
            .map(|(_, n)| *n)
            .collect();
        println!(
            "{}\t{}:{} > {}:{}\tflags={:#04x} seq={} ack={} len={} win={}\t{}",
            n + 1,
            rec.src.to_ip(),
            rec.sport,
            rec.dst.to_ip(),
            rec.dport,
            rec.flags,
            rec.seq,
            rec.ack,
            rec.payload_len,
            rec.window,
            flags.join(",")
        );
    }
}
