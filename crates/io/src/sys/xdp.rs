//! The system calls of the AF_XDP source that are not libbpf/libxdp: interface and queue
//! lookups, capabilities, clocks, polling, promiscuous mode and the per-interface owner lock.
//! Everything network-namespace dependent is asked of the calling thread's namespace.

use std::fs;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// Capability numbers (linux/capability.h).
pub mod cap {
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const IPC_LOCK: u32 = 14;
    pub const SYS_ADMIN: u32 = 21;
    pub const BPF: u32 = 39;
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// Number of RX queues of `name`: the driver's channel count (ethtool `ETHTOOL_GCHANNELS`, rx
/// plus combined), else the `rx-N` entries under `/sys/class/net/NAME/queues` (which describe
/// the namespace sysfs was mounted in, so only used when ethtool has no answer). `None` when
/// neither answers.
pub fn rx_queue_count(name: &str) -> Option<u32> {
    ethtool_rx_queues(name).or_else(|| sysfs_rx_queues(name))
}

/// A socket to ask the kernel about interface `name` with, and the request naming it; `None`
/// when the name is too long or no socket can be made.
fn interface_request(name: &str) -> Option<(OwnedFd, libc::ifreq)> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Some((sock, ifr))
}

fn ethtool_rx_queues(name: &str) -> Option<u32> {
    let (sock, mut ifr) = interface_request(name)?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL reads `ifr` and writes at most size_of::<EthtoolChannels>() bytes
    // through ifru_data, which points at `ch`, alive for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if rc != 0 {
        return None;
    }
    let n = ch.rx_count.saturating_add(ch.combined_count);
    (n > 0).then_some(n)
}

/// The MTU of `name` (SIOCGIFMTU); `None` when there is no such interface.
pub fn if_mtu(name: &str) -> Option<u32> {
    let (sock, mut ifr) = interface_request(name)?;
    // SAFETY: SIOCGIFMTU reads the name in `ifr` and writes the MTU into it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
    if rc != 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU filled the union's MTU member.
    u32::try_from(unsafe { ifr.ifr_ifru.ifru_mtu }).ok()
}

fn sysfs_rx_queues(name: &str) -> Option<u32> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let dir = fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(n).ok().filter(|&n| n > 0)
}

/// The locked-memory limit, bytes (`u64::MAX` when unlimited).
pub fn memlock_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if lim.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        lim.rlim_cur
    })
}

/// A handle on a network namespace, for running code in it from any thread.
#[derive(Debug)]
pub struct Netns {
    file: fs::File,
    id: (u64, u64),
}

impl Netns {
    /// The calling thread's network namespace.
    pub fn current() -> io::Result<Netns> {
        let file = fs::File::open("/proc/thread-self/ns/net")?;
        let m = file.metadata()?;
        Ok(Netns {
            file,
            id: (m.dev(), m.ino()),
        })
    }

    /// Moves the calling thread into this namespace until the returned guard is dropped;
    /// `None` (nothing to undo) when the thread is there already.
    pub fn enter(&self) -> io::Result<Option<NetnsReturn>> {
        let here = Netns::current()?;
        if here.id == self.id {
            return Ok(None);
        }
        setns(&self.file)?;
        Ok(Some(NetnsReturn { to: here }))
    }
}

fn setns(file: &fs::File) -> io::Result<()> {
    // SAFETY: setns on a namespace descriptor; it affects only the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns the thread to the namespace it was in before [`Netns::enter`].
#[derive(Debug)]
pub struct NetnsReturn {
    to: Netns,
}

impl Drop for NetnsReturn {
    fn drop(&mut self) {
        // Cannot fail for a namespace the thread was in a moment ago.
        let _ = setns(&self.to.file);
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// CLOCK_REALTIME, nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// CLOCK_MONOTONIC, nanoseconds; the clock `bpf_ktime_get_ns()` reads.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

pub use crate::sys::{
    effective_caps, if_index, join_promiscuous, netns_id, poll_in, socket_error, Readiness,
};

/// Promiscuous mode held through an AF_PACKET membership: the kernel counts such requests and
/// drops this one when the socket closes, so a killed process never leaves the interface
/// promiscuous, and an interface that already was stays so.
#[derive(Debug)]
pub struct Promisc {
    _sock: OwnedFd,
}

impl Promisc {
    /// Turns promiscuous mode on for `ifindex` until the returned value is dropped.
    pub fn enable(ifindex: u32) -> io::Result<Promisc> {
        // Protocol 0: the socket is bound to no protocol and receives nothing.
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        join_promiscuous(sock.as_raw_fd(), ifindex)?;
        Ok(Promisc { _sock: sock })
    }
}

/// An exclusive claim on "tcpulse owns XDP on this interface", held by one process: a bound
/// abstract Unix socket named after the interface index. Abstract socket names are per network
/// namespace, like interface indexes, and the kernel frees the name when the process dies, so
/// holding the claim proves that any tcpulse program found attached to the interface was left
/// by a run that no longer exists. No file is created.
#[derive(Debug)]
pub struct OwnerLock {
    _sock: OwnedFd,
}

impl OwnerLock {
    /// Claims interface `ifindex` of the calling thread's namespace; `Ok(None)` when another
    /// process holds the claim.
    pub fn try_take(ifindex: u32) -> io::Result<Option<OwnerLock>> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = format!("tcpulse-xdp-{ifindex}");
        // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        // sun_path[0] stays 0: the abstract namespace.
        for (dst, src) in addr.sun_path[1..].iter_mut().zip(name.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        let len = mem::size_of::<libc::sa_family_t>() + 1 + name.len();
        // SAFETY: `addr` is a valid sockaddr_un and `len` does not exceed its size (the name is
        // at most 24 bytes, sun_path has 108).
        let rc = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EADDRINUSE) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(OwnerLock { _sock: sock }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entering_the_current_namespace_is_a_no_op() {
        let ns = Netns::current().unwrap();
        assert!(ns.enter().unwrap().is_none());
    }

    #[test]
    fn capability_set_is_readable() {
        assert!(effective_caps().is_ok());
    }

    #[test]
    fn clocks_advance() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        assert!(realtime_ns() > 1_600_000_000_000_000_000);
    }

    #[test]
    fn owner_lock_is_exclusive_until_dropped() {
        // An index no interface has; the claim does not look at interfaces.
        let idx = 0x7fff_0000 + std::process::id() % 0xffff;
        let first = OwnerLock::try_take(idx).unwrap().expect("free");
        assert!(OwnerLock::try_take(idx).unwrap().is_none());
        drop(first);
        assert!(OwnerLock::try_take(idx).unwrap().is_some());
    }

    #[test]
    fn sysfs_rejects_paths() {
        assert_eq!(sysfs_rx_queues("../etc"), None);
        assert_eq!(sysfs_rx_queues("no-such-if-xyz"), None);
    }
}
