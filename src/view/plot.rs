//! `tcpulse plot`: standalone SVG charts written by hand (axes, ticks, labels, legend, title):
//! the handshake time distribution per server from the merged histograms, and the retransmit
//! ratio, SYN rate and handshake rate over time.

use std::fmt::Write as _;

use super::merge::Merged;
use super::report::{fmt_time, fmt_us};
use tcpulse_core::schema::counters::{Counter, Counters};
use tcpulse_core::schema::hist::LatencyHist;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
/// Plot area margins: left for the y labels, right for the legend.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// Distinct colours that stay apart for the colour-blind (Okabe and Ito's set, plus grey).
/// The first series (every server together) is black.
const COLOURS: [&str; 9] = [
    "#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
    "#999999",
];

/// One line on a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// An axis: its label, range, and whether values are drawn on a log10 scale.
pub struct Axis {
    pub label: String,
    pub min: f64,
    pub max: f64,
    pub log: bool,
    /// Tick positions and their labels.
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis from 0 (or `min`) to a round number at or above `max`.
    fn linear(label: String, min: f64, max: f64, fmt: impl Fn(f64) -> String) -> Axis {
        let span = if max > min { max - min } else { 1.0 };
        let step = nice_step(span / 5.0);
        let (lo, hi) = (
            (min / step).floor() * step,
            ((max / step).ceil() * step).max(min + step),
        );
        let n = ((hi - lo) / step).round() as usize;
        let ticks = (0..=n)
            .map(|i| {
                let v = lo + step * i as f64;
                (v, fmt(v))
            })
            .collect();
        Axis {
            label,
            min: lo,
            max: hi,
            log: false,
            ticks,
        }
    }

    /// A log10 axis over whole decades covering `min..=max` (both above 0), ticks at 1, 2, 5.
    fn log(label: String, min: f64, max: f64, fmt: impl Fn(f64) -> String) -> Axis {
        let lo = min.max(1e-9).log10().floor();
        let hi = max.max(min * 10.0).log10().ceil().max(lo + 1.0);
        let mut ticks = Vec::new();
        let mut d = lo;
        while d <= hi {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powf(d);
                if v.log10() <= hi + 1e-9 {
                    ticks.push((v, fmt(v)));
                }
            }
            d += 1.0;
        }
        Axis {
            label,
            min: 10f64.powf(lo),
            max: 10f64.powf(hi),
            log: true,
            ticks,
        }
    }

    /// Position in 0..=1 along the axis.
    fn frac(&self, v: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (v.max(self.min).log10(), self.min.log10(), self.max.log10())
        } else {
            (v, self.min, self.max)
        };
        if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// 1, 2 or 5 times a power of ten, at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw * 0.999)
        .unwrap_or(10.0 * p)
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart as a standalone SVG document. `steps` draws each series as a staircase (a
/// distribution), else points joined by lines with a dot on each.
pub fn line_chart(title: &str, x: &Axis, y: &Axis, series: &[Series], steps: bool) -> String {
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |v: f64| LEFT + x.frac(v) * pw;
    let py = |v: f64| TOP + (1.0 - y.frac(v)) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<title>{t}</title>
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>
<text x="{cx}" y="28" text-anchor="middle" font-size="17" font-weight="bold">{t}</text>"##,
        t = esc(title),
        cx = LEFT + pw / 2.0,
    );
    // Grid and ticks.
    for (v, label) in &x.ticks {
        let xp = px(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{xp:.1}" y1="{TOP}" x2="{xp:.1}" y2="{b:.1}" stroke="#e4e4e4"/><line x1="{xp:.1}" y1="{b:.1}" x2="{xp:.1}" y2="{b5:.1}" stroke="#333"/><text x="{xp:.1}" y="{bt:.1}" text-anchor="middle">{l}</text>"##,
            b = TOP + ph,
            b5 = TOP + ph + 5.0,
            bt = TOP + ph + 19.0,
            l = esc(label)
        );
    }
    for (v, label) in &y.ticks {
        let yp = py(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yp:.1}" x2="{r:.1}" y2="{yp:.1}" stroke="#e4e4e4"/><line x1="{l5:.1}" y1="{yp:.1}" x2="{LEFT}" y2="{yp:.1}" stroke="#333"/><text x="{lt:.1}" y="{Yt:.1}" text-anchor="end">{l}</text>"##,
            r = LEFT + pw,
            l5 = LEFT - 5.0,
            lt = LEFT - 8.0,
            Yt = yp + 4.0,
            l = esc(label)
        );
    }
    // Axes and their labels.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#333"/>
