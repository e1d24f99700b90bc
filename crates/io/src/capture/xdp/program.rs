//! Loading and attaching our XDP program (`bpf/capture.bpf.c`, embedded at build time).
//!
//! [`XdpProgram::attach`] opens the embedded object with libbpf, loads it (device-bound when
//! driver timestamps are asked for, falling back to an ordinary program), and attaches it to the
//! interface in native or skb mode through a BPF link (kernel 5.9+), not libxdp's multi-program
//! dispatcher. The link belongs to this process: dropping the `XdpProgram` closes it and the
//! kernel detaches the program, from whichever thread or namespace; and when the process is
//! killed the kernel closes it too, so a killed run leaves nothing attached.
//!
//! A program of ours attached the older way (netlink, e.g. by `ip link set .. xdp obj` or an
//! earlier build) outlives its process. It is recognised by name and replaced; any other program
//! makes the attach fail rather than be removed. That a `tcpulse_xdp` found attached is not the
//! live program of another tcpulse process is established by [`sys::OwnerLock`], a
//! per-interface claim the kernel releases when its holder dies.
//!
//! Within a process, queues of one interface share one program: see [`shared`].

use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::raw::{c_char, c_int};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use libxdp_sys as bpf;

use super::error::LiveError;
use super::{XdpMode, XdpOptions};
use crate::sys::bpf::{attached, errno, flag, prog_info, program_name, quiet_libraries};
use crate::sys::xdp as sys;

/// The program's name in the kernel (at most 15 bytes); leftovers are recognised by it as a
/// prefix, which also covers [`PROGRAM_NAME_HW`].
pub const PROGRAM_NAME: &str = "tcpulse_xdp";
/// The device-bound variant that reads driver timestamps.
pub const PROGRAM_NAME_HW: &str = "tcpulse_xdp_hw";

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

/// The compiled object; aligned because libelf parses it in place.
static OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/capture.bpf.o")));

/// The compiled XDP object file, as embedded (tests attach it with iproute2).
pub fn object_file() -> &'static [u8] {
    &OBJECT.0
}

/// Map names in the object.
mod map {
    pub const XSKS: &std::ffi::CStr = c"tcpulse_xsks";
    pub const CFG: &std::ffi::CStr = c"tcpulse_cfg";
    pub const COUNTERS: &std::ffi::CStr = c"tcpulse_cnt";
}

/// Indexes of the per-CPU counters (`CNT_*` in the C source).
mod counter {
    pub const TCP_REDIRECTED: usize = 0;
    pub const OTHER_REDIRECTED: usize = 1;
    pub const NON_TCP_PASSED: usize = 2;
    pub const NO_SOCKET: usize = 3;
    pub const NO_META: usize = 4;
    pub const HW_TS: usize = 5;
    pub const COUNT: u32 = 8;
}

/// Default XSKMAP size; raised to the interface's queue count when that is larger.
const XSKMAP_MIN_ENTRIES: u32 = 256;

/// Bytes of verifier log kept for an error message.
const LOG_BUF_LEN: usize = 256 * 1024;
const LOG_TAIL_LEN: usize = 1500;

/// `struct tcpulse_cfg` in the C source.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Config {
    capture_all: u32,
    hw_timestamp: u32,
}

/// Counters of the XDP program, summed over CPUs, since it was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// TCP frames handed to an AF_XDP socket.
    pub tcp_redirected: u64,
    /// Non-TCP frames handed to a socket because of `capture_all`.
    pub other_redirected: u64,
    /// Non-TCP frames passed to the kernel.
    pub non_tcp_passed: u64,
    /// Frames wanted but passed to the kernel: no socket on their RX queue.
    pub no_socket: u64,
    /// Frames captured without metadata (driver lacks a metadata area).
    pub no_meta: u64,
    /// Frames that carried a driver timestamp.
    pub hw_timestamps: u64,
}

/// Our XDP program, attached to one interface until the last [`super::XdpQueue`] using it is
/// dropped. Obtained from [`super::XdpQueue::program`].
#[derive(Debug)]
pub struct XdpProgram {
    /// The BPF link holding the attachment; closing it detaches the program.
    link: Option<OwnedFd>,
    obj: NonNull<bpf::bpf_object>,
    xsks_fd: c_int,
    cnt_fd: c_int,
    prog_id: u32,
    ifindex: u32,
    iface: String,
    mode: XdpMode,
    capture_all: bool,
    hw_requested: bool,
    device_bound: bool,
    replaced: Option<u32>,
    netns: (u64, u64),
    _owner: sys::OwnerLock,
}

