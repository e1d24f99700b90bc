//! The interval record: capture statistics, TCP counters, histograms and the top servers,
//! merged from every worker's share of the interval.

use std::collections::BTreeMap;

use super::watch::ServerPattern;
use crate::decode::Endpoint;
use crate::flow::engine::{HandshakeHists, WorkerInterval};
use crate::flow::servers::{fast, ServerSnapshot};
use crate::schema::counters::{Counter, Counters};
use crate::schema::flow::FlowRecord;
use crate::schema::hist::{FastHist, HistSummary, LatencyHist};
use crate::schema::interval::{
    CaptureStats, HistogramsRecord, IntervalRecord, ServerRecord, TcpRecord,
};
use crate::schema::SCHEMA_VERSION;

/// One server summed over workers.
#[derive(Default)]
struct ServerSum {
    overflow: bool,
    counters: Counters,
    /// Borrowed from the first share that had one (the others' are added to it), and given
    /// back to it afterwards: merging copies no histogram.
    hist: Option<(Box<LatencyHist>, (usize, usize))>,
    /// RTT legs and response times (`servers::fast` order), borrowed likewise.
    fast: [Option<(FastHist, (usize, usize))>; fast::COUNT],
    half_open: u64,
    active_flows: u64,
}

/// Which servers an interval record lists: the `top_servers` busiest (plus as many with
/// handshake trouble), and every active server matching a `watch` pattern.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub top_servers: usize,
    pub watch: Vec<ServerPattern>,
}

/// Merges the workers' shares of one interval into its record, and collects the flow records
/// that ended in it in a worker-independent order. The shares keep their memory (emptied of
/// flows), for their workers to fill again.
pub fn merge_interval(
    start_ns: u64,
    end_ns: u64,
    source: &str,
    capture: &CaptureStats,
    parts: &mut [WorkerInterval],
    listing: &Listing,
) -> (IntervalRecord, Vec<FlowRecord>) {
    // The first share's histograms collect the others', and go back to it afterwards.
    let first_hists = parts.iter().position(|p| p.hists.is_some());
    let mut hists: Option<Box<HandshakeHists>> = first_hists.and_then(|i| parts[i].hists.take());
    let mut servers: BTreeMap<(bool, Endpoint), ServerSum> = BTreeMap::new();
    let mut flows = Vec::with_capacity(parts.iter().map(|p| p.flows.len()).sum());
    let mut drops = capture.drops.clone();
    let mut active_flows = 0;
    // Over every server, borrowed from the first share that has each.
    let mut fast_total: [Option<(FastHist, usize)>; fast::COUNT] = Default::default();
    for (pi, part) in parts.iter_mut().enumerate() {
        if let (Some(acc), Some(h)) = (&mut hists, &part.hists) {
            acc.merge(h);
        }
        for (acc, f) in fast_total.iter_mut().zip(part.fast.iter_mut()) {
            match (acc, f) {
                (Some((acc, _)), Some(f)) => acc.merge(f),
                (acc @ None, f @ Some(_)) => *acc = f.take().map(|f| (f, pi)),
                (_, None) => {}
            }
        }
        drops.flow_table_full += part.flow_table_full;
        drops.flow_probe_limit += part.flow_probe_limit;
        drops.rtt_events_displaced += part.rtt_events_displaced;
        drops.reorder_overflow += part.reorder_overflow;
        active_flows += part.active_flows;
        flows.append(&mut part.flows);
        for (si, s) in part.servers.iter_mut().enumerate() {
            add_server(&mut servers, s, (pi, si));
        }
    }
    flows.sort_by(|a, b| {
        (a.last_ns, a.first_ns, a.client, a.server)
            .cmp(&(b.last_ns, b.first_ns, b.client, b.server))
    });

    let mut total = Counters::default();
    let mut half_open = 0;
    for s in servers.values() {
        total.merge(&s.counters);
        half_open += s.half_open;
    }
    let mut listed = select_servers(
        servers.iter().map(|(k, s)| (*k, &s.counters)),
        listing.top_servers,
    );
    // Servers of interest, whatever their traffic (those active in the interval).
    let watched: Vec<_> = servers
        .iter()
        .filter(|(k, s)| {
            !k.0 && !s.counters.is_zero() && listing.watch.iter().any(|p| p.matches(&k.1))
        })
        .map(|(k, _)| *k)
        .filter(|k| !listed.contains(k))
        .collect();
    listed.extend(watched);
    let servers_omitted = (servers.len() - listed.len()) as u64;
    // RTT legs and response times become histograms only for what the record shows.
    let mut scratch: [LatencyHist; fast::COUNT] =
        std::array::from_fn(|_| LatencyHist::per_server());
    let server_json = listed
        .into_iter()
        .map(|key| {
            let s = &servers[&key];
            for (f, h) in s.fast.iter().zip(&mut scratch) {
                if let Some((f, _)) = f {
                    f.add_to(h);
                }
            }
            let [server_leg, client_leg, response] = &scratch;
            let row = ServerRecord::new(
                s.overflow,
                key.1,
                s.counters,
                s.half_open,
                s.active_flows,
                [
                    s.hist.as_ref().map(|(h, _)| &**h),
                    Some(server_leg).filter(|h| !h.is_empty()),
                    Some(client_leg).filter(|h| !h.is_empty()),
                    Some(response).filter(|h| !h.is_empty()),
                ],
            );
            for h in &mut scratch {
                if !h.is_empty() {
                    h.reset();
                }
            }
            row
        })
        .collect();
    let mut total_summary = |i: usize| -> HistSummary {
        match &fast_total[i] {
            Some((f, _)) if !f.is_empty() => {
                f.add_to(&mut scratch[i]);
                scratch[i].summary()
            }
            _ => HistSummary::default(),
        }
    };
    let rtt_server_leg_us = total_summary(fast::RTT_SERVER_LEG);
    let rtt_client_leg_us = total_summary(fast::RTT_CLIENT_LEG);
    let response_us = total_summary(fast::RESPONSE);

    let mut capture = capture.clone();
    capture.drops = drops;
    let record = IntervalRecord {
        schema_version: SCHEMA_VERSION,
        start_ns,
        end_ns,
        source: source.to_string(),
        capture: capture.to_record(),
        tcp: TcpRecord::new(total, active_flows, half_open),
        histograms: HistogramsRecord {
            handshake_total_us: hists
                .as_ref()
                .map(|h| h.total.summary())
                .unwrap_or_default(),
            syn_synack_us: hists
                .as_ref()
                .map(|h| h.syn_synack.summary())
                .unwrap_or_default(),
            synack_ack_us: hists
                .as_ref()
                .map(|h| h.synack_ack.summary())
                .unwrap_or_default(),
            rtt_server_leg_us,
            rtt_client_leg_us,
            response_us,
        },
        servers: server_json,
        servers_omitted,
        merged: None,
        sources: None,
        sinks: None,
    };
    if let Some(i) = first_hists {
        parts[i].hists = hists;
    }
    for (which, slot) in IntoIterator::into_iter(fast_total).enumerate() {
        if let Some((f, pi)) = slot {
            parts[pi].fast[which] = Some(f);
        }
    }
    for sum in servers.into_values() {
        if let Some((h, (pi, si))) = sum.hist {
            parts[pi].servers[si].handshake_total = Some(h);
        }
        for (which, slot) in IntoIterator::into_iter(sum.fast).enumerate() {
            if let Some((f, (pi, si))) = slot {
                parts[pi].servers[si].fast[which] = Some(f);
            }
        }
    }
    (record, flows)
}

