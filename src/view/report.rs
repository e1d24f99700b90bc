//! `tcpulse report`: one table per window (a row per server, then the totals) and a diagnosis
//! per server following the classic order of TCP troubleshooting: is the handshake answered,
//! is the connection accepted, is the port open, then the established connection (receiver
//! reading, application closing, pooling, path loss). Every finding carries its numbers.

use std::fmt::Write as _;

use clap::Args;

use super::merge::Merged;
use tcpulse_core::schema::counters::{Counter, Counters};
use tcpulse_core::schema::hist::HistSummary;

/// When a finding is reported. Shares are fractions (0.02 = 2 %); docs/view.md explains each.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Unanswered SYNs per connection attempt (first SYN) from which a SYN backlog overflow
    /// (or a firewall dropping SYNs) is suspected.
    #[arg(long, default_value_t = 0.02)]
    pub unanswered_syn: f64,
    /// SYN resends per connection attempt from which the same is suspected.
    #[arg(long, default_value_t = 0.05)]
    pub syn_resent: f64,
    /// SYN/ACK resends per SYN/ACK first sent from which a full accept queue (or lost final
    /// ACKs) is suspected.
    #[arg(long, default_value_t = 0.05)]
    pub synack_resent: f64,
    /// RSTs answering a SYN per connection attempt from which the port is reported closed.
    #[arg(long, default_value_t = 0.02)]
    pub rst_to_syn: f64,
    /// Zero-window advertisements per data segment from which a slow receiver is reported.
    #[arg(long, default_value_t = 0.001)]
    pub zero_window: f64,
    /// Half-closed stalls (CLOSE_WAIT suspects) from which the application is reported not
    /// closing.
    #[arg(long, default_value_t = 1)]
    pub half_closed_stalls: u64,
    /// New connections per second from which churn is considered (with --short-flow).
    #[arg(long, default_value_t = 50.0)]
    pub churn_rate: f64,
    /// Data segments per new connection at or below which connections are short (no pooling).
    #[arg(long, default_value_t = 4.0)]
    pub short_flow: f64,
    /// Retransmit ratio (retransmitted data segments per data segment) from which path loss
    /// is reported.
    #[arg(long, default_value_t = 0.02)]
    pub retransmit_ratio: f64,
    /// Events a finding needs at least (a single resend is no diagnosis).
    #[arg(long, default_value_t = 1)]
    pub min_events: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            unanswered_syn: 0.02,
            syn_resent: 0.05,
            synack_resent: 0.05,
            rst_to_syn: 0.02,
            zero_window: 0.001,
            half_closed_stalls: 1,
            churn_rate: 50.0,
            short_flow: 4.0,
            retransmit_ratio: 0.02,
            min_events: 1,
        }
    }
}

/// What a finding is about, in troubleshooting order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    SynUnanswered,
    SynAckResent,
    Refused,
    ZeroWindow,
    HalfClosedStall,
    Churn,
    PathLoss,
}

impl Finding {
    pub fn title(self) -> &'static str {
        match self {
            Finding::SynUnanswered => {
                "SYNs unanswered: SYN backlog overflow suspect (or a firewall dropping SYNs)"
            }
            Finding::SynAckResent => "SYN/ACK resent: accept queue full, or final ACKs lost",
            Finding::Refused => "RST to SYN: closed port, service down",
            Finding::ZeroWindow => "zero window: slow receiver (application not reading)",
            Finding::HalfClosedStall => {
                "half-closed stalls: CLOSE_WAIT suspect (application not closing)"
            }
            Finding::Churn => "many short connections: no connection pooling",
            Finding::PathLoss => "retransmissions: loss on the path",
        }
    }
}

