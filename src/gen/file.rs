//! Scenario files (TOML, docs/gen.md): every knob of a [`Scenario`] under a top-level
//! `[scenario]` table, which is also how `tcpulse config check` tells a scenario file from a
//! configuration file.
//!
//! Every key is optional and defaults to [`Scenario::mixed`] with 1000 connections and seed 1,
//! so an empty `[scenario]` is `tcpulse gen`'s default capture. Shares are percentages written
//! as strings (`"2.5%"`, resolution 0.1 %); ranges are strings `"LOW..HIGH"` or one value;
//! durations read like the command line's (`"200us"`, `"3ms"`, `"1.5s"`). Unknown keys are
//! errors, and every error names the file, line, column and dotted key, as configuration files
//! do (`crate::config::ConfigError`).

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::flood::{Flood, MAX_FLOOD_SYNS};
use super::scenario::{CloseMix, EncapMix, Feature, Scenario, MAX_CONNECTIONS};
use crate::config::value::parsed as text_value;
use crate::config::ConfigError;
use tcpulse_core::units::parse_duration;

/// Connections and seed of the defaults (those of `tcpulse gen` without a file).
pub const DEFAULT_CONNECTIONS: u32 = 1000;
pub const DEFAULT_SEED: u64 = 1;

/// Payload bytes per segment: at least 2 (no resend may look like a keep-alive), at most what a
/// 1500-byte IP packet holds with IPv6 and the timestamps option, so frames can be sent.
const SEGMENT_BYTES: RangeInclusive<u32> = 2..=1428;
/// SYN and SYN/ACK resends come 1 s, 2 s, 4 s ... apart; six keep the last gap (32 s) under the
/// analysis' default half-open timeout (60 s), so resends stay in one flow.
const MAX_HANDSHAKE_RESENDS: u32 = 6;
/// Episodes of one kind per connection, exchanges, segments per flight: enough for any test,
/// small enough that one connection stays small.
const MAX_EPISODES: u32 = 100;
const MAX_EXCHANGES: u32 = 10_000;
const MAX_SEGMENTS: u32 = 1000;
/// Probes back off 200 ms, 400 ms, ...; ten is over three minutes of zero window.
const MAX_PROBES: u32 = 10;
/// The latest start: pcap stores seconds in 32 bits.
const MAX_START_SECS: u64 = u32::MAX as u64 - 1_000_000;

/// Is this text a scenario file (a top-level `scenario` table) rather than a configuration
/// file? Text that is not TOML is neither; the configuration parser reports it.
pub fn is_scenario(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("scenario"))
}

/// Parses and validates a scenario file's text.
pub fn parse(text: &str) -> Result<Scenario, ConfigError> {
    let file: FileKeys = toml::from_str(text).map_err(|e| ConfigError::from_toml(text, &e))?;
    file.scenario
        .build()
        .map_err(|(key, message)| ConfigError::at_key(text, &key, message))
}

/// Reads, parses and validates a scenario file; the error starts with the file name.
pub fn load(path: &Path) -> Result<Scenario, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::unreadable(&e))
        .and_then(|text| parse(&text))
        .map_err(|e| e.in_file(path))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    scenario: ScenarioKeys,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioKeys {
    connections: Option<u32>,
    seed: Option<u64>,
    /// Seconds since the Unix epoch.
    start: Option<u64>,
    #[serde(default, deserialize_with = "duration_or_zero")]
    spread: Option<u64>,
    #[serde(default, deserialize_with = "percent")]
    ipv6: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    vlan: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    seq_wrap: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    refused: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    unanswered: Option<u16>,
    #[serde(default)]
    handshake: HandshakeKeys,
    #[serde(default)]
    exchanges: ExchangeKeys,
    #[serde(default)]
    anomalies: AnomalyKeys,
    #[serde(default)]
    encapsulation: EncapKeys,
    close: Option<CloseKeys>,
    flood: Option<FloodKeys>,
}