// SAFETY: after loading, the object pointer is only used by Drop (bpf_object__close); every
// other use is a system call on a descriptor, which the kernel serialises.
unsafe impl Send for XdpProgram {}
// SAFETY: as above; no method mutates the object through `&self`.
unsafe impl Sync for XdpProgram {}

/// Capabilities the loader and the socket need, with the names the operator sees.
pub(super) fn missing_capabilities() -> Vec<&'static str> {
    let Ok(caps) = sys::effective_caps() else {
        return Vec::new(); // unknown: let the system calls answer
    };
    let has = |c: u32| caps & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(sys::cap::NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(sys::cap::BPF) && !has(sys::cap::SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(sys::cap::NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    missing
}

/// The ids of every XDP program attached to the interface, for tests and diagnostics.
pub fn attached_ids(iface: &str) -> Result<Vec<u32>, LiveError> {
    let ifindex = sys::if_index(iface).ok_or_else(|| LiveError::InterfaceMissing {
        iface: iface.to_string(),
    })?;
    attached(ifindex)
        .map(|v| v.into_iter().map(|(id, _)| id).collect())
        .map_err(|e| LiveError::io(format!("query XDP on {iface}"), e))
}

fn mode_flag(mode: XdpMode) -> u32 {
    match mode {
        XdpMode::Native => flag::DRV_MODE,
        XdpMode::Skb => flag::SKB_MODE,
    }
}

/// An opened-but-not-yet-owned object, closed on drop until handed over.
struct Opened(NonNull<bpf::bpf_object>);

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: the object came from bpf_object__open_mem and is closed exactly once.
        unsafe { bpf::bpf_object__close(self.0.as_ptr()) };
    }
}

/// Opens and loads the embedded object; `bind_to` makes it device-bound to that interface.
fn load(queues: Option<u32>, bind_to: Option<u32>) -> Result<Opened, LiveError> {
    let name = c"tcpulse";
    // SAFETY: bpf_object_open_opts is plain data; all-zero plus `sz` is its documented init.
    let mut opts: bpf::bpf_object_open_opts = unsafe { mem::zeroed() };
    opts.sz = mem::size_of::<bpf::bpf_object_open_opts>();
    opts.object_name = name.as_ptr();
    // SAFETY: OBJECT is a static buffer of the given length; libbpf copies what it keeps.
    let obj = unsafe { bpf::bpf_object__open_mem(OBJECT.0.as_ptr().cast(), OBJECT.0.len(), &opts) };
    let obj = NonNull::new(obj)
        .map(Opened)
        .ok_or_else(|| LiveError::ProgramLoad {
            detail: format!(
                "libbpf cannot open the embedded object: {}",
                io::Error::last_os_error()
            ),
        })?;

    // Exactly one of the two programs is loaded: the kernel takes the one calling the
    // timestamp kfunc only device-bound.
    let (wanted, other) = if bind_to.is_some() {
        (PROGRAM_NAME_HW, PROGRAM_NAME)
    } else {
        (PROGRAM_NAME, PROGRAM_NAME_HW)
    };
    let prog = find_program(&obj, wanted)?;
    let skipped = find_program(&obj, other)?;
    // SAFETY: valid program of an object not loaded yet.
    unsafe { bpf::bpf_program__set_autoload(skipped, false) };
    // SAFETY: valid object and NUL-terminated name.
    let xsks = unsafe { bpf::bpf_object__find_map_by_name(obj.0.as_ptr(), map::XSKS.as_ptr()) };
    if xsks.is_null() {
        return Err(LiveError::ProgramLoad {
            detail: "map tcpulse_xsks missing from the embedded object".into(),
        });
    }
    let entries = queues.unwrap_or(0).max(XSKMAP_MIN_ENTRIES);
    // SAFETY: valid map of an object not loaded yet.
    unsafe { bpf::bpf_map__set_max_entries(xsks, entries) };

    if let Some(ifindex) = bind_to {
        // SAFETY: valid program of an object not loaded yet.
        unsafe {
            bpf::bpf_program__set_ifindex(prog, ifindex);
            bpf::bpf_program__set_flags(prog, flag::BPF_F_XDP_DEV_BOUND_ONLY);
        }
    }

    let mut log = vec![0u8; LOG_BUF_LEN];
    // SAFETY: `log` outlives the load below and has the length given.
    unsafe { bpf::bpf_program__set_log_buf(prog, log.as_mut_ptr().cast::<c_char>(), log.len()) };
    // SAFETY: valid, opened object.
    let rc = unsafe { bpf::bpf_object__load(obj.0.as_ptr()) };
    // SAFETY: detach the buffer before it goes away (libbpf only reads it during load).
    unsafe { bpf::bpf_program__set_log_buf(prog, ptr::null_mut(), 0) };
    if rc != 0 {
        let text = CStr::from_bytes_until_nul(&log)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tail: String = {
            let t = text.trim_end();
            let start = t.len().saturating_sub(LOG_TAIL_LEN);
            let start = (start..t.len())
                .find(|&i| t.is_char_boundary(i))
                .unwrap_or(t.len());
            t[start..].to_string()
        };
        let mut detail = format!("loading failed: {}", errno(rc));
        if !tail.is_empty() {
            detail.push_str("; verifier log ends with:\n");
            detail.push_str(&tail);
        }
        return Err(LiveError::ProgramLoad { detail });
    }
    Ok(obj)
}

