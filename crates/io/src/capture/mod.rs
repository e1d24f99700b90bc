//! Capture: where frames come from. Every source hands on the same [`Frame`]: capture time,
//! link type, the bytes captured and the length on the wire.
//!
//! - [`pcap_file`]: zero-copy reading of pcap and pcapng files (format from the magic number).
//! - [`pcap_writer`]: writing pcap and pcapng, for saved samples and for tests.
//! - [`xdp`]: live capture from a network interface with AF_XDP and tcpulse's XDP program.
//! - [`af_packet`]: live capture through TPACKET_V3 rings in a fanout group; the host keeps
//!   every frame.
//! - [`live`]: the [`LiveQueue`] interface `tcpulse run` reads every live source through.

pub mod af_packet;
pub mod fake;
pub mod filter;
pub mod frame;
pub mod live;
pub mod pcap_file;
pub mod pcap_writer;
pub mod xdp;

pub use filter::{CaptureFilter, FilterError};
pub use frame::{Frame, LINKTYPE_ETHERNET};
pub use live::{LiveQueue, QueueDrops};
pub use pcap_file::{
    CaptureError, CaptureFile, CaptureInput, CaptureStream, Compression, FileFormat, Frames,
    MAX_FRAME_LEN,
};
pub use pcap_writer::{PcapNgWriter, PcapWriter};

/// The live capture source of `tcpulse run`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaptureKind {
    #[default]
    Xdp,
    AfPacket,
}

impl CaptureKind {
    /// The name `--capture` and the configuration file use.
    pub fn name(self) -> &'static str {
        match self {
            CaptureKind::Xdp => "xdp",
            CaptureKind::AfPacket => "af-packet",
        }
    }
}
