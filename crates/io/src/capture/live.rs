//! What `tcpulse run` needs from a live capture queue, whatever takes the frames from the
//! kernel: an AF_XDP socket bound to one RX queue, or one AF_PACKET ring of a fanout group.

use super::xdp::{LiveError, XdpQueue};
use super::Frame;

/// Kernel-side drop counters of one queue, cumulative since it opened. Each source fills the
/// fields it has; the others stay 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDrops {
    pub xdp_rx_dropped: u64,
    pub xdp_rx_ring_full: u64,
    pub xdp_fill_ring_empty: u64,
    pub xdp_invalid_descs: u64,
    /// Frames the kernel could not put in an AF_PACKET ring (ring full).
    pub af_packet_drops: u64,
}

/// One live capture queue, read by one capture thread.
pub trait LiveQueue: Send {
    /// Receives up to one batch: waits up to `timeout_ms` (0: do not wait) when nothing is
    /// ready, then calls `f` for each frame in place. Returns the number of frames, 0 on
    /// timeout.
    ///
    /// # Errors
    /// [`LiveError::InterfaceGone`] when the interface was removed, other variants when the
    /// kernel refuses.
    fn recv_batch(
        &mut self,
        timeout_ms: i32,
        f: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError>;

    /// The kernel's drop counters for this queue, cumulative.
    fn drops(&mut self) -> QueueDrops;

    /// A short name for thread names: `xdp-0`, `pkt-1`.
    fn thread_name(&self) -> String;

    /// One line for the operator: interface, queue, mode, timestamp source, fallbacks.
    fn describe(&self) -> String;

    /// Whether undoing this queue's set-up at exit needs CAP_NET_ADMIN (a program attached
    /// through netlink rather than a BPF link), so a `--user` run must keep it.
    fn detach_needs_net_admin(&self) -> bool {
        false
    }
}

impl LiveQueue for XdpQueue {
    fn recv_batch(
        &mut self,
        timeout_ms: i32,
        f: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        XdpQueue::recv_batch(self, timeout_ms, f)
    }

    fn drops(&mut self) -> QueueDrops {
        let s = self.stats();
        QueueDrops {
            xdp_rx_dropped: s.rx_dropped,
            xdp_rx_ring_full: s.rx_ring_full,
            xdp_fill_ring_empty: s.fill_ring_empty,
            xdp_invalid_descs: s.invalid_descs,
            af_packet_drops: 0,
        }
    }

    fn thread_name(&self) -> String {
        format!("xdp-{}", self.info().queue)
    }

    fn describe(&self) -> String {
        self.info().to_string()
    }

    fn detach_needs_net_admin(&self) -> bool {
        // libxdp detaches its default program through netlink.
        self.info().program == super::xdp::ProgramKind::LibxdpDefault
    }
}
