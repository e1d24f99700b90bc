//! One ring socket of a fanout group: setup in the order that keeps frames from being seen
//! twice, batch receive over ring blocks, drops, and noticing the interface go away.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::filter;
use super::ring::{self, Ring};
use super::AfPacketOptions;
use crate::capture::xdp::LiveError;
use crate::capture::{Frame, LiveQueue, QueueDrops, LINKTYPE_ETHERNET};
use crate::sys::packet::{self as socket, Membership, TpacketReq3};

const MIN_BLOCK: u32 = 64 << 10;
const MAX_BLOCK: u32 = 64 << 20;
const MAX_BLOCKS: u32 = 1 << 16;
/// Idle zero-timeout calls between checks that the interface still exists.
const IDLE_CHECK_EVERY: u32 = 1024;

fn check_options(o: &AfPacketOptions) -> Result<(), LiveError> {
    let ring_bytes = u64::from(o.block_size) * u64::from(o.block_count);
    let detail =
        if !o.block_size.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(&o.block_size) {
            format!(
                "block size {} must be a power of two from 64 KiB to 64 MiB",
                o.block_size
            )
        } else if !(2..=MAX_BLOCKS).contains(&o.block_count) {
            format!("block count {} must be 2 to {MAX_BLOCKS}", o.block_count)
        } else if ring_bytes >= 1 << 32 {
            format!("ring of {ring_bytes} bytes must stay below 4 GiB")
        } else if o.frame_size % 16 != 0 || !(64..=o.block_size).contains(&o.frame_size) {
            format!(
                "frame size {} must be a multiple of 16 from 64 to the block size",
                o.frame_size
            )
        } else if !(1..=1000).contains(&o.retire_ms) {
            format!("block retire timeout {} ms must be 1 to 1000", o.retire_ms)
        } else {
            return Ok(());
        };
    Err(LiveError::AfPacketOptions { detail })
}

/// One TPACKET_V3 ring socket, member of this process's fanout group on the interface.
///
/// `Send`: move it to a capture thread. The frames handed to `recv_batch`'s callback point
/// into the ring (or, for a frame whose VLAN tag the kernel took out, into a scratch copy with
/// the tag put back) and are valid for the call only.
pub struct AfPacketQueue {
    ring: Ring,
    fd: OwnedFd,
    /// Frames with a tag put back; reserved at open to a block plus a tag, never grown.
    scratch: Vec<u8>,
    _group: Membership,
    iface: String,
    member: u32,
    opts: AfPacketOptions,
    drops: u64,
    idle: u32,
    /// Set once the interface is known gone; every later call reports it.
    gone: bool,
}

impl fmt::Debug for AfPacketQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfPacketQueue")
            .field("iface", &self.iface)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

