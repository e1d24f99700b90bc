//! Transmit: put generated frames on an interface, for live tests and benchmarks of the monitor
//! (the veth lab; kernels without pktgen).
//!
//! - [`Transmit`]: a batch sender. [`PacketRing`] (AF_PACKET TX ring, qdisc bypassed) works on
//!   any interface with CAP_NET_RAW; [`XskTx`] (AF_XDP, copy mode, one TX queue chosen by
//!   the caller) puts traffic on chosen queues.
//! - [`FrameBook`]: frames serialised once into one buffer with their scenario times, so
//!   sending is copying into the ring and nothing else.
//! - [`send`]: the loop — frames in time order, paced to a packet rate, to the scenario's own
//!   times (scaled), or as fast as the ring takes them, with loops.

mod book;
mod pace;
mod packet_ring;
mod xsk;

use std::fmt;
use std::io;

pub use book::{queue_of, FrameBook, Spread};
pub use pace::{send, OnSent, Pace, SendReport};
pub use packet_ring::PacketRing;
pub use xsk::XskTx;

/// Counts of one transmitter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Frames handed to the kernel.
    pub frames: u64,
    /// Send system calls.
    pub syscalls: u64,
    /// Frames cut to the slot size.
    pub truncated: u64,
    /// Frames the kernel refused (malformed for the device).
    pub rejected: u64,
}

/// Sends frames in batches.
pub trait Transmit: Send {
    /// Queues as many of `frames` as the ring has room for, in order, and asks the kernel to
    /// send them (one system call). Returns how many were taken; 0 means the ring is full.
    ///
    /// # Errors
    /// [`TxError::InterfaceGone`] when the interface disappeared, [`TxError::Io`] otherwise.
    fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, TxError>;
    fn stats(&self) -> TxStats;
    /// One line for the operator.
    fn describe(&self) -> String;
}

/// Why transmitting could not start or stopped.
#[derive(Debug)]
pub enum TxError {
    InterfaceMissing {
        iface: String,
    },
    InterfaceGone {
        iface: String,
    },
    Privilege {
        missing: &'static str,
    },
    /// A frame's packet (what follows the Ethernet header and its VLAN tags) is longer than
    /// the interface's MTU: the device or its peer would drop it without a word.
    FrameTooLong {
        iface: String,
        packet: usize,
        mtu: u32,
    },
    Io {
        context: String,
        source: io::Error,
    },
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::InterfaceMissing { iface } => write!(
                f,
                "no interface {iface} in this network namespace (see `ip link`)"
            ),
            TxError::InterfaceGone { iface } => write!(f, "interface {iface} went away"),
            TxError::Privilege { missing } => write!(
                f,
                "sending raw frames needs {missing} (run as root or grant the capability)"
            ),
            TxError::FrameTooLong { iface, packet, mtu } => write!(
                f,
                "frames carry packets of up to {packet} bytes, over {iface}'s MTU of {mtu} \
                 (raise it: `ip link set {iface} mtu {packet}`, or send smaller segments)"
            ),
            TxError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for TxError {}

/// Checks that every frame of `book` fits `iface`'s MTU.
///
/// # Errors
/// [`TxError::InterfaceMissing`], or [`TxError::FrameTooLong`] with the longest packet.
pub fn check_mtu(iface: &str, book: &FrameBook) -> Result<(), TxError> {
    let mtu = crate::sys::xdp::if_mtu(iface).ok_or_else(|| TxError::InterfaceMissing {
        iface: iface.to_string(),
    })?;
    let packet = (0..book.len())
        .map(|i| packet_len(book.frame(i)))
        .max()
        .unwrap_or(0);
    if packet > mtu as usize {
        return Err(TxError::FrameTooLong {
            iface: iface.to_string(),
            packet,
            mtu,
        });
    }
    Ok(())
}

/// Bytes after an Ethernet frame's header and its 802.1Q / 802.1ad tags: what the MTU bounds.
fn packet_len(frame: &[u8]) -> usize {
    const TAGS: [u16; 2] = [0x8100, 0x88a8];
    let mut header = 14;
    while let Some(t) = frame.get(header - 2..header) {
        if !TAGS.contains(&u16::from_be_bytes([t[0], t[1]])) {
            break;
        }
        header += 4;
    }
    frame.len().saturating_sub(header)
}

fn if_index(iface: &str) -> Result<u32, TxError> {
    crate::sys::if_index(iface).ok_or_else(|| TxError::InterfaceMissing {
        iface: iface.to_string(),
    })
}
