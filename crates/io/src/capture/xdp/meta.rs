//! The metadata our XDP program writes in front of each captured frame, and how a frame's
//! timestamp is chosen from it.
//!
//! ABI shared with `bpf/capture.bpf.c` (`struct tcpulse_meta`): [`META_LEN`] bytes ending right
//! where the packet starts, in host byte order:
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0..8 | `hw_ns` | driver receive timestamp, valid when `flags` has [`FLAG_HW`] |
//! | 8..16 | `kernel_ns` | `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds |
//! | 16..20 | `flags` | [`FLAG_HW`] |
//! | 20..24 | `magic` | [`MAGIC`]; anything else means this frame has no metadata |
//!
//! User space clears the magic word before a frame goes back to the fill ring, so bytes left by
//! an earlier packet are never read as this packet's (a driver without metadata support still
//! redirects the frame, without writing anything in front of it).

/// Bytes of metadata in front of the packet.
pub const META_LEN: usize = 24;

/// `tcpulse_meta.magic`.
pub const MAGIC: u32 = 0x7c9e_1a5e;

/// `tcpulse_meta.flags`: `hw_ns` holds the driver's timestamp.
pub const FLAG_HW: u32 = 1;

/// A hardware timestamp further than this from the kernel's stamp of the same frame is not on
/// the Unix epoch (a NIC clock on TAI, or not disciplined at all) and is not used.
pub const HW_MAX_SKEW_NS: u64 = 1_000_000_000;

/// Offsets inside the metadata block.
mod field {
    use std::ops::Range;
    pub const HW_NS: Range<usize> = 0..8;
    pub const KERNEL_NS: Range<usize> = 8..16;
    pub const FLAGS: Range<usize> = 16..20;
    pub const MAGIC: Range<usize> = 20..24;
}

/// Byte offset of the magic word inside the block, for clearing it.
pub const MAGIC_OFFSET: usize = field::MAGIC.start;

/// The metadata of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// CLOCK_MONOTONIC nanoseconds when the XDP program ran.
    pub kernel_ns: u64,
    /// The driver's receive timestamp, when it gave one.
    pub hw_ns: Option<u64>,
}

fn u32_at(b: &[u8; META_LEN], r: std::ops::Range<usize>) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[r]);
    u32::from_ne_bytes(w)
}

fn u64_at(b: &[u8; META_LEN], r: std::ops::Range<usize>) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[r]);
    u64::from_ne_bytes(w)
}

/// Reads a metadata block; `None` when the magic word is missing.
pub fn parse(block: &[u8; META_LEN]) -> Option<Meta> {
    if u32_at(block, field::MAGIC) != MAGIC {
        return None;
    }
    let hw = u64_at(block, field::HW_NS);
    let hw_ns = (u32_at(block, field::FLAGS) & FLAG_HW != 0 && hw != 0).then_some(hw);
    Some(Meta {
        kernel_ns: u64_at(block, field::KERNEL_NS),
        hw_ns,
    })
}

/// The timestamp to report for a frame, Unix-epoch nanoseconds: the driver's when it is within
/// [`HW_MAX_SKEW_NS`] of the kernel's (converted with `kernel_to_unix`), else the kernel's.
/// The flag says whether the hardware stamp was used.
pub fn choose(meta: Meta, kernel_to_unix: impl Fn(u64) -> u64) -> (u64, bool) {
    let kernel = kernel_to_unix(meta.kernel_ns);
    match meta.hw_ns {
        Some(hw) if hw.abs_diff(kernel) <= HW_MAX_SKEW_NS => (hw, true),
        _ => (kernel, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(hw: u64, kernel: u64, flags: u32, magic: u32) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..8].copy_from_slice(&hw.to_ne_bytes());
        b[8..16].copy_from_slice(&kernel.to_ne_bytes());
        b[16..20].copy_from_slice(&flags.to_ne_bytes());
        b[20..24].copy_from_slice(&magic.to_ne_bytes());
        b
    }

    #[test]
    fn kernel_only_and_with_hardware() {
        let m = parse(&block(0, 42, 0, MAGIC)).unwrap();
        assert_eq!(
            m,
            Meta {
                kernel_ns: 42,
                hw_ns: None
            }
        );
        let m = parse(&block(7, 42, FLAG_HW, MAGIC)).unwrap();
        assert_eq!(m.hw_ns, Some(7));
        // A zero hardware value is "none", whatever the flag says.
        assert_eq!(parse(&block(0, 42, FLAG_HW, MAGIC)).unwrap().hw_ns, None);
        // Without the flag the hardware field is ignored.
        assert_eq!(parse(&block(7, 42, 0, MAGIC)).unwrap().hw_ns, None);
    }

    #[test]
    fn missing_magic() {
        assert_eq!(parse(&block(0, 42, 0, 0)), None);
        assert_eq!(parse(&block(0, 42, 0, MAGIC.swap_bytes())), None);
        assert_eq!(parse(&[0u8; META_LEN]), None);
        let mut b = block(0, 1, 0, MAGIC);
        b[MAGIC_OFFSET..MAGIC_OFFSET + 4].fill(0);
        assert_eq!(parse(&b), None);
    }

    #[test]
    fn hardware_used_only_near_the_kernel_stamp() {
        let to_unix = |k: u64| k + 1_000_000_000_000;
        let kernel_only = Meta {
            kernel_ns: 5,
            hw_ns: None,
        };
        assert_eq!(choose(kernel_only, to_unix), (1_000_000_000_005, false));
        let near = Meta {
            kernel_ns: 5,
            hw_ns: Some(1_000_000_000_000),
        };
        assert_eq!(choose(near, to_unix), (1_000_000_000_000, true));
        // 37 s ahead: a NIC clock on TAI.
        let tai = Meta {
            kernel_ns: 5,
            hw_ns: Some(1_037_000_000_005),
        };
        assert_eq!(choose(tai, to_unix), (1_000_000_000_005, false));
    }
}
