//! AF_PACKET transmit through a memory-mapped TPACKET_V2 TX ring with the qdisc bypassed: frames
//! are written into ring slots and one `sendto` sends every slot filled since the last one.
//! The system calls and the slot layout are `sys::packet`'s.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Transmit, TxError, TxStats};
use crate::sys::packet::{self, Kick, TxRing, TxSlot};

/// Slot size: a header (32 bytes) plus a full 1500-byte-MTU Ethernet frame with two VLAN tags.
const SLOT: usize = 2048;
const BLOCK: usize = 1 << 16;

/// One AF_PACKET socket with its TX ring, bound to one interface.
pub struct PacketRing {
    /// Declared before `fd`: the ring is unmapped before the socket closes.
    ring: TxRing,
    fd: OwnedFd,
    /// Next slot to fill.
    next: usize,
    stats: TxStats,
    iface: String,
}

fn failed(context: &str, iface: &str, source: io::Error) -> TxError {
    TxError::Io {
        context: format!("{context} on {iface}"),
        source,
    }
}

impl PacketRing {
    /// Opens a TX ring of at least `frames` slots on `iface` (current network namespace).
    ///
    /// # Errors
    /// [`TxError::InterfaceMissing`], [`TxError::Privilege`] without CAP_NET_RAW, or the
    /// system call that failed.
    pub fn open(iface: &str, frames: usize) -> Result<PacketRing, TxError> {
        let ifindex = super::if_index(iface)?;
        let fd = packet::open().map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                TxError::Privilege {
                    missing: "CAP_NET_RAW",
                }
            } else {
                TxError::Io {
                    context: "AF_PACKET socket".into(),
                    source: e,
                }
            }
        })?;
        let blocks = frames.div_ceil(BLOCK / SLOT).max(1);
        let ring = TxRing::set_up(fd.as_raw_fd(), BLOCK, blocks, SLOT)
            .map_err(|(what, e)| failed(what, iface, e))?;
        packet::bind_send_only(fd.as_raw_fd(), ifindex).map_err(|e| failed("bind", iface, e))?;
        Ok(PacketRing {
            ring,
            fd,
            next: 0,
            stats: TxStats::default(),
            iface: iface.to_string(),
        })
    }

    /// Asks the kernel to send every filled slot.
    fn kick(&mut self) -> Result<(), TxError> {
        self.stats.syscalls += 1;
        match packet::kick_tx(self.fd.as_raw_fd(), false) {
            // Busy: the ring's frames stay queued; later kicks send them.
            Kick::Sent | Kick::Busy => Ok(()),
            Kick::Gone => Err(TxError::InterfaceGone {
                iface: self.iface.clone(),
            }),
            Kick::Failed(e) => Err(TxError::Io {
                context: format!("send on {}", self.iface),
                source: e,
            }),
        }
    }
}

impl Transmit for PacketRing {
    fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, TxError> {
        let mut taken = 0;
        for frame in frames {
            let i = self.next;
            match self.ring.state(i) {
                // Ring full: the kernel has not sent this slot yet.
                TxSlot::Busy => break,
                TxSlot::Rejected => self.stats.rejected += 1,
                TxSlot::Free => {}
            }
            if self.ring.fill(i, frame) < frame.len() {
                self.stats.truncated += 1;
            }
            self.next = (i + 1) % self.ring.slots();
            taken += 1;
        }
        if taken > 0 || !frames.is_empty() {
            self.kick()?;
        }
        self.stats.frames += taken as u64;
        Ok(taken)
    }

    fn stats(&self) -> TxStats {
        self.stats
    }

    fn describe(&self) -> String {
        format!(
            "{}: AF_PACKET TX ring ({} slots, qdisc bypassed)",
            self.iface,
            self.ring.slots()
        )
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // Frames still queued go out before the ring is unmapped: a blocking send waits for
        // them.
        let _ = packet::kick_tx(self.fd.as_raw_fd(), true);
    }
}
