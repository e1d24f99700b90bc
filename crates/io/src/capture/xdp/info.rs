//! What an AF_XDP queue tells about itself: its statistics and the line that says what is in
//! use (program, mode, timestamps, fallbacks).

use std::fmt;

use super::XdpMode;

/// Socket statistics (`getsockopt(XDP_STATISTICS)`) plus this queue's own counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames dropped by the kernel for reasons other than the two below.
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full (user space too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (frames dropped for want of a buffer).
    pub fill_ring_empty: u64,
    /// Invalid descriptors met on the RX side.
    pub invalid_descs: u64,
    /// Frames delivered by `recv_batch`.
    pub frames: u64,
    /// Of those, frames stamped with the user-space batch time (no metadata).
    pub batch_time_frames: u64,
    /// Of those, frames stamped with the driver's timestamp.
    pub hw_time_frames: u64,
}

/// Which XDP program feeds the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// tcpulse's own: TCP only (unless capture_all), timestamps in the metadata.
    Tcpulse,
    /// libxdp's default AF_XDP program: every frame of the queue, no metadata.
    LibxdpDefault,
}

/// Where the timestamps handed to `recv_batch` callbacks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampSource {
    /// The driver's receive timestamp where it gives one, else [`TimestampSource::Kernel`].
    Hardware,
    /// `bpf_ktime_get_ns()` in the XDP program, converted to the Unix epoch.
    Kernel,
    /// CLOCK_REALTIME read once per received batch in user space.
    UserBatch,
}

/// How a queue ended up set up, after the fallbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpInfo {
    pub iface: String,
    pub queue: u32,
    /// RX queues the interface has, when known.
    pub queues: Option<u32>,
    pub mode: XdpMode,
    pub zero_copy: bool,
    pub program: ProgramKind,
    pub timestamps: TimestampSource,
    /// Why tcpulse's program is not in use, when it is not.
    pub fallback_reason: Option<String>,
    /// Id of a leftover tcpulse program that was replaced at attach.
    pub replaced_program: Option<u32>,
    /// Uncertainty of the CLOCK_MONOTONIC → Unix epoch offset, nanoseconds.
    pub epoch_uncertainty_ns: u64,
}

impl fmt::Display for XdpInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} queue {}: {} XDP, {} mode, {} program, {} timestamps",
            self.iface,
            self.queue,
            self.mode,
            if self.zero_copy { "zero-copy" } else { "copy" },
            match self.program {
                ProgramKind::Tcpulse => "tcpulse",
                ProgramKind::LibxdpDefault => "libxdp default (all traffic)",
            },
            match self.timestamps {
                TimestampSource::Hardware => "driver (kernel where absent)",
                TimestampSource::Kernel => "kernel",
                TimestampSource::UserBatch => "user-space batch",
            }
        )?;
        if let Some(id) = self.replaced_program {
            write!(f, "; replaced leftover program id {id}")?;
        }
        if let Some(r) = &self.fallback_reason {
            write!(f, "; fallback because: {r}")?;
        }
        Ok(())
    }
}
