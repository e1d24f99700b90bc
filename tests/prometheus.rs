//! The Prometheus endpoint against a real Prometheus server (Debian's `prometheus`, started by
//! the test inside the lab's monitor namespace on 127.0.0.1 with a 1 s scrape): after traffic
//! sent live through the lab, Prometheus' query API gives the handshake count of tcpulse's own
//! JSON output, and `histogram_quantile` over the exposed buckets gives exactly the quantile
//! the JSON's HdrHistograms give for the same buckets. Needs root (CI runs as root).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{gen_send, root_or_skip, Lab, Monitor};
use serde_json::Value;
use tcpulse_core::schema::hist::LatencyHist;
use tcpulse_io::sink::prometheus::LATENCY_BUCKETS_US;

/// A free TCP port on the host's loopback (the namespaces have their own, just as free).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Prometheus in namespace `ns`, scraping `target` every second; killed and its data removed
/// on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    ns: String,
    port: u16,
}

impl Prometheus {
    fn start(ns: &str, target: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("tcpulse-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tcpulse\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (scripts/setup installs it)");
        Prometheus {
            child,
            dir,
            ns: ns.to_string(),
            port,
        }
    }

    /// An instant query through the HTTP API; `None` until it has a result.
    fn query(&self, promql: &str) -> Option<f64> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-sf", "-G"])
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .arg("--data-urlencode")
            .arg(format!("query={promql}"))
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` answers a positive value that three polls a second apart agree
    /// on (Prometheus scrapes every second), and returns it.
    fn settled(&self, promql: &str) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            seen.push(self.query(promql));
            if let [.., a, b, c] = seen.as_slice() {
                if a.is_some_and(|v| v > 0.0) && a == b && b == c {
                    return *c;
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        seen.last().copied().flatten()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What Prometheus' `histogram_quantile(q, ...)` computes from cumulative bucket counts:
/// the rank's bucket, interpolated linearly from its lower to its upper bound.
fn bucket_quantile(q: f64, bounds_s: &[f64], cumulative: &[u64], total: u64) -> f64 {
    let rank = q * total as f64;
    let mut prev = (0.0, 0u64);
    for (&upper, &count) in bounds_s.iter().zip(cumulative) {
        if count as f64 >= rank {
            let in_bucket = (count - prev.1) as f64;
            return prev.0 + (upper - prev.0) * (rank - prev.1 as f64) / in_bucket;
        }
        prev = (upper, count);
    }
    // In the +Inf bucket: Prometheus answers the highest finite bound.
    prev.0
}

#[test]
fn prometheus_scrapes_what_the_json_says() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pm", 1);
    let endpoint = format!("127.0.0.1:{}", free_port());
    let sink = format!("prometheus:{endpoint}");
    let monitor = Monitor::start_with(
        &lab.mon(),
        &[
            "--iface",
            &lab.mon_if(),
            "--interval",
            "1s",
            "--sink",
            &sink,
        ],
    );
    let prometheus = Prometheus::start(&lab.mon(), &endpoint);
    gen_send(
        &lab,
        &["--connections", "300", "--spread", "1", "--speed", "2"],
    );
    // Let the last interval with traffic close (100 ms after its end), then stop the monitor
    // only once Prometheus has scraped everything: read the JSON total first.
    std::thread::sleep(Duration::from_millis(2500));
    let settle = prometheus.settled("tcpulse_handshakes_total");
    let metrics = [
        "tcpulse_handshake_seconds",
        "tcpulse_rtt_server_leg_seconds",
        "tcpulse_rtt_client_leg_seconds",
        "tcpulse_response_seconds",
    ];
    // Samples of the last intervals (the teardowns' ACKs) may land after the handshakes.
    let all_counts = metrics.map(|m| format!("{m}_count")).join(" + ");
    let settled_counts = prometheus.settled(&all_counts);
    let prom_counts: Vec<Option<f64>> = metrics
        .iter()
        .map(|m| prometheus.query(&format!("{m}_count")))
        .collect();
    let quantiles: Vec<Vec<Option<f64>>> = metrics
        .iter()
        .map(|metric| {
            [0.5, 0.9, 0.99]
                .iter()
                .map(|q| prometheus.query(&format!("histogram_quantile({q}, {metric}_bucket)")))
                .collect()
        })
        .collect();
    let (live, code) = monitor.stop();
    assert_eq!(code, 0);

    let json_handshakes = live.tcp_total("handshakes");
    assert!(json_handshakes > 250, "{json_handshakes} handshakes");
    assert_eq!(
        settle,
        Some(json_handshakes as f64),
        "Prometheus vs JSON handshakes"
    );

    // The same buckets from the JSON's histograms, and Prometheus' quantile rule over them.
    let mut json_counts = 0;
    for ((metric, quantiles), prom_count) in metrics.iter().zip(quantiles).zip(prom_counts) {
        // Merged at the precision the records were written with (as the sink reads them).
        let mut merged: Option<LatencyHist> = None;
        for i in &live.intervals {
            let h = &i.histograms;
            let summary = match *metric {
                "tcpulse_handshake_seconds" => &h.handshake_total_us,
                "tcpulse_rtt_server_leg_seconds" => &h.rtt_server_leg_us,
                "tcpulse_rtt_client_leg_seconds" => &h.rtt_client_leg_us,
                _ => &h.response_us,
            };
            if let Some(h) = summary.decode().expect("hdr decodes") {
                match merged.as_mut() {
                    Some(all) => all.merge(&h),
                    None => merged = Some(h),
                }
            }
        }
        let all = merged.unwrap_or_else(|| panic!("{metric}: no values"));
        assert!(all.count() > 250, "{metric}: {} values", all.count());
        json_counts += all.count();
        eprintln!(
            "{metric}: JSON count {}, Prometheus {prom_count:?}",
            all.count()
        );
        let cumulative: Vec<u64> = LATENCY_BUCKETS_US
            .iter()
            .map(|&bound| {
                all.inner()
                    .iter_recorded()
                    .filter(|v| v.value_iterated_to() <= bound)
                    .map(|v| v.count_at_value())
                    .sum()
            })
            .collect();
        let bounds_s: Vec<f64> = LATENCY_BUCKETS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .collect();
        for (q, got) in [0.5, 0.9, 0.99].iter().zip(quantiles) {
            let want = bucket_quantile(*q, &bounds_s, &cumulative, all.count());
            let got = got.unwrap_or_else(|| panic!("{metric}: no quantile {q} from Prometheus"));
            eprintln!(
                "{metric} p{}: Prometheus {got} s, from the JSON {want} s",
                q * 100.0
            );
            assert!(
                (got - want).abs() <= want * 1e-9,
                "{metric} quantile {q}: Prometheus {got}, JSON buckets {want}"
            );
        }
    }
    assert_eq!(
        settled_counts,
        Some(json_counts as f64),
        "Prometheus vs JSON counts"
    );
}