/// Shares of the connections delivered wrapped, per wrapping; a share left out is 0.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncapKeys {
    #[serde(default, deserialize_with = "percent")]
    vxlan: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    geneve: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    gre: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    erspan: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    ip_in_ip: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    mpls: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    pppoe: Option<u16>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandshakeKeys {
    #[serde(default, deserialize_with = "duration_range")]
    syn_synack: Option<RangeInclusive<u64>>,
    #[serde(default, deserialize_with = "duration_range")]
    synack_ack: Option<RangeInclusive<u64>>,
    syn_retransmits: Option<FeatureKeys>,
    synack_retransmits: Option<FeatureKeys>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeKeys {
    #[serde(default, deserialize_with = "count_range")]
    count: Option<RangeInclusive<u32>>,
    #[serde(default, deserialize_with = "count_range")]
    request_segments: Option<RangeInclusive<u32>>,
    #[serde(default, deserialize_with = "count_range")]
    response_segments: Option<RangeInclusive<u32>>,
    #[serde(default, deserialize_with = "count_range")]
    segment_bytes: Option<RangeInclusive<u32>>,
    #[serde(default, deserialize_with = "duration_range_or_zero")]
    think: Option<RangeInclusive<u64>>,
    #[serde(default, deserialize_with = "percent")]
    delayed_acks: Option<u16>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalyKeys {
    timeout_retransmits: Option<FeatureKeys>,
    fast_retransmits: Option<FeatureKeys>,
    spurious_retransmits: Option<FeatureKeys>,
    out_of_order: Option<FeatureKeys>,
    zero_window: Option<FeatureKeys>,
    #[serde(default, deserialize_with = "count_range")]
    zero_window_probes: Option<RangeInclusive<u32>>,
}

/// `{ share = "5%", count = "1..3" }`; a key left out keeps the feature's default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureKeys {
    #[serde(default, deserialize_with = "percent")]
    share: Option<u16>,
    #[serde(default, deserialize_with = "count_range")]
    count: Option<RangeInclusive<u32>>,
}

/// Relative weights; a weight left out is 0 once the table is given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseKeys {
    #[serde(default)]
    fin_client: u16,
    #[serde(default)]
    fin_server: u16,
    #[serde(default)]
    rst_client: u16,
    #[serde(default)]
    rst_server: u16,
    #[serde(default)]
    open: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FloodKeys {
    syns: u64,
    #[serde(default, deserialize_with = "address")]
    target: Option<SocketAddr>,
    #[serde(default, deserialize_with = "address")]
    target_v6: Option<SocketAddr>,
    #[serde(default, deserialize_with = "percent")]
    ipv6: Option<u16>,
    #[serde(default, deserialize_with = "percent")]
    answered: Option<u16>,
    /// SYNs per second.
    rate: Option<u64>,
    #[serde(default, deserialize_with = "duration_or_zero")]
    start: Option<u64>,
    #[serde(default, deserialize_with = "duration_range")]
    synack_delay: Option<RangeInclusive<u64>>,
}

/// A failed check: the dotted key and what is wrong.
type Fault = (String, String);

fn fault(key: &str, message: impl Into<String>) -> Fault {
    (key.to_string(), message.into())
}

/// `range` unless it reaches past `max`.
fn at_most<T: PartialOrd + fmt::Display + Copy>(
    key: &str,
    range: RangeInclusive<T>,
    max: T,
    what: &str,
) -> Result<RangeInclusive<T>, Fault> {
    if *range.end() > max {
        Err(fault(key, format!("at most {max} {what}")))
    } else {
        Ok(range)
    }
}

impl FeatureKeys {
    fn apply(self, key: &str, base: &Feature, max: u32) -> Result<Feature, Fault> {
        let count = self.count.unwrap_or_else(|| base.count.clone());
        Ok(Feature {
            per_mille: self.share.unwrap_or(base.per_mille),
            count: at_most(&format!("{key}.count"), count, max, "per connection")?,
        })
    }
}

fn feature(
    keys: Option<FeatureKeys>,
    key: &str,
    base: &Feature,
    max: u32,
) -> Result<Feature, Fault> {
    match keys {
        Some(keys) => keys.apply(key, base, max),
        None => Ok(base.clone()),
    }
}

impl ScenarioKeys {
    fn build(self) -> Result<Scenario, Fault> {
        let mut sc = Scenario::mixed(DEFAULT_SEED, DEFAULT_CONNECTIONS);
        if let Some(n) = self.connections {
            if n > MAX_CONNECTIONS {
                return Err(fault(
                    "scenario.connections",
                    format!("at most {MAX_CONNECTIONS} connections"),
                ));
            }
            sc.connections = n;
        }
        sc.seed = self.seed.unwrap_or(sc.seed);
        if let Some(secs) = self.start {
            if secs > MAX_START_SECS {
                return Err(fault(
                    "scenario.start",
                    format!("seconds since 1970, at most {MAX_START_SECS}"),
                ));
            }
            sc.start_ns = secs * 1_000_000_000;
        }
        sc.arrival_spread_ns = self.spread.unwrap_or(sc.arrival_spread_ns);
        sc.ipv6_per_mille = self.ipv6.unwrap_or(sc.ipv6_per_mille);
        sc.vlan_per_mille = self.vlan.unwrap_or(sc.vlan_per_mille);
        sc.seq_wrap_per_mille = self.seq_wrap.unwrap_or(sc.seq_wrap_per_mille);
        sc.refused_per_mille = self.refused.unwrap_or(sc.refused_per_mille);
        sc.unanswered_per_mille = self.unanswered.unwrap_or(sc.unanswered_per_mille);
        if sc.refused_per_mille + sc.unanswered_per_mille > 1000 {
            let key = if self.unanswered.is_some() {
                "scenario.unanswered"
            } else {
                "scenario.refused"
            };
            return Err(fault(key, "refused and unanswered add up to over 100%"));
        }

        let h = self.handshake;
        sc.syn_synack_ns = h.syn_synack.unwrap_or(sc.syn_synack_ns);
        sc.synack_ack_ns = h.synack_ack.unwrap_or(sc.synack_ack_ns);
        sc.syn_retransmits = feature(
            h.syn_retransmits,
            "scenario.handshake.syn_retransmits",
            &sc.syn_retransmits,
            MAX_HANDSHAKE_RESENDS,
        )?;
        sc.synack_retransmits = feature(
            h.synack_retransmits,
            "scenario.handshake.synack_retransmits",
            &sc.synack_retransmits,
            MAX_HANDSHAKE_RESENDS,
        )?;

        let x = self.exchanges;
        if let Some(count) = x.count {
            sc.exchanges = at_most(
                "scenario.exchanges.count",
                count,
                MAX_EXCHANGES,
                "exchanges",
            )?;
        }
        if let Some(n) = x.request_segments {
            if *n.start() == 0 {
                return Err(fault(
                    "scenario.exchanges.request_segments",
                    "a request has at least 1 segment",
                ));
            }
            let key = "scenario.exchanges.request_segments";
            sc.request_segments = at_most(key, n, MAX_SEGMENTS, "segments")?;
        }
        if let Some(n) = x.response_segments {
            let key = "scenario.exchanges.response_segments";
            sc.response_segments = at_most(key, n, MAX_SEGMENTS, "segments")?;
        }
        if let Some(bytes) = x.segment_bytes {
            if *bytes.start() < *SEGMENT_BYTES.start() || *bytes.end() > *SEGMENT_BYTES.end() {
                return Err(fault(
                    "scenario.exchanges.segment_bytes",
                    "from 2 to 1428 bytes (no keep-alive look-alikes; frames fit a 1500-byte MTU)",
                ));
            }
            sc.segment_len = bytes;
        }
        sc.think_ns = x.think.unwrap_or(sc.think_ns);
        sc.delayed_acks_per_mille = x.delayed_acks.unwrap_or(sc.delayed_acks_per_mille);

        let a = self.anomalies;
        for (keys, name, target) in [
            (
                a.timeout_retransmits,
                "timeout_retransmits",
                &mut sc.timeout_retransmits,
            ),
            (
                a.fast_retransmits,
                "fast_retransmits",
                &mut sc.fast_retransmits,
            ),
            (
                a.spurious_retransmits,
                "spurious_retransmits",
                &mut sc.spurious_retransmits,
            ),
            (a.out_of_order, "out_of_order", &mut sc.out_of_order),
            (a.zero_window, "zero_window", &mut sc.zero_window),
        ] {
            let key = format!("scenario.anomalies.{name}");
            *target = feature(keys, &key, target, MAX_EPISODES)?;
        }
        if let Some(p) = a.zero_window_probes {
            let key = "scenario.anomalies.zero_window_probes";
            sc.zero_window_probes = at_most(key, p, MAX_PROBES, "probes per episode")?;
        }

        let e = self.encapsulation;
        sc.encapsulation = EncapMix {
            vxlan: e.vxlan.unwrap_or(0),
            geneve: e.geneve.unwrap_or(0),
            gre: e.gre.unwrap_or(0),
            erspan: e.erspan.unwrap_or(0),
            ip_in_ip: e.ip_in_ip.unwrap_or(0),
            mpls: e.mpls.unwrap_or(0),
            pppoe: e.pppoe.unwrap_or(0),
        };
        if sc.encapsulation.total() > 1000 {
            return Err(fault(
                "scenario.encapsulation",
                "the shares add up to over 100%",
            ));
        }

        if let Some(c) = self.close {
            sc.close = CloseMix {
                fin_client: c.fin_client,
                fin_server: c.fin_server,
                rst_client: c.rst_client,
                rst_server: c.rst_server,
                open: c.open,
            };
            let m = &sc.close;
            if [
                m.fin_client,
                m.fin_server,
                m.rst_client,
                m.rst_server,
                m.open,
            ] == [0; 5]
            {
                return Err(fault("scenario.close", "give at least one weight above 0"));
            }
        }

        if let Some(f) = self.flood {
            sc.flood = Some(f.build(&sc)?);
        }
        Ok(sc)
    }
}

impl FloodKeys {
    fn build(self, sc: &Scenario) -> Result<Flood, Fault> {
        if !(1..=MAX_FLOOD_SYNS).contains(&self.syns) {
            return Err(fault(
                "scenario.flood.syns",
                format!("from 1 to {MAX_FLOOD_SYNS} SYNs"),
            ));
        }
        let mut flood = Flood::new(self.syns);
        if let Some(target) = self.target {
            if !target.is_ipv4() {
                return Err(fault(
                    "scenario.flood.target",
                    "an IPv4 address:port (IPv6 sources flood target_v6)",
                ));
            }
            flood.target = target;
        }
        if let Some(target) = self.target_v6 {
            if !target.is_ipv6() {
                return Err(fault(
                    "scenario.flood.target_v6",
                    "an IPv6 [address]:port (IPv4 sources flood target)",
                ));
            }
            flood.target_v6 = target;
        }
        flood.ipv6_per_mille = self.ipv6.unwrap_or(0);
        flood.answered_per_mille = self.answered.unwrap_or(0);
        if self.rate == Some(0) {
            return Err(fault("scenario.flood.rate", "at least 1 SYN per second"));
        }
        flood.rate = self.rate;
        flood.start_ns = self.start.unwrap_or(0);
        flood.synack_ns = self
            .synack_delay
            .unwrap_or_else(|| sc.syn_synack_ns.clone());
        Ok(flood)
    }
}

/// `"2.5%"` → 25 per mille.
fn parse_percent(text: &str) -> Result<u16, String> {
    let bad = || format!("`{text}` is not a percentage such as \"5%\" or \"0.5%\"");
    let number = text.trim().strip_suffix('%').ok_or_else(bad)?.trim();
    let value: f64 = number.parse().map_err(|_| bad())?;
    let per_mille = value * 10.0;
    if !(0.0..=1000.0).contains(&per_mille) {
        return Err(format!("`{text}`: from 0% to 100%"));
    }
    if (per_mille - per_mille.round()).abs() > 1e-6 {
        return Err(format!("`{text}`: at most one decimal (0.1% steps)"));
    }
    Ok(per_mille.round() as u16)
}

/// A duration in nanoseconds as the command line reads it; `"0"` (any unit) too when `zero_ok`.
fn parse_ns(text: &str, zero_ok: bool) -> Result<u64, String> {
    let t = text.trim();
    let unit_at = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if zero_ok && t[..unit_at].parse::<f64>() == Ok(0.0) {
        // Still refuse an unknown unit.
        return parse_duration(&format!("1{}", &t[unit_at..])).map(|_| 0);
    }
    let d = parse_duration(t)?;
    u64::try_from(d.as_nanos()).map_err(|_| format!("`{text}` is out of range"))
}

/// `"LOW..HIGH"` or one value, each end read by `one`.
fn parse_range<T: PartialOrd + Copy>(
    text: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<RangeInclusive<T>, String> {
    let (lo, hi) = match text.split_once("..") {
        Some((lo, hi)) => (one(lo.trim())?, one(hi.trim().trim_start_matches('='))?),
        None => {
            let v = one(text.trim())?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("`{text}`: the low end is above the high end"));
    }
    Ok(lo..=hi)
}

fn parse_count(text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a whole number"))
}

fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    text_value(d, "a percentage such as \"5%\"", parse_percent)
}

fn duration_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    text_value(d, "a duration such as \"5s\" or \"0s\"", |t| {
        parse_ns(t, true)
    })
}