<text x="{cx:.1}" y="{xl:.1}" text-anchor="middle" font-size="13">{xlab}</text>
<text transform="translate(20 {cy:.1}) rotate(-90)" text-anchor="middle" font-size="13">{ylab}</text>"##,
        cx = LEFT + pw / 2.0,
        xl = HEIGHT - 14.0,
        cy = TOP + ph / 2.0,
        xlab = esc(&x.label),
        ylab = esc(&y.label),
    );
    // Series, then the legend.
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut d = String::new();
        let mut prev_y: Option<f64> = None;
        for (j, &(vx, vy)) in ser.points.iter().enumerate() {
            let (xp, yp) = (px(vx), py(vy));
            match (j, steps, prev_y) {
                (0, _, _) => {
                    let _ = write!(d, "M{xp:.1},{yp:.1}");
                }
                (_, true, Some(p)) => {
                    let _ = write!(d, " L{xp:.1},{p:.1} L{xp:.1},{yp:.1}");
                }
                _ => {
                    let _ = write!(d, " L{xp:.1},{yp:.1}");
                }
            }
            prev_y = Some(yp);
        }
        if !d.is_empty() {
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>"#
            );
        }
        if !steps && ser.points.len() <= 200 {
            for &(vx, vy) in &ser.points {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                    px(vx),
                    py(vy)
                );
            }
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + pw + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{lx2:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{lt:.1}" y="{lyt:.1}">{name}</text>"#,
            lx2 = lx + 22.0,
            lt = lx + 28.0,
            lyt = ly + 4.0,
            name = esc(&ser.name)
        );
    }
    if series.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#777">no data</text>"##,
            LEFT + pw / 2.0,
            TOP + ph / 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The cumulative distribution of a histogram: (latency µs, percent at or below), one point
/// per recorded bucket.
fn cdf(h: &LatencyHist) -> Vec<(f64, f64)> {
    let total = h.count().max(1) as f64;
    let mut seen = 0u64;
    let mut points: Vec<(f64, f64)> = h
        .buckets()
        .map(|(v, n)| {
            seen += n;
            (v.max(1) as f64, 100.0 * seen as f64 / total)
        })
        .collect();
    // The staircase rises from 0 at the lowest value.
    if let Some(&(x, _)) = points.first() {
        points.insert(0, (x, 0.0));
    }
    points
}

/// The servers to draw: the busiest by handshakes completed, then by packets.
fn top_servers(total: &Merged, n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..total.record.servers.len()).collect();
    let key = |i: usize| {
        let c = &total.record.servers[i].counters;
        (c.get(Counter::handshakes), c.get(Counter::packets))
    };
    idx.sort_by(|&a, &b| key(b).cmp(&key(a)).then(a.cmp(&b)));
    idx.truncate(n);
    idx
}

