//! The mmap'd TPACKET_V3 receive ring: blocks the kernel fills with frames and hands over by
//! setting `TP_STATUS_USER` in the block header, and user space gives back by writing
//! `TP_STATUS_KERNEL`. [`walk_block`] reads one handed-over block (plain bytes, so unit tests can
//! build one); [`Ring`] owns the mapping and the block cursor.
//!
//! Layouts (linux/if_packet.h) are read at named offsets, native endian, and every offset and
//! length the kernel wrote is checked against the block before use: a bad block ends the walk,
//! never reads outside it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::packet::SharedMap;

/// `struct tpacket_block_desc` with its `tpacket_hdr_v1`.
mod block {
    pub const STATUS: usize = 8;
    pub const NUM_PKTS: usize = 12;
    pub const OFFSET_TO_FIRST_PKT: usize = 16;
    pub const HEADER_LEN: usize = 48;
}

/// `struct tpacket3_hdr`.
mod frame {
    pub const NEXT_OFFSET: usize = 0;
    pub const SEC: usize = 4;
    pub const NSEC: usize = 8;
    pub const SNAPLEN: usize = 12;
    pub const LEN: usize = 16;
    pub const STATUS: usize = 20;
    pub const MAC: usize = 24;
    pub const VLAN_TCI: usize = 32;
    pub const VLAN_TPID: usize = 36;
    pub const HEADER_LEN: usize = 48;
}

pub const TP_STATUS_KERNEL: u32 = 0;
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const ETHERTYPE_VLAN: u16 = 0x8100;
/// Destination and source MAC: where a tag goes back in.
const MACS_LEN: usize = 12;
pub const TAG_LEN: usize = 4;

/// A VLAN tag the kernel took out of the frame (`tp_vlan_tci`, `tp_vlan_tpid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    pub tci: u16,
}

/// One frame in a block.
#[derive(Debug, PartialEq, Eq)]
pub struct RingFrame<'a> {
    /// `tp_sec`/`tp_nsec`: Unix-epoch nanoseconds.
    pub ts_ns: u64,
    /// The captured bytes, from the MAC header on (without the tag in `vlan`).
    pub data: &'a [u8],
    /// Length on the wire, as the kernel saw it (without the tag in `vlan`).
    pub wire_len: u32,
    pub vlan: Option<VlanTag>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

/// What [`walk_block`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// Frames handed to the callback.
    pub frames: usize,
    /// The block said it held more frames than could be read from it.
    pub malformed: bool,
}

/// Calls `f` for each frame of a block user space owns, in order.
pub fn walk_block<'a>(blk: &'a [u8], mut f: impl FnMut(RingFrame<'a>)) -> Walk {
    let mut walk = Walk::default();
    let (Some(count), Some(first)) = (
        u32_at(blk, block::NUM_PKTS),
        u32_at(blk, block::OFFSET_TO_FIRST_PKT),
    ) else {
        walk.malformed = true;
        return walk;
    };
    let mut at = first as usize;
    for i in 0..count {
        let Some(fr) = read_frame(blk, at) else {
            walk.malformed = true;
            return walk;
        };
        f(fr.0);
        walk.frames += 1;
        if i + 1 < count {
            // Each frame header is followed by its data, so a next offset that does not move
            // past the header is corrupt (and would loop).
            if (fr.1 as usize) < frame::HEADER_LEN {
                walk.malformed = true;
                return walk;
            }
            at = match at.checked_add(fr.1 as usize) {
                Some(next) => next,
                None => {
                    walk.malformed = true;
                    return walk;
                }
            };
        }
    }
    walk
}

