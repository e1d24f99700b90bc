//! The system calls of AF_PACKET, receiving and sending: the socket and its options, the
//! fanout group, statistics, the shared ring mappings, and the TX ring's slots. Everything
//! namespace dependent acts in the calling thread's network namespace.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

const CAP_NET_RAW: u32 = 13;
const ETH_P_ALL: u16 = 0x0003;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_FANOUT: libc::c_int = 18;
const TPACKET_V3: libc::c_int = 2;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// Whether the calling thread has CAP_NET_RAW in its effective set; `true` when that cannot
/// be read (the socket call will answer instead).
pub fn has_net_raw() -> bool {
    effective_caps().map_or(true, |caps| caps & (1 << CAP_NET_RAW) != 0)
}

/// `struct sock_filter` (linux/filter.h): one classic BPF instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: the kernel reads size_of::<T>() bytes from `val`, alive for the call; every T
    // passed here is a repr(C) or primitive value of the layout the option expects.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

/// A raw packet socket that receives nothing until bound with a protocol.
pub fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn set_v3(fd: RawFd) -> io::Result<()> {
    setsockopt(fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V3)
}

/// `struct sock_fprog` (linux/filter.h).
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// Attaches (or replaces) the socket's classic BPF filter.
pub fn attach_filter(fd: RawFd, prog: &[SockFilter]) -> io::Result<()> {
    let fprog = SockFprog {
        len: libc::c_ushort::try_from(prog.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_ptr(),
    };
    // The kernel copies the program during the call; `prog` outlives it.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// `struct tpacket_req3` (linux/if_packet.h).
#[repr(C)]
pub struct TpacketReq3 {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    pub retire_blk_tov: u32,
    pub sizeof_priv: u32,
    pub feature_req_word: u32,
}

pub fn set_rx_ring(fd: RawFd, req: &TpacketReq3) -> io::Result<()> {
    setsockopt(fd, libc::SOL_PACKET, PACKET_RX_RING, req)
}

/// Binds to every protocol on `ifindex`: from here on the socket receives.
pub fn bind(fd: RawFd, ifindex: u32) -> io::Result<()> {
    bind_protocol(fd, ifindex, ETH_P_ALL)
}

/// Binds a packet socket to `ifindex` for sending only: protocol 0 receives nothing.
pub fn bind_send_only(fd: RawFd, ifindex: u32) -> io::Result<()> {
    bind_protocol(fd, ifindex, 0)
}

fn bind_protocol(fd: RawFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `sll` is a valid sockaddr_ll and the length says so.
    check(unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
}

/// The interface index the socket is bound to now: -1 once the kernel unbound it because the
/// interface was unregistered (removed, or moved to another namespace).
pub fn bound_ifindex(fd: RawFd) -> io::Result<i32> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `sll`.
    check(unsafe { libc::getsockname(fd, (&mut sll as *mut libc::sockaddr_ll).cast(), &mut len) })?;
    Ok(sll.sll_ifindex)
}

/// Promiscuous mode while the socket lives.
pub fn promiscuous(fd: RawFd, ifindex: u32) -> io::Result<()> {
    join_promiscuous(fd, ifindex)
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

/// Frames dropped since the last call (reading resets the kernel's counters).
pub fn take_drops(fd: RawFd) -> io::Result<u64> {
    let mut st = TpacketStatsV3::default();
    let mut len = mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `st`.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            (&mut st as *mut TpacketStatsV3).cast(),
            &mut len,
        )
    })?;
    Ok(u64::from(st.drops))
}

pub use crate::sys::{effective_caps, if_index, join_promiscuous, netns_id, poll_in, socket_error};

/// The fanout groups this process made, one per (namespace, interface): every ring of one run
/// on an interface joins the same group, and no other process's group. The group id comes from
/// the kernel (PACKET_FANOUT_FLAG_UNIQUEID: an id no group of the namespace uses), so two runs
/// can never join each other.
struct Group {
    netns: (u64, u64),
    ifindex: u32,
    id: u16,
    members: usize,
}