impl AfPacketQueue {
    /// Opens ring socket `member` (a number for names and messages; the kernel spreads
    /// connections over however many members join) on `iface`, in the calling thread's network
    /// namespace.
    ///
    /// Setup order: the socket filters out everything while it is bound and joins the fanout
    /// group, and gets its real filter only as a member, so no frame is queued both to it alone
    /// and to the group.
    ///
    /// # Errors
    /// [`LiveError::AfPacketOptions`], [`LiveError::Privilege`] (CAP_NET_RAW),
    /// [`LiveError::InterfaceMissing`], [`LiveError::AfPacketSocket`] naming the refused call.
    ///
    /// # Minimum kernel version
    /// 6.0 (or a stable kernel with the same fix): before the 2022 fix of the symmetric flow
    /// hash, some IPv4 address pairs hashed to different rings per direction. The socket
    /// options used (TPACKET_V3, PACKET_FANOUT_FLAG_UNIQUEID) are older.
    pub fn open(
        iface: &str,
        member: u32,
        opts: &AfPacketOptions,
    ) -> Result<AfPacketQueue, LiveError> {
        check_options(opts)?;
        if !socket::has_net_raw() {
            return Err(LiveError::Privilege {
                missing: vec!["CAP_NET_RAW"],
            });
        }
        let ifindex = socket::if_index(iface).ok_or_else(|| LiveError::InterfaceMissing {
            iface: iface.to_string(),
        })?;
        let failed = |what: &str, e: std::io::Error| LiveError::AfPacketSocket {
            iface: iface.to_string(),
            member,
            detail: format!("{what}: {e}"),
        };
        let netns = socket::netns_id().map_err(|e| failed("identify the network namespace", e))?;
        let fd = socket::open().map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => LiveError::Privilege {
                missing: vec!["CAP_NET_RAW"],
            },
            _ => failed("socket(AF_PACKET)", e),
        })?;
        let raw = fd.as_raw_fd();
        socket::set_v3(raw).map_err(|e| failed("TPACKET_V3", e))?;
        socket::attach_filter(raw, &filter::drop_all()).map_err(|e| failed("filter", e))?;
        let req = TpacketReq3 {
            block_size: opts.block_size,
            block_nr: opts.block_count,
            frame_size: opts.frame_size,
            frame_nr: (opts.block_size / opts.frame_size) * opts.block_count,
            retire_blk_tov: opts.retire_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        socket::set_rx_ring(raw, &req).map_err(|e| failed("PACKET_RX_RING", e))?;
        let ring = Ring::map(raw, opts.block_size as usize, opts.block_count as usize)
            .map_err(|e| failed("mmap the ring", e))?;
        socket::bind(raw, ifindex).map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV) => LiveError::InterfaceMissing {
                iface: iface.to_string(),
            },
            _ => failed("bind", e),
        })?;
        let group =
            socket::join_fanout(&fd, netns, ifindex).map_err(|e| failed("PACKET_FANOUT", e))?;
        if opts.promiscuous {
            socket::promiscuous(raw, ifindex).map_err(|e| failed("promiscuous mode", e))?;
        }
        let prog = match (&opts.filter, opts.capture_all) {
            (Some(f), false) => {
                filter::tcp_and_tunnels_matching(f).ok_or_else(|| LiveError::AfPacketOptions {
                    detail: format!(
                        "the capture filter compiles to {} instructions, too many for a \
                         socket filter with tcpulse's own",
                        f.len()
                    ),
                })?
            }
            (None, false) => filter::tcp_and_tunnels(),
            // Every frame reaches user space, which runs the filter there.
            (_, true) => filter::accept_all(),
        };
        socket::attach_filter(raw, &prog).map_err(|e| failed("filter", e))?;
        Ok(AfPacketQueue {
            ring,
            fd,
            scratch: Vec::with_capacity(opts.block_size as usize + ring::TAG_LEN),
            _group: group,
            iface: iface.to_string(),
            member,
            opts: opts.clone(),
            drops: 0,
            idle: 0,
            gone: false,
        })
    }

    /// The kernel's fanout group id (unique in the network namespace while the group lives).
    pub fn group_id(&self) -> u16 {
        self._group.id
    }

    fn gone_error(&self) -> LiveError {
        LiveError::InterfaceGone {
            iface: self.iface.clone(),
        }
    }

    /// A pending socket error: ENETDOWN when the link went down or the interface was
    /// unregistered. Only the latter ends capture (the socket's bound index becomes -1); after
    /// a mere link down the kernel resumes delivery when the link comes back.
    fn check_alive(&mut self) -> Result<(), LiveError> {
        let raw = self.fd.as_raw_fd();
        let context = || format!("AF_PACKET ring {} on {}", self.member, self.iface);
        match socket::socket_error(raw) {
            Ok(None) => {}
            Ok(Some(e)) if matches!(e.raw_os_error(), Some(libc::ENETDOWN | libc::ENODEV)) => {}
            Ok(Some(e)) | Err(e) => return Err(LiveError::io(context(), e)),
        }
        match socket::bound_ifindex(raw) {
            Ok(i) if i > 0 => Ok(()),
            Ok(_) => {
                self.gone = true;
                Err(self.gone_error())
            }
            Err(e) => Err(LiveError::io(context(), e)),
        }
    }
}

