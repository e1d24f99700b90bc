//! The one frame type every source hands on: capture files and live queues alike.

/// pcap LINKTYPE of Ethernet, what live sources capture.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// One captured frame, borrowed from where the source keeps it (the mapped file, the UMEM,
/// the ring block) until the callback or the next iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// pcap LINKTYPE number (1 Ethernet, 113 Linux cooked, 0 BSD loopback, ...).
    pub link_type: u32,
    /// Captured bytes; shorter than `wire_len` when a snap length or a ring block cut it.
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub wire_len: u32,
}

impl Frame<'_> {
    /// An Ethernet frame captured whole.
    pub fn ethernet(ts_ns: u64, data: &[u8]) -> Frame<'_> {
        Frame {
            ts_ns,
            link_type: LINKTYPE_ETHERNET,
            data,
            wire_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
        }
    }

    /// True when fewer bytes were captured than were on the wire (a cut, not an error).
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.wire_len)
    }
}