fn add_server(
    servers: &mut BTreeMap<(bool, Endpoint), ServerSum>,
    s: &mut ServerSnapshot,
    at: (usize, usize),
) {
    let sum = servers.entry((s.overflow, s.endpoint)).or_default();
    sum.overflow = s.overflow;
    sum.counters.merge(&s.counters);
    sum.half_open += u64::from(s.half_open);
    sum.active_flows += u64::from(s.active_flows);
    match (&mut sum.hist, &s.handshake_total) {
        (Some((acc, _)), Some(h)) => acc.merge(h),
        (None, Some(_)) => sum.hist = s.handshake_total.take().map(|h| (h, at)),
        (_, None) => {}
    }
    for (acc, f) in sum.fast.iter_mut().zip(s.fast.iter_mut()) {
        match (acc, f) {
            (Some((acc, _)), Some(f)) => acc.merge(f),
            (acc @ None, f @ Some(_)) => *acc = f.take().map(|f| (f, at)),
            (_, None) => {}
        }
    }
}

/// The `n` busiest servers by packets, plus up to `n` more that show handshake trouble (SYN
/// or SYN/ACK resends, unanswered SYNs, RSTs to SYN): a server under a SYN flood may carry
/// little traffic and must still be seen. Ties go to the lower key, so the choice does not
/// depend on the order servers come in (workers here, appliances in `tcpulse merge`).
pub fn select_servers<'a, K: Ord + Copy + 'a>(
    servers: impl Iterator<Item = (K, &'a Counters)>,
    n: usize,
) -> Vec<K> {
    let mut by_traffic: Vec<_> = servers.filter(|(_, c)| !c.is_zero()).collect();
    by_traffic.sort_by(|a, b| {
        b.1.get(Counter::packets)
            .cmp(&a.1.get(Counter::packets))
            .then(a.0.cmp(&b.0))
    });
    let mut chosen: Vec<_> = by_traffic.iter().take(n).map(|(k, _)| *k).collect();
    let trouble = |c: &Counters| {
        [
            Counter::syn_retransmits,
            Counter::synack_retransmits,
            Counter::unanswered_syn,
            Counter::rst_to_syn,
        ]
        .into_iter()
        .fold(0u64, |sum, k| sum.saturating_add(c.get(k)))
    };
    let mut troubled: Vec<_> = by_traffic
        .iter()
        .skip(n)
        .filter(|(_, c)| trouble(c) > 0)
        .collect();
    troubled.sort_by(|a, b| trouble(b.1).cmp(&trouble(a.1)).then(a.0.cmp(&b.0)));
    chosen.extend(troubled.iter().take(n).map(|(k, _)| *k));
    chosen
}