fn find_program(obj: &Opened, name: &str) -> Result<*mut bpf::bpf_program, LiveError> {
    let c = CString::new(name).unwrap_or_default();
    // SAFETY: valid object and NUL-terminated name.
    let prog = unsafe { bpf::bpf_object__find_program_by_name(obj.0.as_ptr(), c.as_ptr()) };
    if prog.is_null() {
        return Err(LiveError::ProgramLoad {
            detail: format!("program {name} missing from the embedded object"),
        });
    }
    Ok(prog)
}

fn map_fd(obj: &Opened, name: &CStr) -> Result<c_int, LiveError> {
    // SAFETY: valid, loaded object and NUL-terminated name.
    let fd = unsafe { bpf::bpf_object__find_map_fd_by_name(obj.0.as_ptr(), name.as_ptr()) };
    if fd < 0 {
        return Err(LiveError::ProgramLoad {
            detail: format!("map {} missing after load", name.to_string_lossy()),
        });
    }
    Ok(fd)
}

impl XdpProgram {
    /// Loads our program and attaches it to `iface` (in the calling thread's network namespace)
    /// in `opts.mode`, replacing a leftover of an earlier tcpulse run. Reached through
    /// [`shared`], so that one process never attaches twice to one interface.
    ///
    /// # Errors
    /// [`LiveError::Privilege`], [`LiveError::InterfaceMissing`], [`LiveError::XdpBusy`] (another
    /// program, or a live tcpulse process), [`LiveError::ProgramLoad`], [`LiveError::XdpRefused`].
    fn attach(iface: &str, opts: &XdpOptions) -> Result<XdpProgram, LiveError> {
        quiet_libraries();
        let missing = missing_capabilities();
        if !missing.is_empty() {
            return Err(LiveError::Privilege { missing });
        }
        let ifindex = sys::if_index(iface).ok_or_else(|| LiveError::InterfaceMissing {
            iface: iface.to_string(),
        })?;
        let netns = sys::netns_id().map_err(|e| LiveError::io("identify network namespace", e))?;
        let owner = take_owner(ifindex, iface)?;

        // Who is attached now: nothing, a leftover of ours, or someone else.
        let current =
            attached(ifindex).map_err(|e| LiveError::io(format!("query XDP on {iface}"), e))?;
        let mut leftover = None;
        for &(id, mode_flags) in &current {
            match program_name(id) {
                Some(name) if name.starts_with(PROGRAM_NAME) => leftover = Some((id, mode_flags)),
                Some(name) => {
                    return Err(LiveError::XdpBusy {
                        iface: iface.to_string(),
                        holder: format!("XDP program {name:?} (id {id})"),
                    })
                }
                None => {
                    return Err(LiveError::XdpBusy {
                        iface: iface.to_string(),
                        holder: format!("XDP program id {id}"),
                    })
                }
            }
        }

        // Driver timestamps need a device-bound program, which native mode only accepts.
        let queues = sys::rx_queue_count(iface);
        let want_bound = opts.hw_timestamps && opts.mode == XdpMode::Native;
        let (obj, device_bound) = match load(queues, want_bound.then_some(ifindex)) {
            Ok(o) => (o, want_bound),
            Err(_) if want_bound => (load(queues, None)?, false),
            Err(e) => return Err(e),
        };

        let prog = find_program(
            &obj,
            if device_bound {
                PROGRAM_NAME_HW
            } else {
                PROGRAM_NAME
            },
        )?;
        // SAFETY: `prog` is a program of this loaded object.
        let prog_fd = unsafe { bpf::bpf_program__fd(prog) };
        if prog_fd < 0 {
            return Err(LiveError::ProgramLoad {
                detail: "no program descriptor after load".into(),
            });
        }
        let xsks_fd = map_fd(&obj, map::XSKS)?;
        let cfg_fd = map_fd(&obj, map::CFG)?;
        let cnt_fd = map_fd(&obj, map::COUNTERS)?;
        let prog_id = prog_info(prog_fd).map(|(id, _)| id).unwrap_or(0);

        let cfg = Config {
            capture_all: u32::from(opts.capture_all),
            hw_timestamp: u32::from(device_bound),
        };
        write_config(cfg_fd, cfg).map_err(|e| LiveError::io("configure the XDP program", e))?;

        if let Some((_, old_mode)) = leftover {
            // A netlink attachment cannot be swapped for a link atomically: remove it first. It
            // had no socket to feed, so its frames were going to the kernel anyway.
            // SAFETY: null options are allowed.
            unsafe { bpf::bpf_xdp_detach(ifindex as c_int, old_mode, ptr::null()) };
        }
        let link = link_create(ifindex, iface, prog_fd, opts.mode)?;

        let obj = mem::ManuallyDrop::new(obj);
        Ok(XdpProgram {
            link: Some(link),
            obj: obj.0,
            xsks_fd,
            cnt_fd,
            prog_id,
            ifindex,
            iface: iface.to_string(),
            mode: opts.mode,
            capture_all: opts.capture_all,
            hw_requested: opts.hw_timestamps,
            device_bound,
            replaced: leftover.map(|(id, _)| id),
            netns,
            _owner: owner,
        })
    }

    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Its index in the program's network namespace.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The kernel's id for the program (`bpftool prog show id N`).
    pub fn id(&self) -> u32 {
        self.prog_id
    }