fn share(num: u64, den: u64) -> f64 {
    if den == 0 {
        if num > 0 {
            1.0
        } else {
            0.0
        }
    } else {
        num as f64 / den as f64
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The findings for one server's (or the total's) counters over `secs` seconds, each with its
/// evidence.
pub fn diagnose(c: &Counters, secs: f64, th: &Thresholds) -> Vec<(Finding, String)> {
    let g = |k| c.get(k);
    let mut out = Vec::new();
    let attempts = g(Counter::syn).saturating_sub(g(Counter::syn_retransmits));
    let enough = |n: u64| n >= th.min_events.max(1);

    let (unanswered, syn_resent) = (g(Counter::unanswered_syn), g(Counter::syn_retransmits));
    if (enough(unanswered) && share(unanswered, attempts) >= th.unanswered_syn)
        || (enough(syn_resent) && share(syn_resent, attempts) >= th.syn_resent)
    {
        out.push((
            Finding::SynUnanswered,
            format!(
                "{unanswered} of {} connection attempts unanswered ({}), {syn_resent} \
                 SYN resends ({}); backlog pressure {:.3}",
                attempts.max(unanswered),
                pct(share(unanswered, attempts)),
                pct(share(syn_resent, attempts)),
                c.backlog_pressure()
            ),
        ));
    }
    let synack_resent = g(Counter::synack_retransmits);
    let synacks = g(Counter::synack).saturating_sub(synack_resent);
    if enough(synack_resent) && share(synack_resent, synacks) >= th.synack_resent {
        out.push((
            Finding::SynAckResent,
            format!(
                "{synack_resent} SYN/ACK resends for {synacks} SYN/ACKs ({}), {} handshakes \
                 completed",
                pct(share(synack_resent, synacks)),
                g(Counter::handshakes)
            ),
        ));
    }
    let refused = g(Counter::rst_to_syn);
    if enough(refused) && share(refused, attempts) >= th.rst_to_syn {
        out.push((
            Finding::Refused,
            format!(
                "{refused} of {attempts} connection attempts answered by RST ({})",
                pct(share(refused, attempts))
            ),
        ));
    }
    let (zero, data) = (g(Counter::zero_window), g(Counter::data_segments));
    if enough(zero) && share(zero, data) >= th.zero_window {
        out.push((
            Finding::ZeroWindow,
            format!(
                "{zero} zero-window advertisements, {} probes, over {data} data segments",
                g(Counter::zero_window_probes)
            ),
        ));
    }
    let stalls = g(Counter::half_closed_stalls);
    if enough(stalls) && stalls >= th.half_closed_stalls {
        out.push((
            Finding::HalfClosedStall,
            format!(
                "{stalls} connections half-closed too long ({} closed)",
                g(Counter::closed_flows)
            ),
        ));
    }
    let new = g(Counter::new_flows);
    let rate = if secs > 0.0 { new as f64 / secs } else { 0.0 };
    let per_flow = if new == 0 {
        f64::INFINITY
    } else {
        data as f64 / new as f64
    };
    if enough(new) && rate >= th.churn_rate && per_flow <= th.short_flow {
        out.push((
            Finding::Churn,
            format!("{rate:.1} new connections/s carrying {per_flow:.1} data segments each"),
        ));
    }
    let retx = g(Counter::data_retransmits);
    if enough(retx) && c.retransmit_ratio() >= th.retransmit_ratio {
        out.push((
            Finding::PathLoss,
            format!(
                "{retx} of {data} data segments resent (retransmit ratio {:.4}); {} fast, {} \
                 spurious, {} out of order",
                c.retransmit_ratio(),
                g(Counter::fast_retransmits),
                g(Counter::spurious_retransmits),
                g(Counter::out_of_order)
            ),
        ));
    }
    out
}

/// Whether output may carry ANSI colours.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// A latency in µs, short: `850us`, `12.3ms`, `1.20s`.
pub fn fmt_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us}us"),
        1_000..=9_999 => format!("{:.2}ms", us as f64 / 1e3),
        10_000..=999_999 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC from nanoseconds since 1970.
pub fn fmt_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (proleptic Gregorian), by 400-year eras of 146097 days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ns / 1_000_000 % 1000
    )
}

