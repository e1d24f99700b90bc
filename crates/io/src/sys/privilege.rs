//! Least privilege for `tcpulse run --user NAME`: once the sockets are bound, the XDP program
//! attached and the outputs open, the process becomes NAME with only the capabilities it still
//! needs (usually none: receiving on bound sockets and closing them needs no privilege).
//!
//! Order matters, and capabilities are per thread in Linux:
//! 1. [`forbid_new_privileges`] first, before any thread starts, so every thread inherits it:
//!    nothing run later (no exec of a set-uid program) can gain privileges.
//! 2. [`become_user`] after set-up, on the main thread: drop the other capabilities from the
//!    bounding set, keep the permitted ones across the uid change (`PR_SET_KEEPCAPS`), change
//!    groups, gid and uid (glibc applies these to every thread; threads that already run lose
//!    all their capabilities with the uid change), then narrow the main thread's sets to what
//!    is kept. Threads started afterwards inherit the narrowed sets.

use std::ffi::CString;
use std::fmt;
use std::io;

/// Capability numbers (linux/capability.h) used here.
pub const CAP_NET_ADMIN: u32 = 12;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What went wrong, for the operator.
#[derive(Debug)]
pub struct PrivilegeError(String);

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn os(what: &str) -> PrivilegeError {
    PrivilegeError(format!("{what}: {}", io::Error::last_os_error()))
}

/// Sets no_new_privs for the calling thread and every thread it starts later.
///
/// # Errors
/// The kernel refused (it never does on the kernels tcpulse supports).
pub fn forbid_new_privileges() -> Result<(), PrivilegeError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(os("PR_SET_NO_NEW_PRIVS"));
    }
    Ok(())
}

/// The user's uid and primary gid.
fn lookup(user: &str) -> Result<(u32, u32), PrivilegeError> {
    let name =
        CString::new(user).map_err(|_| PrivilegeError(format!("--user {user:?}: bad name")))?;
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    // SAFETY: passwd is plain data, filled by getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives it.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(PrivilegeError(format!(
            "--user {user}: no such user (see /etc/passwd)"
        )));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Becomes `user` keeping only `keep` (capability numbers), as described in the module docs.
///
/// # Errors
/// An unknown user, or a step the kernel refused (not root to begin with: say so).
pub fn become_user(user: &str, keep: &[u32]) -> Result<(), PrivilegeError> {
    let (uid, gid) = lookup(user)?;
    for cap in 0..=last_cap() {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            // EINVAL: a capability this kernel does not know.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(PrivilegeError(format!(
                    "--user needs CAP_SETPCAP to drop capabilities (run as root): {e}"
                )));
            }
        }
    }
    // SAFETY: prctl, setgroups, setgid and setuid with plain arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(os("PR_SET_KEEPCAPS"));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(os("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(os("setuid"));
        }
    }
    let mut data = [CapData::default(); 2];
    for &cap in keep {
        let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        if let Some(d) = data.get_mut(word) {
            d.effective |= bit;
            d.permitted |= bit;
        }
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads one header and two data structs, all alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(os("capset"));
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    // SAFETY: getuid and geteuid have no preconditions.
    if unsafe { libc::getuid() != uid || libc::geteuid() != uid } {
        return Err(PrivilegeError(format!(
            "--user {user}: the uid did not change"
        )));
    }
    Ok(())
}

/// Names for the capabilities `become_user` may keep, for messages.
pub fn cap_name(cap: u32) -> &'static str {
    match cap {
        CAP_NET_ADMIN => "CAP_NET_ADMIN",
        _ => "CAP_?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_looked_up_and_unknown_ones_named() {
        assert_eq!(lookup("root").unwrap().0, 0);
        let e = lookup("no-such-user-tcpulse").unwrap_err().to_string();
        assert!(e.contains("no such user"), "{e}");
        assert!(last_cap() >= 38);
    }
}
