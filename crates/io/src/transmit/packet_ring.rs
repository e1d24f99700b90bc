//! AF_PACKET transmit through a memory-mapped TPACKET_V2 TX ring with the qdisc bypassed: frames
//! are written into ring slots and one `sendto` sends every slot filled since the last one.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use super::{Transmit, TxError, TxStats};

/// Slot size: a header (32 bytes) plus a full 1500-byte-MTU Ethernet frame with two VLAN tags.
const SLOT: usize = 2048;
/// Where a frame's bytes start in its slot (TPACKET_V2 header, aligned to 16).
const DATA_OFFSET: usize = 32;
/// Largest frame a slot holds.
pub const MAX_FRAME: usize = SLOT - DATA_OFFSET;
const BLOCK: usize = 1 << 16;

/// One AF_PACKET socket with its TX ring, bound to one interface.
pub struct PacketRing {
    fd: OwnedFd,
    ring: NonNull<u8>,
    slots: usize,
    /// Next slot to fill.
    next: usize,
    stats: TxStats,
    iface: String,
}

// SAFETY: the ring mapping is owned by this value alone and used by one thread at a time.
unsafe impl Send for PacketRing {}

fn last_os(context: &str, iface: &str) -> TxError {
    TxError::Io {
        context: format!("{context} on {iface}"),
        source: io::Error::last_os_error(),
    }
}

fn set_int(fd: i32, opt: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` outlives the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            opt,
            (&raw const value).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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
        // Protocol 0: this socket receives nothing.
        // SAFETY: plain socket(2) call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EPERM) {
                TxError::Privilege {
                    missing: "CAP_NET_RAW",
                }
            } else {
                TxError::Io {
                    context: "AF_PACKET socket".into(),
                    source: e,
                }
            });
        }
        // SAFETY: `raw` is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let v2 = libc::tpacket_versions::TPACKET_V2 as i32;
        set_int(raw, libc::PACKET_VERSION, v2).map_err(|_| last_os("PACKET_VERSION", iface))?;
        // The generator measures the monitor, not the qdisc; a kernel without the option still
        // sends, through the qdisc.
        let _ = set_int(raw, libc::PACKET_QDISC_BYPASS, 1);
        // A frame the kernel rejects is skipped instead of stopping the ring.
        let _ = set_int(raw, libc::PACKET_LOSS, 1);
        let per_block = BLOCK / SLOT;
        let blocks = frames.div_ceil(per_block).max(1);
        let req = libc::tpacket_req {
            tp_block_size: BLOCK as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: SLOT as u32,
            tp_frame_nr: (blocks * per_block) as u32,
        };
        // SAFETY: `req` outlives the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_TX_RING,
                (&raw const req).cast(),
                std::mem::size_of::<libc::tpacket_req>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_os("PACKET_TX_RING", iface));
        }
        let len = blocks * BLOCK;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last_os("mmap TX ring", iface));
        }
        let ring = NonNull::new(map.cast::<u8>()).ok_or_else(|| last_os("mmap TX ring", iface))?;
        let ring = PacketRing {
            fd,
            ring,
            slots: blocks * per_block,
            next: 0,
            stats: TxStats::default(),
            iface: iface.to_string(),
        };
        // SAFETY: zeroed sockaddr_ll is valid; the fields set are the ones bind reads.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` outlives the call and its size is passed.
        let rc = unsafe {
            libc::bind(
                raw,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_os("bind", iface));
        }
        Ok(ring)
    }

    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: i < slots, and slots * SLOT bytes are mapped.
        unsafe { self.ring.as_ptr().add(i * SLOT) }
    }

    fn status(&self, i: usize) -> u32 {
        // SAFETY: the slot starts with the kernel-shared u32 status word, 16-byte aligned.
        unsafe { std::ptr::read_volatile(self.slot(i).cast::<u32>()) }
    }

    /// Asks the kernel to send every filled slot.
    fn kick(&mut self) -> Result<(), TxError> {
        loop {
            // SAFETY: a zero-length send on a bound packet socket with a TX ring: the kernel
            // reads the ring, not the (null) buffer.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            self.stats.syscalls += 1;
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The ring's frames are queued; the kernel is busy. Later kicks send them.
                Some(libc::EAGAIN | libc::ENOBUFS) => return Ok(()),
                Some(libc::ENXIO | libc::ENODEV | libc::ENETDOWN) => {
                    return Err(TxError::InterfaceGone {
                        iface: self.iface.clone(),
                    })
                }
                _ => {
                    return Err(TxError::Io {
                        context: format!("send on {}", self.iface),
                        source: e,
                    })
                }
            }
        }
    }
}

impl Transmit for PacketRing {
    fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, TxError> {
        let mut taken = 0;
        for frame in frames {
            let i = self.next;
            let status = self.status(i);
            if status & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0 {
                break; // ring full: the kernel has not sent this slot yet
            }
            if status & libc::TP_STATUS_WRONG_FORMAT != 0 {
                self.stats.rejected += 1;
            }
            let len = frame.len().min(MAX_FRAME);
            if len < frame.len() {
                self.stats.truncated += 1;
            }
            let slot = self.slot(i);
            // SAFETY: the slot is ours (status AVAILABLE) and holds DATA_OFFSET + MAX_FRAME
            // bytes; the header is 16-byte aligned tpacket2_hdr.
            unsafe {
                std::ptr::copy_nonoverlapping(frame.as_ptr(), slot.add(DATA_OFFSET), len);
                let hdr = slot.cast::<libc::tpacket2_hdr>();
                (*hdr).tp_len = len as u32;
                std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
                std::ptr::write_volatile(&raw mut (*hdr).tp_status, libc::TP_STATUS_SEND_REQUEST);
            }
            self.next = (i + 1) % self.slots;
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
            self.iface, self.slots
        )
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // Frames still queued go out before the ring is unmapped (the kernel waits for them
        // with a blocking send).
        // SAFETY: as in kick; a blocking zero-length send flushes the ring.
        unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                0,
                std::ptr::null(),
                0,
            );
            libc::munmap(
                self.ring.as_ptr().cast(),
                self.slots / (BLOCK / SLOT) * BLOCK,
            );
        }
    }
}
