//! Why live capture could not start or had to stop. Plain data; [`fmt::Display`] is the message
//! for the operator, naming the interface, the queue, the missing capability or the fix.

use std::fmt;
use std::io;

use super::XdpMode;

/// Errors of the AF_XDP capture source.
#[derive(Debug)]
pub enum LiveError {
    /// No interface of that name in this network namespace.
    InterfaceMissing { iface: String },
    /// The interface disappeared while capturing.
    InterfaceGone { iface: String },
    /// The process lacks capabilities; `missing` names them (`CAP_BPF`, ...).
    Privilege { missing: Vec<&'static str> },
    /// The kernel or driver refused to attach XDP in this mode.
    XdpRefused {
        iface: String,
        mode: XdpMode,
        source: io::Error,
    },
    /// Another XDP program (not a leftover of ours) is attached, or another live tcpulse
    /// process is capturing on the interface.
    XdpBusy { iface: String, holder: String },
    /// The queue does not exist: the interface has `queues` RX queues, numbered from 0.
    QueueOutOfRange {
        iface: String,
        queue: u32,
        queues: u32,
    },
    /// Zero-copy was required but the driver cannot bind this queue in zero-copy mode.
    ZeroCopyUnavailable {
        iface: String,
        queue: u32,
        source: io::Error,
    },
    /// Our XDP program did not load (verifier, kernel too old); `detail` ends with the tail of
    /// the verifier log when there is one.
    ProgramLoad { detail: String },
    /// The AF_XDP socket could not be created or bound.
    Socket {
        iface: String,
        queue: u32,
        detail: String,
    },
    /// The options cannot work (sizes not powers of two, ...).
    Options { detail: String },
    /// Any other system call failure, with what was being done.
    Io { context: String, source: io::Error },
    /// AF_PACKET capture options that cannot work (ring sizes, flags that belong to AF_XDP).
    AfPacketOptions { detail: String },
    /// An AF_PACKET ring socket could not be set up (fanout member `member` of the run).
    AfPacketSocket {
        iface: String,
        member: u32,
        detail: String,
    },
}

impl LiveError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> LiveError {
        LiveError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::InterfaceMissing { iface } => write!(
                f,
                "interface {iface:?} does not exist (in this network namespace); \
                 `ip link` lists the interfaces"
            ),
            LiveError::InterfaceGone { iface } => {
                write!(f, "interface {iface:?} disappeared while capturing")
            }
            LiveError::Privilege { missing } => write!(
                f,
                "not enough privilege for AF_XDP capture: missing {}; run as root or grant \
                 them, e.g. `setcap cap_net_admin,cap_net_raw,cap_bpf,cap_ipc_lock+ep tcpulse`",
                missing.join(", ")
            ),
            LiveError::XdpRefused {
                iface,
                mode,
                source,
            } => {
                write!(f, "{iface}: XDP refused in {mode} mode: {source}")?;
                if *mode == XdpMode::Native {
                    f.write_str(
                        "; the driver may not support native XDP (or the MTU is too large \
                         for it): try skb mode (--xdp-mode skb)",
                    )?;
                }
                Ok(())
            }
            LiveError::XdpBusy { iface, holder } => write!(
                f,
                "{iface}: XDP is in use by {holder}; tcpulse replaces only a program left by \
                 an earlier tcpulse run (detach the other with `ip link set dev {iface} xdp off`)"
            ),
            LiveError::QueueOutOfRange {
                iface,
                queue,
                queues,
            } => write!(
                f,
                "{iface} has {queues} RX queue{} (0..={}), there is no queue {queue}",
                if *queues == 1 { "" } else { "s" },
                queues.saturating_sub(1)
            ),
            LiveError::ZeroCopyUnavailable {
                iface,
                queue,
                source,
            } => write!(
                f,
                "{iface} queue {queue}: zero-copy AF_XDP not available ({source}); \
                 allow copy mode (zero_copy auto or copy)"
            ),
            LiveError::ProgramLoad { detail } => {
                write!(f, "the tcpulse XDP program did not load: {detail}")
            }
            LiveError::Socket {
                iface,
                queue,
                detail,
            } => write!(f, "{iface} queue {queue}: AF_XDP socket failed: {detail}"),
            LiveError::Options { detail } => write!(f, "invalid XDP capture options: {detail}"),
            LiveError::Io { context, source } => write!(f, "{context}: {source}"),
            LiveError::AfPacketOptions { detail } => {
                write!(f, "invalid AF_PACKET capture options: {detail}")
            }
            LiveError::AfPacketSocket {
                iface,
                member,
                detail,
            } => write!(f, "{iface} AF_PACKET ring {member}: {detail}"),
        }
    }
}

impl std::error::Error for LiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LiveError::XdpRefused { source, .. }
            | LiveError::ZeroCopyUnavailable { source, .. }
            | LiveError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_the_operator_needs() {
        let e = LiveError::QueueOutOfRange {
            iface: "eth1".into(),
            queue: 4,
            queues: 2,
        };
        assert_eq!(
            e.to_string(),
            "eth1 has 2 RX queues (0..=1), there is no queue 4"
        );
        let e = LiveError::QueueOutOfRange {
            iface: "eth1".into(),
            queue: 1,
            queues: 1,
        };
        assert!(e.to_string().starts_with("eth1 has 1 RX queue (0..=0)"));
        let e = LiveError::InterfaceMissing {
            iface: "nope0".into(),
        };
        assert!(e.to_string().contains("\"nope0\" does not exist"));
        let e = LiveError::Privilege {
            missing: vec!["CAP_BPF", "CAP_NET_RAW"],
        };
        assert!(e.to_string().contains("missing CAP_BPF, CAP_NET_RAW"));
        let e = LiveError::XdpRefused {
            iface: "eth1".into(),
            mode: XdpMode::Native,
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        };
        assert!(e.to_string().contains("skb mode"));
    }
}