static GROUPS: Mutex<Vec<Group>> = Mutex::new(Vec::new());

/// Our membership in a fanout group; leaves the registry on drop (the kernel takes the socket
/// out of the group when it closes).
#[derive(Debug)]
pub struct Membership {
    netns: (u64, u64),
    ifindex: u32,
    pub id: u16,
}

/// Puts a bound socket in this process's hash fanout group for `ifindex`, creating the group
/// on first use.
pub fn join_fanout(fd: &OwnedFd, netns: (u64, u64), ifindex: u32) -> io::Result<Membership> {
    let mut groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
    let fd = fd.as_raw_fd();
    let id = match groups
        .iter_mut()
        .find(|g| g.netns == netns && g.ifindex == ifindex)
    {
        Some(g) => {
            let arg = u32::from(g.id) | (PACKET_FANOUT_HASH << 16);
            setsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT, &arg)?;
            g.members += 1;
            g.id
        }
        None => {
            let arg = (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
            setsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT, &arg)?;
            let mut val: u32 = 0;
            let mut len = mem::size_of::<u32>() as libc::socklen_t;
            // SAFETY: PACKET_FANOUT reads back one int: id | type << 16 | flags << 24.
            check(unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_PACKET,
                    PACKET_FANOUT,
                    (&mut val as *mut u32).cast(),
                    &mut len,
                )
            })?;
            let id = (val & 0xffff) as u16;
            groups.push(Group {
                netns,
                ifindex,
                id,
                members: 1,
            });
            id
        }
    };
    Ok(Membership { netns, ifindex, id })
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = groups
            .iter()
            .position(|g| g.netns == self.netns && g.ifindex == self.ifindex && g.id == self.id)
        {
            groups[i].members -= 1;
            if groups[i].members == 0 {
                groups.swap_remove(i);
            }
        }
    }
}
/// A ring the kernel set up for a packet socket, mapped shared into this process; unmapped
/// on drop.
#[derive(Debug)]
pub struct SharedMap {
    /// The mapping's address (a usize so the type is plainly `Send`; only this type and the
    /// ring views over it use it).
    base: usize,
    len: usize,
}

impl SharedMap {
    /// Maps the `len` bytes of ring set up on `fd` (PACKET_RX_RING or PACKET_TX_RING).
    ///
    /// # Errors
    /// The kernel's (no ring set up, not enough memory).
    pub fn map(fd: RawFd, len: usize) -> io::Result<SharedMap> {
        // SAFETY: a fresh shared mapping of the socket's ring; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMap {
            base: p.expose_provenance(),
            len,
        })
    }

    /// The mapping's first byte. Valid for `len` bytes while `self` lives.
    pub fn base(&self) -> usize {
        self.base
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        let p = std::ptr::with_exposed_provenance_mut::<libc::c_void>(self.base);
        // SAFETY: the mapping made in `map`, unmapped once; nothing borrows it any more.
        unsafe { libc::munmap(p, self.len) };
    }
}

/// `tpacket_req` of a TPACKET_V2 TX ring.
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const TPACKET_V2: libc::c_int = 1;
/// Where a frame's bytes start in a TX slot (the TPACKET_V2 header, aligned to 16).
pub const TX_DATA_OFFSET: usize = 32;

/// A TPACKET_V2 TX ring of `slots` slots of `slot_size` bytes, in blocks of `block_size`.
pub struct TxRing {
    map: SharedMap,
    slot_size: usize,
    slots: usize,
}

/// What a TX slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxSlot {
    /// Free to fill.
    Free,
    /// Free to fill; the frame it held was rejected by the kernel.
    Rejected,
    /// Queued or being sent: the ring is full up to here.
    Busy,
}

