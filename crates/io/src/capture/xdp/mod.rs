//! Live capture with AF_XDP: one socket per RX queue, fed by tcpulse's own XDP program.
//!
//! - [`XdpQueue::open`] binds a socket (UMEM, fill and RX rings through xsk-rs) to one RX queue;
//!   [`XdpQueue::recv_batch`] hands frames to a callback in place, in batches, with a
//!   Unix-epoch timestamp each; [`XdpQueue::stats`] reads the kernel's drop counters.
//! - [`XdpProgram`] is the loader for `bpf/capture.bpf.c`: TCP to the socket of the receiving
//!   queue with a receive timestamp in the frame's metadata, everything else to the kernel.
//!   Queues of one interface share one program, attached on first open and detached when the
//!   last queue is dropped.
//! - Fallbacks, each visible in [`XdpInfo`]: copy mode when the driver cannot do zero-copy,
//!   libxdp's default program with user-space batch time when ours cannot be loaded, kernel time
//!   when the driver has no receive timestamp.
//!
//! Only `sys.rs` and `program.rs` (libbpf) talk to the kernel directly; `queue.rs` goes through
//! xsk-rs. Network-namespace dependent calls act in the calling thread's namespace. See
//! docs/live.md for modes, timestamps and their measured precision, and capabilities.

mod clock;
mod error;
mod info;
mod meta;
mod program;
mod queue;

use std::fmt;

pub use clock::EpochOffset;
pub use error::LiveError;
pub use program::{
    attached_ids, object_file, ProgramCounters, XdpProgram, PROGRAM_NAME, PROGRAM_NAME_HW,
};
pub use queue::{ProgramKind, TimestampSource, XdpInfo, XdpQueue, XdpStats};

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`): fast, needs driver support.
    #[default]
    Native,
    /// Generic XDP on the kernel's skb path (`XDP_FLAGS_SKB_MODE`): any interface, slower,
    /// copy mode only.
    Skb,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        })
    }
}

/// Zero-copy policy for binding the socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy when the driver supports it, else copy mode.
    #[default]
    Auto,
    /// Always copy mode.
    Copy,
    /// Zero-copy or fail.
    ZeroCopy,
}

/// Which XDP program feeds the sockets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgramChoice {
    /// tcpulse's program; libxdp's default when ours cannot be loaded.
    #[default]
    Auto,
    /// tcpulse's program or fail.
    Ours,
    /// libxdp's default program: all traffic of the queue, user-space timestamps.
    LibxdpDefault,
}

/// Settings of [`XdpQueue::open`]. Queues of one interface must agree on `mode`,
/// `capture_all` and `hw_timestamps` (they share the program).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpOptions {
    /// Native (default) or skb mode.
    pub mode: XdpMode,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// UMEM frames, also the fill and RX ring sizes; a power of two, 64 to 2^20.
    pub frame_count: u32,
    /// Bytes per frame: 2048 or 4096 (frames larger than that minus 256 bytes of headroom are
    /// dropped by the kernel).
    pub frame_size: u32,
    /// Most frames per `recv_batch` call.
    pub batch: u32,
    /// Put the interface in promiscuous mode while the queue is open (SPAN ports).
    pub promiscuous: bool,
    /// Take every frame, not only TCP, from the kernel.
    pub capture_all: bool,
    /// Ask the driver for receive timestamps (device-bound program; native mode only).
    pub hw_timestamps: bool,
    /// Which program to use.
    pub program: ProgramChoice,
}

impl Default for XdpOptions {
    fn default() -> Self {
        XdpOptions {
            mode: XdpMode::Native,
            zero_copy: ZeroCopy::Auto,
            frame_count: 4096,
            frame_size: 2048,
            batch: 64,
            promiscuous: false,
            capture_all: false,
            hw_timestamps: false,
            program: ProgramChoice::Auto,
        }
    }
}

/// Number of RX queues of `iface` in the calling thread's namespace (ethtool channel count,
/// else sysfs), when the driver says.
pub fn rx_queue_count(iface: &str) -> Option<u32> {
    crate::sys::xdp::rx_queue_count(iface)
}
