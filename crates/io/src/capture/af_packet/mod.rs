//! Live capture with AF_PACKET (TPACKET_V3), the non-stealing source: the host's stack keeps
//! every frame and tcpulse reads copies, so it can watch a busy gateway without being in its
//! forwarding path.
//!
//! - [`AfPacketQueue::open`] makes one ring socket: a TPACKET_V3 RX ring mapped into the process,
//!   bound to the interface (both directions: frames received and frames the host sends), a
//!   classic BPF filter keeping TCP and tunnel carriers (and what `--filter` selects), and membership in the process's hash fanout group for
//!   that interface, so N sockets share the traffic with each connection on one socket.
//! - [`AfPacketQueue::recv_batch`] (through [`LiveQueue`](super::LiveQueue)) hands the frames of
//!   one ring block to a callback in place, with the kernel's nanosecond receive time, and gives
//!   the block back.
//!
//! `socket.rs` makes the system calls, `ring.rs` reads the ring, `filter.rs` is the filter
//! program. See docs/live.md ("AF_PACKET capture") for costs, timestamps and privileges.

mod filter;
mod queue;
mod ring;

pub use crate::sys::packet::SockFilter;
pub use queue::AfPacketQueue;

/// Settings of [`AfPacketQueue::open`]. Memory is `block_size × block_count` per ring (32 MiB by
/// default), allocated by the kernel at open.
///
/// The kernel hands a block over when it is full or `retire_ms` after its first frame, so on a
/// quiet link each block carries only a few frames: the ring then holds
/// `block_count × retire_ms` of traffic (512 ms by default) before a stalled reader loses frames,
/// and on a busy link `block_size × block_count` bytes. Many small blocks serve both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Bytes per ring block: a power of two, 64 KiB to 64 MiB. A frame larger than a block
    /// (after GRO) is cut to it.
    pub block_size: u32,
    /// Blocks per ring, 2 to 65536; `block_size × block_count` below 4 GiB.
    pub block_count: u32,
    /// The ring's nominal frame size, which the kernel wants for TPACKET_V3 too although frames
    /// are packed at their real size: a multiple of 16, 64 to `block_size`.
    pub frame_size: u32,
    /// A block that is not full is handed over anyway after this many milliseconds, so a quiet
    /// link still delivers (1 to 1000).
    pub retire_ms: u32,
    /// Put the interface in promiscuous mode while the ring is open (SPAN ports).
    pub promiscuous: bool,
    /// Every frame, not only TCP.
    pub capture_all: bool,
    /// The operator's capture filter (`--filter`) as classic BPF for Ethernet, run in the
    /// kernel on the frames the ring would take, so those it rejects are never copied.
    pub filter: Option<Vec<SockFilter>>,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            block_size: 256 << 10,
            block_count: 128,
            frame_size: 2048,
            retire_ms: 4,
            promiscuous: false,
            capture_all: false,
            filter: None,
        }
    }
}