impl LiveQueue for AfPacketQueue {
    /// Hands over the frames of the next ring block (one block per call). With no block ready,
    /// waits up to `timeout_ms` for one; the kernel closes a partly filled block after
    /// `retire_ms`.
    fn recv_batch(
        &mut self,
        timeout_ms: i32,
        f: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        if self.gone {
            return Err(self.gone_error());
        }
        if self.ring.ready().is_none() {
            let error = timeout_ms != 0
                && socket::poll_in(self.fd.as_raw_fd(), timeout_ms)
                    .map_err(|e| {
                        LiveError::io(format!("poll AF_PACKET ring on {}", self.iface), e)
                    })?
                    .error;
            if error || self.ring.ready().is_none() {
                self.idle = self.idle.wrapping_add(1);
                if error || timeout_ms != 0 || self.idle % IDLE_CHECK_EVERY == 0 {
                    self.check_alive()?;
                }
                if self.ring.ready().is_none() {
                    return Ok(0);
                }
            }
        }
        self.idle = 0;
        let scratch = &mut self.scratch;
        let walk = match self.ring.ready() {
            Some(block) => ring::walk_block(block, |fr| {
                // A frame longer than the ring's frames arrives cut: its wire length says so,
                // and decode counts it truncated rather than malformed.
                let (data, wire_len) = match fr.vlan {
                    None => (fr.data, fr.wire_len),
                    Some(tag) => (
                        ring::with_tag(fr.data, tag, scratch),
                        fr.wire_len.saturating_add(ring::TAG_LEN as u32),
                    ),
                };
                f(Frame {
                    ts_ns: fr.ts_ns,
                    link_type: LINKTYPE_ETHERNET,
                    data,
                    wire_len,
                });
            }),
            None => return Ok(0),
        };
        self.ring.release();
        Ok(walk.frames)
    }

    fn drops(&mut self) -> QueueDrops {
        // Reading resets the kernel's counters: keep the running total here.
        if let Ok(d) = socket::take_drops(self.fd.as_raw_fd()) {
            self.drops += d;
        }
        QueueDrops {
            af_packet_drops: self.drops,
            ..QueueDrops::default()
        }
    }

    fn thread_name(&self) -> String {
        format!("pkt-{}", self.member)
    }

    fn describe(&self) -> String {
        format!(
            "{} AF_PACKET ring {} (fanout group {}, hash): TPACKET_V3 {} x {} KiB, {}{}, \
             kernel timestamps",
            self.iface,
            self.member,
            self.group_id(),
            self.opts.block_count,
            self.opts.block_size >> 10,
            if self.opts.capture_all {
                "all frames"
            } else {
                "TCP only"
            },
            if self.opts.promiscuous {
                ", promiscuous"
            } else {
                ""
            },
        )
    }
}

/// The ring socket, for an epoll loop over several rings (readable: a block is ready).
impl AsRawFd for AfPacketQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = AfPacketOptions::default();
        assert!(check_options(&ok).is_ok());
        let bad = |o: AfPacketOptions| match check_options(&o) {
            Err(LiveError::AfPacketOptions { detail }) => detail,
            other => panic!("expected an options error, got {other:?}"),
        };
        assert!(bad(AfPacketOptions {
            block_size: 100_000,
            ..ok.clone()
        })
        .contains("power of two"));
        assert!(bad(AfPacketOptions {
            block_count: 1,
            ..ok.clone()
        })
        .contains("block count"));
        assert!(bad(AfPacketOptions {
            block_size: 64 << 20,
            block_count: 64,
            ..ok.clone()
        })
        .contains("4 GiB"));
        assert!(bad(AfPacketOptions {
            frame_size: 2050,
            ..ok.clone()
        })
        .contains("frame size"));
        assert!(bad(AfPacketOptions {
            retire_ms: 0,
            ..ok.clone()
        })
        .contains("retire"));
    }

    #[test]
    fn missing_interface_is_named() {
        match AfPacketQueue::open("no-such-if-xyz", 0, &AfPacketOptions::default()) {
            Err(LiveError::InterfaceMissing { iface }) => assert_eq!(iface, "no-such-if-xyz"),
            Err(LiveError::Privilege { missing }) => assert_eq!(missing, ["CAP_NET_RAW"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn _queue_is_send(q: AfPacketQueue) -> impl Send {
        q
    }
}