const COLUMNS: usize = 13;

const HEADER: [&str; COLUMNS] = [
    "server", "hs p50", "hs p99", "srv rtt", "cli rtt", "resp", "SYN/s", "backlog", "retx",
    "RST>SYN", "0-win", "stalls", "new",
];

/// A row's latencies: the handshake total, the RTT legs (server's, client's) and the response
/// time, as merged.
struct RowLatencies<'a> {
    handshake: &'a HistSummary,
    server_leg: &'a HistSummary,
    client_leg: &'a HistSummary,
    response: &'a HistSummary,
}

fn row(name: &str, c: &Counters, l: &RowLatencies<'_>, secs: f64) -> [String; COLUMNS] {
    let time = |h: &HistSummary, v: u64| {
        if h.count == 0 {
            "-".to_string()
        } else {
            fmt_us(v)
        }
    };
    let rate = if secs > 0.0 {
        c.get(Counter::syn) as f64 / secs
    } else {
        0.0
    };
    [
        name.to_string(),
        time(l.handshake, l.handshake.p50),
        time(l.handshake, l.handshake.p99),
        time(l.server_leg, l.server_leg.p50),
        time(l.client_leg, l.client_leg.p50),
        time(l.response, l.response.p50),
        format!("{rate:.1}"),
        format!("{:.3}", c.backlog_pressure()),
        format!("{:.2}%", c.retransmit_ratio() * 100.0),
        c.get(Counter::rst_to_syn).to_string(),
        c.get(Counter::zero_window).to_string(),
        c.get(Counter::half_closed_stalls).to_string(),
        c.get(Counter::new_flows).to_string(),
    ]
}