/// Every chart: (file name, SVG). `total` is the whole input merged into one window (every
/// server listed), `windows` the same records by time step.
pub fn charts(total: &Merged, windows: &[Merged], top: usize) -> Vec<(&'static str, String)> {
    let servers = top_servers(total, top);
    let names: Vec<&str> = servers
        .iter()
        .map(|&i| total.record.servers[i].server.as_str())
        .collect();
    let t0 = windows.first().map_or(0, |w| w.record.start_ns);
    let since = format!("seconds since {} UTC", fmt_time(t0));
    let mut out = Vec::new();

    // Handshake total time, as cumulative distributions on a log latency scale.
    let mut dists: Vec<Series> = Vec::new();
    if let Some(h) = &total.handshake {
        dists.push(Series {
            name: format!("all servers (n={})", h.count()),
            points: cdf(h),
        });
    }
    for &i in &servers {
        if let Some(Some(h)) = total.server_hists.get(i) {
            dists.push(Series {
                name: format!("{} (n={})", total.record.servers[i].server, h.count()),
                points: cdf(h),
            });
        }
    }
    let (lo, hi) = dists
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let x = Axis::log(
        "handshake time, SYN to final ACK (log scale)".into(),
        if lo == f64::MAX { 1.0 } else { lo },
        hi,
        |v| fmt_us(v.round() as u64),
    );
    let y = Axis::linear("handshakes at or below (%)".into(), 0.0, 100.0, |v| {
        format!("{v:.0}")
    });
    out.push((
        "handshake-rtt.svg",
        line_chart(
            "Handshake time distribution per server",
            &x,
            &y,
            &dists,
            true,
        ),
    ));

    // Time series: a value per window for each drawn server and the total.
    // `value` is None where there is nothing to show (a ratio without data): a gap, not 0.
    let series = |value: &dyn Fn(&Counters, f64) -> Option<f64>| -> Vec<Series> {
        let mut all = vec![Series {
            name: "all servers".into(),
            points: Vec::new(),
        }];
        all.extend(names.iter().map(|n| Series {
            name: n.to_string(),
            points: Vec::new(),
        }));
        for w in windows {
            let r = &w.record;
            let t = r.start_ns.saturating_sub(t0) as f64 / 1e9;
            let secs = (r.end_ns.saturating_sub(r.start_ns) as f64 / 1e9).max(1e-9);
            all[0]
                .points
                .extend(value(&r.tcp.counters, secs).map(|v| (t, v)));
            for (k, name) in names.iter().enumerate() {
                let c = r
                    .servers
                    .iter()
                    .find(|s| s.server == *name)
                    .map(|s| s.counters)
                    .unwrap_or_default();
                all[k + 1].points.extend(value(&c, secs).map(|v| (t, v)));
            }
        }
        all
    };
    let t_max = windows
        .last()
        .map_or(1.0, |w| w.record.start_ns.saturating_sub(t0) as f64 / 1e9);
    let time_axis = || Axis::linear(since.clone(), 0.0, t_max, |v| format!("{v}"));
    let y_max = |s: &[Series]| {
        s.iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
    };

    let retx =
        series(&|c, _| (c.get(Counter::data_segments) > 0).then(|| c.retransmit_ratio() * 100.0));
    let y = Axis::linear(
        "retransmitted data segments (%)".into(),
        0.0,
        y_max(&retx),
        |v| format!("{v}"),
    );
    out.push((
        "retransmit-ratio.svg",
        line_chart("Retransmit ratio over time", &time_axis(), &y, &retx, false),
    ));
    for (file, title, counter, label) in [
        (
            "syn-rate.svg",
            "SYN rate over time",
            Counter::syn,
            "SYNs per second (resends included)",
        ),
        (
            "handshake-rate.svg",
            "Handshake rate over time",
            Counter::handshakes,
            "handshakes completed per second",
        ),
    ] {
        let s = series(&|c, secs| Some(c.get(counter) as f64 / secs));
        let y = Axis::linear(label.into(), 0.0, y_max(&s), |v| format!("{v}"));
        out.push((file, line_chart(title, &time_axis(), &y, &s, false)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(13.0), 20.0);
        assert_eq!(nice_step(3.0), 5.0);
        let a = Axis::linear(String::new(), 0.0, 87.0, |v| v.to_string());
        assert_eq!((a.min, a.max), (0.0, 100.0));
        let l = Axis::log(String::new(), 150.0, 42_000.0, |v| v.to_string());
        assert_eq!((l.min, l.max), (100.0, 100_000.0));
        assert!((l.frac(1_000.0) - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn charts_are_well_formed_with_escaped_names() {
        let s = [Series {
            name: "a<b>&\"c\"".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0)],
        }];
        let x = Axis::linear("x".into(), 0.0, 1.0, |v| v.to_string());
        let svg = line_chart("t & u", &x, &x, &s, false);
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&quot;"));
        assert!(svg.contains("<title>t &amp; u</title>"));
        assert!(svg.ends_with("</svg>\n"));
        let empty = line_chart("empty", &x, &x, &[], true);
        assert!(empty.contains("no data"));
    }
}
