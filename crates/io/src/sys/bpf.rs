//! The libbpf and libxdp calls of the XDP loader that only ask or set something (program
//! names and ids, what is attached where, the libraries' printing, CPU count), wrapped safely.
//! Loading and attaching stay with the loader (`capture/xdp/program.rs`), whose errors they
//! shape.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::sync::Once;

use libxdp_sys as bpf;

/// linux/if_link.h and linux/bpf.h values the bindings do not carry.
pub mod flag {
    pub const SKB_MODE: u32 = 1 << 1;
    pub const DRV_MODE: u32 = 1 << 2;
    pub const HW_MODE: u32 = 1 << 3;
    pub const BPF_F_XDP_DEV_BOUND_ONLY: u32 = 1 << 6;
}

unsafe extern "C" {
    // In the static libbpf that libxdp-sys links, but not in its generated bindings.
    fn libbpf_set_print(f: *const c_void) -> *const c_void;
    fn libbpf_num_possible_cpus() -> c_int;
}

/// Possible CPUs, as libbpf counts them for per-CPU maps.
pub fn possible_cpus() -> Option<usize> {
    // SAFETY: a plain query with no arguments.
    usize::try_from(unsafe { libbpf_num_possible_cpus() }).ok()
}

/// Silences libbpf's and libxdp's default printing to stderr (set `TCPULSE_LIBBPF_LOG` to keep
/// it); failures reach the operator through the loader's errors instead.
pub fn quiet_libraries() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TCPULSE_LIBBPF_LOG").is_none() {
            // SAFETY: a null callback disables printing; both calls only store the pointer.
            unsafe {
                libbpf_set_print(ptr::null());
                bpf::libxdp_set_print(None);
            }
        }
    });
}

/// The error a libbpf call returned as a negative errno.
pub fn errno(rc: c_int) -> io::Error {
    io::Error::from_raw_os_error(rc.checked_neg().unwrap_or(libc::EINVAL).max(1))
}

/// Name and id of the program `id`, if it can be opened.
pub fn program_name(id: u32) -> Option<String> {
    // SAFETY: plain syscall wrapper; the result is checked.
    let fd = unsafe { bpf::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns; dropping it closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let info = prog_info(owned.as_raw_fd());
    info.map(|(_, name)| name)
}

/// `(id, name)` of the program behind `fd`.
pub fn prog_info(fd: c_int) -> Option<(u32, String)> {
    // SAFETY: bpf_prog_info is plain data; all-zero is the required initial value.
    let mut info: bpf::bpf_prog_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<bpf::bpf_prog_info>() as u32;
    // SAFETY: `info` has `len` writable bytes.
    let rc = unsafe { bpf::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    if rc != 0 {
        return None;
    }
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Some((info.id, String::from_utf8_lossy(&bytes).into_owned()))
}

/// What is attached to an interface now: `(program id, flags of its mode)` per attached mode.
pub fn attached(ifindex: u32) -> io::Result<Vec<(u32, u32)>> {
    // SAFETY: bpf_xdp_query_opts is plain data; all-zero plus `sz` is its documented init.
    let mut q: bpf::bpf_xdp_query_opts = unsafe { mem::zeroed() };
    q.sz = mem::size_of::<bpf::bpf_xdp_query_opts>();
    // SAFETY: `q` is a valid, sized options struct.
    let rc = unsafe { bpf::bpf_xdp_query(ifindex as c_int, 0, &mut q) };
    if rc != 0 {
        return Err(errno(rc));
    }
    let mut out = Vec::new();
    if q.drv_prog_id != 0 {
        out.push((q.drv_prog_id, flag::DRV_MODE));
    }
    if q.skb_prog_id != 0 {
        out.push((q.skb_prog_id, flag::SKB_MODE));
    }
    if q.hw_prog_id != 0 {
        out.push((q.hw_prog_id, flag::HW_MODE));
    }
    Ok(out)
}