/// The text of one window: heading, table, diagnosis.
pub fn render(w: &Merged, th: &Thresholds, style: Style) -> String {
    let r = &w.record;
    let secs = r.end_ns.saturating_sub(r.start_ns) as f64 / 1e9;
    let mut out = String::new();
    let merged = r.merged.unwrap_or(1);
    let _ = writeln!(
        out,
        "{}",
        style.paint(
            "1",
            &format!(
                "{} to {} UTC ({secs:.3} s), {merged} record{} from {}",
                fmt_time(r.start_ns),
                fmt_time(r.end_ns),
                if merged == 1 { "" } else { "s" },
                if r.source.is_empty() { "-" } else { &r.source }
            )
        )
    );
    let mut rows: Vec<[String; COLUMNS]> = vec![HEADER.map(str::to_string)];
    for s in &r.servers {
        let l = RowLatencies {
            handshake: &s.handshake_total_us,
            server_leg: &s.rtt_server_leg_us,
            client_leg: &s.rtt_client_leg_us,
            response: &s.response_us,
        };
        rows.push(row(&s.server, &s.counters, &l, secs));
    }
    let h = &r.histograms;
    let total = RowLatencies {
        handshake: &h.handshake_total_us,
        server_leg: &h.rtt_server_leg_us,
        client_leg: &h.rtt_client_leg_us,
        response: &h.response_us,
    };
    rows.push(row("total", &r.tcp.counters, &total, secs));
    let mut widths = [0usize; COLUMNS];
    for cells in &rows {
        for (w, cell) in widths.iter_mut().zip(cells) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for (i, cells) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if j == 0 {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        let line = line.trim_end();
        let line = if i == 0 || i == rows.len() - 1 {
            style.paint("1", line)
        } else {
            line.to_string()
        };
        let _ = writeln!(out, "{line}");
    }
    if r.servers_omitted > 0 {
        let _ = writeln!(
            out,
            "({} more servers not listed: --top-servers)",
            r.servers_omitted
        );
    }
    let mut any = false;
    let _ = writeln!(out, "diagnosis:");
    for s in &r.servers {
        for (finding, evidence) in diagnose(&s.counters, secs, th) {
            any = true;
            let _ = writeln!(
                out,
                "  {}: {}\n      {evidence}",
                s.server,
                style.paint("31;1", finding.title())
            );
        }
    }
    if !any {
        let findings = diagnose(&r.tcp.counters, secs, th);
        for (finding, evidence) in &findings {
            let _ = writeln!(
                out,
                "  total: {}\n      {evidence}",
                style.paint("31;1", finding.title())
            );
        }
        if findings.is_empty() {
            let _ = writeln!(
                out,
                "  {}",
                style.paint("32", "nothing above the thresholds")
            );
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pairs: &[(Counter, u64)]) -> Counters {
        let mut c = Counters::default();
        for &(k, n) in pairs {
            c.add(k, n);
        }
        c
    }

    fn findings(c: &Counters, th: &Thresholds) -> Vec<Finding> {
        diagnose(c, 10.0, th).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn each_rule_fires_at_its_threshold_and_not_below() {
        let th = Thresholds::default();
        let healthy = counters(&[
            (Counter::syn, 1000),
            (Counter::synack, 1000),
            (Counter::handshakes, 1000),
            (Counter::data_segments, 20_000),
            (Counter::new_flows, 1000),
        ]);
        assert!(findings(&healthy, &th).is_empty());

        let mut c = healthy;
        c.add(Counter::unanswered_syn, 19);
        assert!(
            findings(&c, &th).is_empty(),
            "1.9 % unanswered is below 2 %"
        );
        c.add(Counter::unanswered_syn, 1);
        assert_eq!(findings(&c, &th), [Finding::SynUnanswered]);

        let mut c = healthy;
        c.add(Counter::synack, 50);
        c.add(Counter::synack_retransmits, 50);
        assert_eq!(findings(&c, &th), [Finding::SynAckResent]);

        let mut c = healthy;
        c.add(Counter::rst_to_syn, 20);
        assert_eq!(findings(&c, &th), [Finding::Refused]);

        let mut c = healthy;
        c.add(Counter::zero_window, 20);
        assert_eq!(findings(&c, &th), [Finding::ZeroWindow]);

        let mut c = healthy;
        c.add(Counter::half_closed_stalls, 1);
        assert_eq!(findings(&c, &th), [Finding::HalfClosedStall]);

        let mut c = healthy;
        c.add(Counter::data_retransmits, 400);
        assert_eq!(findings(&c, &th), [Finding::PathLoss]);
        let strict = Thresholds {
            retransmit_ratio: 0.05,
            ..Thresholds::default()
        };
        assert!(findings(&c, &strict).is_empty());
    }

    #[test]
    fn churn_needs_both_a_high_rate_and_short_connections() {
        let th = Thresholds::default();
        let short = counters(&[
            (Counter::syn, 1000),
            (Counter::new_flows, 1000),
            (Counter::data_segments, 2000),
        ]);
        assert_eq!(findings(&short, &th), [Finding::Churn]);
        let long = counters(&[(Counter::new_flows, 1000), (Counter::data_segments, 20_000)]);
        assert!(findings(&long, &th).is_empty());
        let slow = counters(&[(Counter::new_flows, 100), (Counter::data_segments, 200)]);
        assert!(
            findings(&slow, &th).is_empty(),
            "10 connections/s is no churn"
        );
    }

    #[test]
    fn min_events_silences_single_events() {
        let c = counters(&[(Counter::syn, 1), (Counter::rst_to_syn, 1)]);
        assert_eq!(findings(&c, &Thresholds::default()), [Finding::Refused]);
        let th = Thresholds {
            min_events: 2,
            ..Thresholds::default()
        };
        assert!(findings(&c, &th).is_empty());
    }

    #[test]
    fn times_and_latencies_print_short() {
        assert_eq!(
            fmt_time(1_700_000_000_123_000_000),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(fmt_us(850), "850us");
        assert_eq!(fmt_us(1_234), "1.23ms");
        assert_eq!(fmt_us(410_000), "410.0ms");
        assert_eq!(fmt_us(1_200_000), "1.20s");
    }
}
