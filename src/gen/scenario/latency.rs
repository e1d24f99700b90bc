//! What the latency measurement must report for one connection: its RTT samples per leg and
//! its response times, by the rules of docs/latency.md, from what the model knows and the
//! analysis has to infer — which segments are resends (Karn's rule), which reached the tap out
//! of order, and which TSval each side echoes (the model's receivers, not the frames, decide).

use super::conversation::{CLIENT, SERVER};
use tcpulse_core::decode::flags::{ACK, FIN, SYN};

/// A sample of more than this is not taken (docs/latency.md: the 4 s age limit).
const MAX_SAMPLE_NS: u64 = 4_000_000_000;

/// One segment as the latency rules read it; sequence numbers relative to the sender's ISN,
/// acknowledgment numbers to the receiver's.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timed {
    pub from: usize,
    pub ts: u64,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub len: u32,
    /// (TSval, TSecr) when the segment carries the option.
    pub timestamps: Option<(u32, u32)>,
    pub resend: bool,
    pub out_of_order: bool,
    /// A zero-window probe, whose byte the receiver does not take.
    pub probe: bool,
}

/// Samples per connection, in the order the answers pass the tap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyTruth {
    /// Tap → server → tap.
    pub server_leg: Vec<u64>,
    /// Tap → client → tap.
    pub client_leg: Vec<u64>,
    /// Request/response turns: the client's first payload byte to the server's first.
    pub response: Vec<u64>,
    pub from_timestamps: bool,
    pub from_seq_ack: bool,
}

/// The events one side timed and the answers it got.
#[derive(Default)]
struct Sender {
    /// The newest value timed, and whether values are TSvals.
    newest: Option<u32>,
    timestamps: bool,
    answered: Option<u32>,
    /// Events that may still be answered, with their capture times.
    waiting: Vec<(u32, u64)>,
}

fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl LatencyTruth {
    pub(super) fn of(segments: &[Timed]) -> LatencyTruth {
        let mut truth = LatencyTruth::default();
        let mut senders = [Sender::default(), Sender::default()];
        let mut turn: Option<u64> = None;
        // Per side, the sequence number after the highest byte it sent.
        let mut next: [Option<u32>; 2] = [None; 2];
        for s in segments {
            truth.answer(&mut senders[1 - s.from], s);
            time(&mut senders[s.from], s, next[1 - s.from]);
            let syn_fin = u32::from(s.flags & (SYN | FIN) != 0);
            let end = s.seq.wrapping_add(s.len + syn_fin);
            if !s.probe && next[s.from].is_none_or(|n| after(end, n)) {
                next[s.from] = Some(end);
            }
            if s.len > 0 && !s.resend {
                match (s.from, turn) {
                    (CLIENT, None) => turn = Some(s.ts),
                    (SERVER, Some(opened)) => {
                        truth.response.push(s.ts - opened);
                        turn = None;
                    }
                    _ => {}
                }
            }
        }
        truth
    }

    /// The sample `s` ends of the events `sender` timed, if any: the first answer beyond every
    /// earlier one that equals a waiting event's value.
    fn answer(&mut self, sender: &mut Sender, s: &Timed) {
        let Some(newest) = sender.newest else { return };
        if s.flags & ACK == 0 {
            return;
        }
        let wanted = if sender.timestamps {
            match s.timestamps {
                Some((_, echo)) if echo != 0 => echo,
                _ => return,
            }
        } else {
            s.ack
        };
        if sender.answered.is_some_and(|a| !after(wanted, a)) || after(wanted, newest) {
            return;
        }
        sender.answered = Some(wanted);
        let found = sender.waiting.iter().find(|&&(v, _)| v == wanted).copied();
        // Answers only move forward: what this one passes over is never answered.
        sender.waiting.retain(|&(v, _)| after(v, wanted));
        let Some((_, at)) = found else { return };
        let ns = s.ts - at;
        if ns > MAX_SAMPLE_NS {
            return;
        }
        // The leg is the answering side's.
        match s.from {
            SERVER => self.server_leg.push(ns),
            _ => self.client_leg.push(ns),
        }
        if sender.timestamps {
            self.from_timestamps = true;
        } else {
            self.from_seq_ack = true;
        }
    }
}

/// Times `s` if it starts a new event of its sender; `peer_next` is the sequence number after
/// the highest byte the peer sent.
fn time(sender: &mut Sender, s: &Timed, peer_next: Option<u32>) {
    let syn_fin = u32::from(s.flags & (SYN | FIN) != 0);
    let pure_ack = s.len == 0 && syn_fin == 0;
    // A pure ACK of all the peer sent asks for no answer: it is not timed, but its TSval is
    // seen (a later carrier of it is not the first).
    let mut asks_answer = true;
    let value = match s.timestamps {
        Some((tsval, _)) => {
            asks_answer = !pure_ack || peer_next.is_some_and(|n| after(n, s.ack));
            tsval
        }
        None => {
            if s.resend {
                // Karn: after a resend below the newest end, no earlier event is answered.
                if sender
                    .newest
                    .is_some_and(|n| !sender.timestamps && after(n, s.seq))
                {
                    sender.waiting.clear();
                }
                return;
            }
            if s.len == 0 && syn_fin == 0 {
                return;
            }
            let end = s.seq.wrapping_add(s.len).wrapping_add(syn_fin);
            if let Some(newest) = sender.newest.filter(|_| !sender.timestamps) {
                if s.out_of_order && !after(end, newest) {
                    // The tap's first copy of a range not yet acknowledged, after later data.
                    let unanswered = sender.answered.is_none_or(|a| after(end, a));
                    if unanswered && !sender.waiting.iter().any(|&(v, _)| v == end) {
                        sender.waiting.push((end, s.ts));
                    }
                    return;
                }
            }
            end
        }
    };
    let timestamps = s.timestamps.is_some();
    if sender.newest.is_some() && sender.timestamps != timestamps {
        *sender = Sender::default();
    }
    sender.timestamps = timestamps;
    if sender.newest.is_some_and(|n| !after(value, n)) {
        return;
    }
    sender.newest = Some(value);
    if asks_answer {
        sender.waiting.push((value, s.ts));
    }
}
