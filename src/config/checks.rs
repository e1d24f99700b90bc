//! Checks of the settings the command line and the configuration file share: the same limits
//! and the same messages whichever way a value was given.

use tcpulse_core::flow::latency::RttSource;
use tcpulse_core::flow::TunnelKeying;
use tcpulse_io::capture::xdp::XdpMode;
use tcpulse_io::capture::CaptureKind;

/// Most flow workers a run may have.
pub const MAX_WORKERS: u16 = 256;

/// Checks a worker count against 1..=[`MAX_WORKERS`].
pub fn check_workers(n: u16) -> Result<u16, String> {
    if (1..=MAX_WORKERS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} workers: use 1 to {MAX_WORKERS}"))
    }
}

/// Checks a flow-table size: at least one flow.
pub fn check_max_flows(n: usize) -> Result<usize, String> {
    if n == 0 {
        Err("the flow table must hold at least one flow".into())
    } else {
        Ok(n)
    }
}

pub fn parse_max_flows(text: &str) -> Result<usize, String> {
    let n = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of flows"))?;
    check_max_flows(n)
}

pub fn parse_ring_frames(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .map_err(|_| format!("`{text}`: a power of two from 64 to 1048576"))
        .and_then(check_ring_frames)
}

/// Checks a ring size: a power of two from 64 to 1048576.
pub fn check_ring_frames(n: u32) -> Result<u32, String> {
    if n.is_power_of_two() && (64..=1 << 20).contains(&n) {
        Ok(n)
    } else {
        Err(format!("`{n}`: a power of two from 64 to 1048576"))
    }
}

/// AF_PACKET rings of one run: 1 to 256.
pub fn check_threads(n: u32) -> Result<u32, String> {
    if (1..=256).contains(&n) {
        Ok(n)
    } else {
        Err(format!("`{n}`: from 1 to 256"))
    }
}

pub fn parse_capture_kind(text: &str) -> Result<CaptureKind, String> {
    match text {
        "xdp" | "af-xdp" => Ok(CaptureKind::Xdp),
        "af-packet" | "packet" => Ok(CaptureKind::AfPacket),
        _ => Err(format!("`{text}`: use xdp or af-packet")),
    }
}

/// A capture filter libpcap compiles, kept as written.
pub fn parse_filter(text: &str) -> Result<String, String> {
    tcpulse_io::capture::CaptureFilter::new(text)
        .map(|_| text.to_string())
        .map_err(|e| e.reason)
}

pub fn parse_key_tunnel(text: &str) -> Result<TunnelKeying, String> {
    TunnelKeying::parse(text).ok_or_else(|| format!("`{text}`: use none, vni or all"))
}

pub fn parse_rtt_source(text: &str) -> Result<RttSource, String> {
    RttSource::parse(text).ok_or_else(|| format!("`{text}`: use auto, timestamps or seq-ack"))
}

pub fn parse_xdp_mode(text: &str) -> Result<XdpMode, String> {
    match text {
        "native" | "drv" => Ok(XdpMode::Native),
        "skb" | "generic" => Ok(XdpMode::Skb),
        _ => Err(format!("`{text}`: use native or skb")),
    }
}