impl TxRing {
    /// Sets `fd` up for sending through a TX ring: TPACKET_V2, the qdisc bypassed where the
    /// kernel can, frames it rejects skipped; then the ring itself, mapped.
    ///
    /// # Errors
    /// The step that failed, with the kernel's error.
    pub fn set_up(
        fd: RawFd,
        block_size: usize,
        blocks: usize,
        slot_size: usize,
    ) -> Result<TxRing, (&'static str, io::Error)> {
        setsockopt(fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)
            .map_err(|e| ("PACKET_VERSION", e))?;
        // The generator measures the monitor, not the qdisc; a kernel without the option still
        // sends, through the qdisc.
        let _ = setsockopt(fd, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &1i32);
        // A frame the kernel rejects is skipped instead of stopping the ring.
        let _ = setsockopt(fd, libc::SOL_PACKET, PACKET_LOSS, &1i32);
        let per_block = block_size / slot_size;
        let req = libc::tpacket_req {
            tp_block_size: block_size as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: slot_size as u32,
            tp_frame_nr: (blocks * per_block) as u32,
        };
        setsockopt(fd, libc::SOL_PACKET, PACKET_TX_RING, &req)
            .map_err(|e| ("PACKET_TX_RING", e))?;
        let map = SharedMap::map(fd, blocks * block_size).map_err(|e| ("mmap TX ring", e))?;
        Ok(TxRing {
            map,
            slot_size,
            slots: blocks * per_block,
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    fn slot(&self, i: usize) -> *mut u8 {
        assert!(i < self.slots, "slot {i} of {}", self.slots);
        std::ptr::with_exposed_provenance_mut::<u8>(self.map.base() + i * self.slot_size)
    }

    /// The state of slot `i`.
    pub fn state(&self, i: usize) -> TxSlot {
        // SAFETY: the slot lies in the mapping and starts with the kernel-shared u32 status
        // word, 16-byte aligned.
        let status = unsafe { std::ptr::read_volatile(self.slot(i).cast::<u32>()) };
        if status & (libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING) != 0 {
            TxSlot::Busy
        } else if status & libc::TP_STATUS_WRONG_FORMAT != 0 {
            TxSlot::Rejected
        } else {
            TxSlot::Free
        }
    }

    /// Copies `frame` (at most the slot's room after its header) into free slot `i` and
    /// queues it; returns the bytes queued.
    pub fn fill(&mut self, i: usize, frame: &[u8]) -> usize {
        let len = frame.len().min(self.slot_size - TX_DATA_OFFSET);
        debug_assert!(self.state(i) != TxSlot::Busy);
        let slot = self.slot(i);
        // SAFETY: the slot is ours (not Busy) and holds TX_DATA_OFFSET + len bytes; its header
        // is a 16-byte aligned tpacket2_hdr. The fence orders the frame before the status the
        // kernel polls.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), slot.add(TX_DATA_OFFSET), len);
            let hdr = slot.cast::<libc::tpacket2_hdr>();
            (*hdr).tp_len = len as u32;
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            std::ptr::write_volatile(&raw mut (*hdr).tp_status, libc::TP_STATUS_SEND_REQUEST);
        }
        len
    }
}

/// What a send of a TX ring's queued slots found.
#[derive(Debug)]
pub enum Kick {
    Sent,
    /// The kernel is busy; the slots stay queued for a later kick.
    Busy,
    /// The interface went away or down.
    Gone,
    Failed(io::Error),
}

/// Asks the kernel to send every queued slot of `fd`'s TX ring; `wait`: until they are sent.
pub fn kick_tx(fd: RawFd, wait: bool) -> Kick {
    let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
    loop {
        // SAFETY: a zero-length send on a bound packet socket with a TX ring: the kernel reads
        // the ring, not the (null) buffer.
        let rc = unsafe { libc::sendto(fd, std::ptr::null(), 0, flags, std::ptr::null(), 0) };
        if rc >= 0 {
            return Kick::Sent;
        }
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::ENOBUFS) => Kick::Busy,
            Some(libc::ENXIO | libc::ENODEV | libc::ENETDOWN) => Kick::Gone,
            _ => Kick::Failed(e),
        };
    }
}