fn duration_range<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<RangeInclusive<u64>>, D::Error> {
    text_value(
        d,
        "a duration range such as \"200us..3ms\" or one duration",
        |t| parse_range(t, |one| parse_ns(one, false)),
    )
}

fn duration_range_or_zero<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<RangeInclusive<u64>>, D::Error> {
    text_value(
        d,
        "a duration range such as \"0s..50ms\" or one duration",
        |t| parse_range(t, |one| parse_ns(one, true)),
    )
}

/// `"1..3"`, `"2"` or `2`.
fn count_range<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RangeInclusive<u32>>, D::Error> {
    struct Counts;
    impl Visitor<'_> for Counts {
        type Value = RangeInclusive<u32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a count such as 2 or a range such as \"1..3\"")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            let n = u32::try_from(v).map_err(|_| E::custom(format!("{v}: not a count")))?;
            Ok(n..=n)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            let n = u32::try_from(v).map_err(|_| E::custom(format!("{v}: not a count")))?;
            Ok(n..=n)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_range(v, parse_count).map_err(E::custom)
        }
    }
    d.deserialize_any(Counts).map(Some)
}

fn address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    text_value(
        d,
        "an address:port such as \"203.0.113.1:443\"",
        |t: &str| {
            t.trim().parse::<SocketAddr>().map_err(|_| {
                format!("`{t}` is not an address:port such as \"203.0.113.1:443\" or \"[2001:db8::1]:443\"")
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;

    #[test]
    fn an_empty_scenario_is_the_default_capture() {
        assert_eq!(
            parse("[scenario]\n").unwrap(),
            Scenario::mixed(DEFAULT_SEED, DEFAULT_CONNECTIONS)
        );
        assert!(is_scenario("[scenario]\n"));
        assert!(!is_scenario("[pipeline]\nworkers = 2\n"));
        assert!(!is_scenario("not toml ["));
    }

    #[test]
    fn every_kind_of_value() {
        let sc = parse(
            "[scenario]\nconnections = 7\nseed = 9\nstart = 1600000000\nspread = \"0s\"\n\
             ipv6 = \"12.5%\"\nrefused = \"0%\"\n\
             [scenario.handshake]\nsyn_synack = \"200us..3ms\"\nsynack_ack = \"50us\"\n\
             syn_retransmits = { share = \"100%\", count = 2 }\n\
             [scenario.exchanges]\ncount = \"0..3\"\nthink = \"0s..1ms\"\n\
             [scenario.anomalies]\nfast_retransmits = { count = \"2..3\" }\n\
             [scenario.close]\nrst_server = 1\n\
             [scenario.flood]\nsyns = 100\ntarget = \"203.0.113.9:80\"\nanswered = \"50%\"\n",
        )
        .unwrap();
        assert_eq!((sc.connections, sc.seed), (7, 9));
        assert_eq!(sc.start_ns, 1_600_000_000 * 1_000_000_000);
        assert_eq!(sc.arrival_spread_ns, 0);
        assert_eq!((sc.ipv6_per_mille, sc.refused_per_mille), (125, 0));
        assert_eq!(sc.syn_synack_ns, 200 * US..=3 * MS);
        assert_eq!(sc.synack_ack_ns, 50 * US..=50 * US);
        assert_eq!(sc.syn_retransmits, Feature::every(2..=2));
        assert_eq!(sc.exchanges, 0..=3);
        assert_eq!(sc.think_ns, 0..=MS);
        // The share keeps the mixed scenario's.
        assert_eq!(sc.fast_retransmits, Feature::some(80, 2..=3));
        assert_eq!(sc.close.rst_server, 1);
        assert_eq!(sc.close.fin_client, 0);
        let flood = sc.flood.unwrap();
        assert_eq!(flood.target.to_string(), "203.0.113.9:80");
        assert_eq!((flood.syns, flood.answered_per_mille), (100, 500));
        assert_eq!(flood.synack_ns, 200 * US..=3 * MS);
    }

    /// The key and line:column an error points at.
    fn fault(text: &str) -> (Option<String>, Option<(usize, usize)>, String) {
        let e = parse(text).expect_err("must be refused");
        (e.key, e.position, e.message)
    }

    #[test]
    fn errors_name_the_key_and_where_it_is() {
        let cases: &[(&str, &str, (usize, usize), &str)] = &[
            (
                "[scenario]\nipv6 = 20\n",
                "scenario.ipv6",
                (2, 8),
                "percentage",
            ),
            (
                "[scenario]\nvlan = \"101%\"\n",
                "scenario.vlan",
                (2, 8),
                "100%",
            ),
            (
                "[scenario]\nvlan = \"1.25%\"\n",
                "scenario.vlan",
                (2, 8),
                "one decimal",
            ),
            (
                "[scenario.handshake]\nsyn_synack = \"3ms..200us\"\n",
                "scenario.handshake.syn_synack",
                (2, 14),
                "low end",
            ),
            (
                "[scenario.handshake]\nsyn_synack = \"0s..2ms\"\n",
                "scenario.handshake.syn_synack",
                (2, 14),
                "out of range",
            ),
            (
                "[scenario.handshake]\nsynack_ack = \"5 parsecs\"\n",
                "scenario.handshake.synack_ack",
                (2, 14),
                "unknown unit",
            ),
            (
                "[scenario.handshake]\nsyn_retransmits = { share = \"5%\", count = 9 }\n",
                "scenario.handshake.syn_retransmits.count",
                (2, 43),
                "at most 6",
            ),
            (
                "[scenario.anomalies]\nzero_window = { often = \"5%\" }\n",
                "scenario.anomalies.zero_window.often",
                (2, 17),
                "unknown key",
            ),
            (
                "[scenario]\nconection = 5\n",
                "scenario.conection",
                (2, 1),
                "unknown key",
            ),
            (
                "[scenario]\nrefused = \"60%\"\nunanswered = \"50%\"\n",
                "scenario.unanswered",
                (3, 14),
                "over 100%",
            ),
            (
                "[scenario.close]\nfin_client = 0\n",
                "scenario.close",
                (1, 1),
                "at least one weight",
            ),
            (
                "[scenario.flood]\nsyns = 10\ntarget = \"[2001:db8::1]:80\"\n",
                "scenario.flood.target",
                (3, 10),
                "IPv4",
            ),
            (
                "[scenario.flood]\nsyns = 10\ntarget = \"somewhere\"\n",
                "scenario.flood.target",
                (3, 10),
                "address:port",
            ),
            (
                "[scenario.exchanges]\nsegment_bytes = \"1..100\"\n",
                "scenario.exchanges.segment_bytes",
                (2, 17),
                "from 2",
            ),
            (
                "[scenario]\nconnections = -1\n",
                "scenario.connections",
                (2, 15),
                "",
            ),
        ];
        for &(text, key, at, words) in cases {
            let (k, pos, message) = fault(text);
            assert_eq!(k.as_deref(), Some(key), "{text}: {message}");
            assert_eq!(pos, Some(at), "{text}: {message}");
            assert!(message.contains(words), "{text}: {message}");
        }
    }

    #[test]
    fn an_error_reads_as_file_line_column_key_message() {
        let e = parse("[scenario]\nipv6 = \"x\"\n")
            .unwrap_err()
            .in_file(Path::new("s.toml"));
        assert_eq!(
            e.to_string(),
            "s.toml:2:8: scenario.ipv6: `x` is not a percentage such as \"5%\" or \"0.5%\""
        );
    }
}