/// The frame whose `tpacket3_hdr` starts at `at`, and its `tp_next_offset`.
fn read_frame(blk: &[u8], at: usize) -> Option<(RingFrame<'_>, u32)> {
    if at < block::HEADER_LEN {
        return None;
    }
    let hdr = blk.get(at..at.checked_add(frame::HEADER_LEN)?)?;
    let next = u32_at(hdr, frame::NEXT_OFFSET)?;
    let sec = u64::from(u32_at(hdr, frame::SEC)?);
    let nsec = u64::from(u32_at(hdr, frame::NSEC)?);
    let snaplen = u32_at(hdr, frame::SNAPLEN)? as usize;
    let wire_len = u32_at(hdr, frame::LEN)?;
    let status = u32_at(hdr, frame::STATUS)?;
    let mac = usize::from(u16_at(hdr, frame::MAC)?);
    let start = at.checked_add(mac)?;
    let data = blk.get(start..start.checked_add(snaplen)?)?;
    let vlan = (status & TP_STATUS_VLAN_VALID != 0).then(|| VlanTag {
        tpid: if status & TP_STATUS_VLAN_TPID_VALID != 0 {
            u16_at(hdr, frame::VLAN_TPID).unwrap_or(ETHERTYPE_VLAN)
        } else {
            ETHERTYPE_VLAN
        },
        // The TCI is a 32-bit field holding a 16-bit value.
        tci: u32_at(hdr, frame::VLAN_TCI).unwrap_or(0) as u16,
    });
    let fr = RingFrame {
        ts_ns: sec.saturating_mul(1_000_000_000).saturating_add(nsec),
        data,
        wire_len,
        vlan,
    };
    Some((fr, next))
}

/// Writes `data` with `tag` put back after the MAC addresses into `scratch` (cleared first) and
/// returns it; `data` itself when it is too short to have had a tag. `scratch` is reserved large
/// enough once, so this never allocates for frames of a ring block.
pub fn with_tag<'s>(data: &'s [u8], tag: VlanTag, scratch: &'s mut Vec<u8>) -> &'s [u8] {
    if data.len() < MACS_LEN {
        return data;
    }
    scratch.clear();
    scratch.extend_from_slice(&data[..MACS_LEN]);
    scratch.extend_from_slice(&tag.tpid.to_be_bytes());
    scratch.extend_from_slice(&tag.tci.to_be_bytes());
    scratch.extend_from_slice(&data[MACS_LEN..]);
    scratch
}

/// The mapping of one socket's RX ring and the next block to read.
#[derive(Debug)]
pub struct Ring {
    map: SharedMap,
    block_size: usize,
    block_count: usize,
    next: usize,
}

impl Ring {
    /// Maps the ring set up on `fd` with PACKET_RX_RING.
    pub fn map(fd: RawFd, block_size: usize, block_count: usize) -> io::Result<Ring> {
        let len = block_size
            .checked_mul(block_count)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(Ring {
            map: SharedMap::map(fd, len)?,
            block_size,
            block_count,
            next: 0,
        })
    }

    fn status(&self, index: usize) -> &AtomicU32 {
        let at = self.map.base() + index * self.block_size + block::STATUS;
        let p = std::ptr::with_exposed_provenance_mut::<u32>(at);
        // SAFETY: `at` is inside the mapping (index < block_count, STATUS + 4 <= block size),
        // 4-byte aligned (blocks are page aligned), and the kernel only touches the word
        // atomically; the mapping lives as long as `self`.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// The next block, when the kernel has handed it over. It stays ours until [`Ring::release`].
    pub fn ready(&self) -> Option<&[u8]> {
        // Acquire: the block's contents were written before the kernel set the status.
        if self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return None;
        }
        let at = self.map.base() + self.next * self.block_size;
        let p = std::ptr::with_exposed_provenance::<u8>(at);
        // SAFETY: the block lies inside the mapping; with TP_STATUS_USER set the kernel does not
        // write it until we store TP_STATUS_KERNEL in `release`, which needs `&mut self`, so the
        // slice cannot outlive our ownership.
        Some(unsafe { std::slice::from_raw_parts(p, self.block_size) })
    }

    /// Gives the current block back to the kernel and moves to the next.
    pub fn release(&mut self) {
        // Release: our reads of the block happen before the kernel may reuse it.
        self.status(self.next)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % self.block_count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        ts: (u32, u32),
        data: Vec<u8>,
        vlan: Option<VlanTag>,
    }

