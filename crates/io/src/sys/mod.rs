//! Every system call tcpulse makes, behind safe wrappers: the rest of the crate holds no
//! `libc` call. Shared calls here; AF_PACKET sockets and rings in [`packet`], AF_XDP sockets
//! and interface queries in [`xdp`], signals and affinity in [`process`], giving up privileges
//! in [`privilege`].

pub mod bpf;
pub mod packet;
pub mod privilege;
pub mod process;
pub mod xdp;

pub use process::{hang_up, hangups, install_signal_handlers, pin_thread_to, stop_requested};

use std::ffi::CString;
use std::fs;
use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;

/// The interface index of `name` in the calling thread's network namespace.
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Identity of the calling thread's network namespace (device and inode of its nsfs file).
pub fn netns_id() -> io::Result<(u64, u64)> {
    let m = fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}

/// The calling thread's effective capability set (`CapEff` in /proc/thread-self/status).
pub fn effective_caps() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/thread-self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff line"))
}

/// What poll(2) reported for one descriptor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Readiness {
    pub readable: bool,
    pub error: bool,
}

/// Waits up to `timeout_ms` (negative: forever) for `fd` to become readable. An interrupted
/// wait reports nothing ready.
pub fn poll_in(fd: RawFd, timeout_ms: i32) -> io::Result<Readiness> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(Readiness::default())
        } else {
            Err(e)
        };
    }
    Ok(Readiness {
        readable: p.revents & libc::POLLIN != 0,
        error: p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
    })
}

/// The pending error of a socket (SO_ERROR, which also clears it), if any.
pub fn socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_ERROR writes one int into `err`; `len` says so.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// `struct packet_mreq` (linux/if_packet.h).
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;

/// Promiscuous mode for `ifindex` through a membership of the AF_PACKET socket `fd`: the
/// kernel counts such requests and drops this one when the socket closes, so a killed process
/// never leaves the interface promiscuous, and one that already was stays so.
pub fn join_promiscuous(fd: RawFd, ifindex: u32) -> io::Result<()> {
    let mreq = PacketMreq {
        mr_ifindex: libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        mr_type: PACKET_MR_PROMISC,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: PACKET_ADD_MEMBERSHIP reads one packet_mreq from `mreq`, alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            (&mreq as *const PacketMreq).cast(),
            mem::size_of::<PacketMreq>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_answer() {
        assert!(if_index("lo").is_some());
        assert_eq!(if_index("no-such-if-xyz"), None);
        assert_eq!(if_index("bad\0name"), None);
        assert!(netns_id().is_ok());
        assert!(effective_caps().is_ok());
    }
}