    /// The attach mode.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Whether the program was loaded device-bound, so it can ask the driver for receive
    /// timestamps.
    pub fn device_bound(&self) -> bool {
        self.device_bound
    }

    /// The id of the leftover program this one replaced, if any.
    pub fn replaced(&self) -> Option<u32> {
        self.replaced
    }

    /// Whether every frame, not only TCP, goes to the sockets.
    pub fn capture_all(&self) -> bool {
        self.capture_all
    }

    /// Points the program's entry for RX queue `queue` at the AF_XDP socket `fd`.
    pub(super) fn register(&self, queue: u32, fd: c_int) -> io::Result<()> {
        // SAFETY: key and value are a u32 and an int, the XSKMAP's sizes, alive for the call.
        let rc = unsafe {
            bpf::bpf_map_update_elem(
                self.xsks_fd,
                (&queue as *const u32).cast(),
                (&fd as *const c_int).cast(),
                u64::from(bpf::BPF_ANY),
            )
        };
        if rc != 0 {
            return Err(errno(rc));
        }
        Ok(())
    }

    /// Removes the socket of RX queue `queue`; its frames go to the kernel again.
    pub(super) fn unregister(&self, queue: u32) {
        // SAFETY: the key is a u32, the XSKMAP's key size.
        unsafe { bpf::bpf_map_delete_elem(self.xsks_fd, (&queue as *const u32).cast()) };
    }

    /// The program's counters, summed over CPUs.
    ///
    /// # Errors
    /// When the kernel refuses the lookup.
    pub fn counters(&self) -> Result<ProgramCounters, LiveError> {
        let cpus = crate::sys::bpf::possible_cpus().unwrap_or(0).max(1);
        let mut sums = [0u64; counter::COUNT as usize];
        let mut values = vec![0u64; cpus];
        for (key, sum) in (0u32..).zip(sums.iter_mut()) {
            // SAFETY: a per-CPU array of u64 returns one u64 per possible CPU: `values` has them.
            let rc = unsafe {
                bpf::bpf_map_lookup_elem(
                    self.cnt_fd,
                    (&key as *const u32).cast(),
                    values.as_mut_ptr().cast(),
                )
            };
            if rc != 0 {
                return Err(LiveError::io("read XDP program counters", errno(rc)));
            }
            *sum = values.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        }
        Ok(ProgramCounters {
            tcp_redirected: sums[counter::TCP_REDIRECTED],
            other_redirected: sums[counter::OTHER_REDIRECTED],
            non_tcp_passed: sums[counter::NON_TCP_PASSED],
            no_socket: sums[counter::NO_SOCKET],
            no_meta: sums[counter::NO_META],
            hw_timestamps: sums[counter::HW_TS],
        })
    }