    /// A block laid out as the kernel lays it out: header, then frames aligned to 16 bytes, each
    /// with `tp_mac` pointing past a gap (where sockaddr_ll would be).
    fn block(frames: &[Fixture], size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, block::STATUS, TP_STATUS_USER);
        put32(&mut b, block::NUM_PKTS, frames.len() as u32);
        put32(&mut b, block::OFFSET_TO_FIRST_PKT, block::HEADER_LEN as u32);
        let mac = 82usize;
        let mut at = block::HEADER_LEN;
        for (i, fr) in frames.iter().enumerate() {
            let len = mac + fr.data.len();
            let next = if i + 1 == frames.len() {
                0
            } else {
                len.next_multiple_of(16)
            };
            put32(&mut b, at + frame::NEXT_OFFSET, next as u32);
            put32(&mut b, at + frame::SEC, fr.ts.0);
            put32(&mut b, at + frame::NSEC, fr.ts.1);
            put32(&mut b, at + frame::SNAPLEN, fr.data.len() as u32);
            put32(&mut b, at + frame::LEN, fr.data.len() as u32);
            let mut status = TP_STATUS_USER;
            if let Some(v) = fr.vlan {
                status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
                put32(&mut b, at + frame::VLAN_TCI, u32::from(v.tci));
                b[at + frame::VLAN_TPID..at + frame::VLAN_TPID + 2]
                    .copy_from_slice(&v.tpid.to_ne_bytes());
            }
            put32(&mut b, at + frame::STATUS, status);
            b[at + frame::MAC..at + frame::MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
            b[at + mac..at + len].copy_from_slice(&fr.data);
            at += next;
        }
        b
    }

    fn fixtures() -> Vec<Fixture> {
        vec![
            Fixture {
                ts: (1_700_000_000, 5),
                data: (0..60).collect(),
                vlan: None,
            },
            Fixture {
                ts: (1_700_000_000, 999_999_999),
                data: (100..174).collect(),
                vlan: Some(VlanTag {
                    tpid: 0x8100,
                    tci: 0x2c40,
                }),
            },
            Fixture {
                ts: (1_700_000_001, 0),
                data: vec![7; 1514],
                vlan: None,
            },
        ]
    }

    #[test]
    fn walks_every_frame_in_order() {
        let fx = fixtures();
        let b = block(&fx, 4096);
        let mut got = Vec::new();
        let walk = walk_block(&b, |f| {
            got.push((f.ts_ns, f.data.to_vec(), f.vlan, f.wire_len))
        });
        assert_eq!(
            walk,
            Walk {
                frames: 3,
                malformed: false
            }
        );
        for (g, f) in got.iter().zip(&fx) {
            assert_eq!(g.0, u64::from(f.ts.0) * 1_000_000_000 + u64::from(f.ts.1));
            assert_eq!(g.1, f.data);
            assert_eq!(g.2, f.vlan);
            assert_eq!(g.3 as usize, f.data.len());
        }
    }

    #[test]
    fn an_empty_block_has_no_frames() {
        let b = block(&[], 4096);
        assert_eq!(walk_block(&b, |_| panic!("no frame")), Walk::default());
    }

    #[test]
    fn corrupt_blocks_stop_the_walk_without_reading_outside() {
        let fx = fixtures();
        let good = block(&fx, 4096);
        let count = |b: &[u8]| walk_block(b, |_| {});
        // Claims more frames than it holds: the last next_offset is 0.
        let mut b = good.clone();
        b[block::NUM_PKTS..block::NUM_PKTS + 4].copy_from_slice(&4u32.to_ne_bytes());
        assert_eq!(
            count(&b),
            Walk {
                frames: 3,
                malformed: true
            }
        );
        // A frame that runs past the block.
        let mut b = good.clone();
        let at = block::HEADER_LEN + frame::SNAPLEN;
        b[at..at + 4].copy_from_slice(&100_000u32.to_ne_bytes());
        assert_eq!(
            count(&b),
            Walk {
                frames: 0,
                malformed: true
            }
        );
        // First frame offset inside the block header, or past the end.
        for first in [0u32, 8, 5000, u32::MAX] {
            let mut b = good.clone();
            let at = block::OFFSET_TO_FIRST_PKT;
            b[at..at + 4].copy_from_slice(&first.to_ne_bytes());
            assert!(count(&b).malformed, "first at {first}");
        }
        // Truncated block buffers of every length.
        for len in 0..good.len().min(400) {
            let _ = count(&good[..len]);
        }
    }

    #[test]
    fn tags_go_back_after_the_mac_addresses() {
        let data: Vec<u8> = (0..20).collect();
        let mut scratch = Vec::with_capacity(64);
        let tag = VlanTag {
            tpid: 0x88a8,
            tci: 0x0123,
        };
        let out = with_tag(&data, tag, &mut scratch).to_vec();
        assert_eq!(&out[..12], &data[..12]);
        assert_eq!(&out[12..16], &[0x88, 0xa8, 0x01, 0x23]);
        assert_eq!(&out[16..], &data[12..]);
        assert_eq!(with_tag(&data[..5], tag, &mut scratch), &data[..5]);
    }
}