    fn compatible(&self, opts: &XdpOptions) -> bool {
        self.mode == opts.mode
            && self.capture_all == opts.capture_all
            && self.hw_requested == opts.hw_timestamps
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Closing the link detaches the program (if the interface still exists).
        drop(self.link.take());
        // SAFETY: the object was loaded by `attach`, is owned by self and closed exactly once.
        unsafe { bpf::bpf_object__close(self.obj.as_ptr()) };
    }
}

fn write_config(fd: c_int, cfg: Config) -> io::Result<()> {
    let key = 0u32;
    // SAFETY: key u32 and value `Config` match the map's key and value sizes.
    let rc = unsafe {
        bpf::bpf_map_update_elem(
            fd,
            (&key as *const u32).cast(),
            (&cfg as *const Config).cast(),
            u64::from(bpf::BPF_ANY),
        )
    };
    if rc != 0 {
        return Err(errno(rc));
    }
    Ok(())
}

/// The per-interface claim; another live tcpulse holding it is a busy interface.
fn take_owner(ifindex: u32, iface: &str) -> Result<sys::OwnerLock, LiveError> {
    // A program of this process may be in the middle of its Drop: give it a moment.
    for _ in 0..50 {
        match sys::OwnerLock::try_take(ifindex) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(LiveError::io("claim the interface for tcpulse", e)),
        }
    }
    Err(LiveError::XdpBusy {
        iface: iface.to_string(),
        holder: "another running tcpulse process".to_string(),
    })
}

/// Attaches `prog_fd` to the interface through a new BPF link.
fn link_create(
    ifindex: u32,
    iface: &str,
    prog_fd: c_int,
    mode: XdpMode,
) -> Result<OwnedFd, LiveError> {
    // SAFETY: bpf_link_create_opts is plain data; all-zero plus `sz` is its documented init.
    let mut opts: bpf::bpf_link_create_opts = unsafe { mem::zeroed() };
    opts.sz = mem::size_of::<bpf::bpf_link_create_opts>();
    opts.flags = mode_flag(mode);
    // SAFETY: valid program descriptor and options; for XDP the target is the ifindex.
    let rc = unsafe {
        bpf::bpf_link_create(
            prog_fd,
            ifindex as c_int,
            bpf::bpf_attach_type_BPF_XDP,
            &opts,
        )
    };
    if rc >= 0 {
        // SAFETY: a fresh link descriptor nothing else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(rc) });
    }
    let err = errno(rc);
    Err(match err.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::EEXIST) => LiveError::XdpBusy {
            iface: iface.to_string(),
            holder: "a program attached at the same moment".to_string(),
        },
        Some(libc::ENODEV) => LiveError::InterfaceMissing {
            iface: iface.to_string(),
        },
        Some(libc::EPERM) => LiveError::Privilege {
            missing: vec!["CAP_NET_ADMIN"],
        },
        _ => LiveError::XdpRefused {
            iface: iface.to_string(),
            mode,
            source: err,
        },
    })
}

type Key = ((u64, u64), u32);

/// Programs of this process, one per (network namespace, interface).
static PROGRAMS: Mutex<Vec<(Key, Weak<XdpProgram>)>> = Mutex::new(Vec::new());

/// The program for `iface` in the calling thread's namespace, attached on first use and
/// detached when the last queue using it is dropped.
///
/// # Errors
/// As [`XdpProgram::attach`]; [`LiveError::Options`] when the program already attached was
/// set up with a different mode, `capture_all` or `hw_timestamps`.
pub(super) fn shared(iface: &str, opts: &XdpOptions) -> Result<Arc<XdpProgram>, LiveError> {
    let ifindex = sys::if_index(iface).ok_or_else(|| LiveError::InterfaceMissing {
        iface: iface.to_string(),
    })?;
    let netns = sys::netns_id().map_err(|e| LiveError::io("identify network namespace", e))?;
    let key = (netns, ifindex);
    let mut programs = PROGRAMS.lock().unwrap_or_else(|p| p.into_inner());
    programs.retain(|(_, w)| w.strong_count() > 0);
    if let Some(p) = programs
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        if !p.compatible(opts) {
            return Err(LiveError::Options {
                detail: format!(
                    "{iface} is already captured by this process in {} mode with other \
                     settings; every queue of an interface needs the same mode, capture_all \
                     and hw_timestamps",
                    p.mode
                ),
            });
        }
        return Ok(p);
    }
    let p = Arc::new(XdpProgram::attach(iface, opts)?);
    debug_assert_eq!(p.netns, netns);
    programs.push((key, Arc::downgrade(&p)));
    Ok(p)
}
