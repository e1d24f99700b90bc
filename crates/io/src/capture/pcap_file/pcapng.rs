//! pcapng: blocks, interfaces and their timestamp resolutions, packet blocks.

use super::*;

/// What a pcapng reader must remember between blocks.
pub(super) struct NgState {
    /// Byte order of the current section.
    pub(super) order: Order,
    /// Interfaces described so far in the current section, indexed by interface id.
    pub(super) ifaces: Vec<Interface>,
    /// Timestamp of the previous packet, lent to Simple Packet Blocks, which carry none.
    pub(super) last_ts_ns: u64,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Interface {
    pub(super) link_type: u32,
    /// 0 means no limit.
    pub(super) snaplen: u32,
    pub(super) scale: TsScale,
    /// if_tsoffset in ns, added to every timestamp of the interface.
    pub(super) offset_ns: i64,
}

/// How to turn an interface's timestamp units into ns, chosen once per interface so that the
/// per-packet conversion is a single multiply, divide or shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TsScale {
    /// Units of 10^-k s with k <= 9: multiply by 10^(9-k).
    Mul(u64),
    /// Units of 10^-k s with 9 < k <= 28: divide by 10^(k-9).
    Div(u64),
    /// Units of 2^-k s: ns = units * 10^9 / 2^k, computed in u128 so it is exact (then floored).
    Pow2(u32),
    /// Units so small that any u64 count is below 1 ns.
    Zero,
}

impl TsScale {
    /// Decodes the if_tsresol byte: top bit clear is a power of 10, set a power of 2.
    pub(super) fn from_tsresol(v: u8) -> TsScale {
        let k = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            TsScale::Pow2(k)
        } else if k <= 9 {
            TsScale::Mul(10u64.pow(9 - k))
        } else if k - 9 <= 19 {
            // 10^19 is the largest power of 10 in a u64; larger divisors always give 0.
            TsScale::Div(10u64.pow(k - 9))
        } else {
            TsScale::Zero
        }
    }

    #[inline]
    pub(super) fn to_ns(self, units: u64) -> u64 {
        match self {
            TsScale::Mul(m) => units.saturating_mul(m),
            TsScale::Div(d) => units / d,
            TsScale::Pow2(k) => {
                // units < 2^64 and 10^9 < 2^30, so the product fits in u128; k <= 127.
                let ns = (u128::from(units) * 1_000_000_000) >> k;
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
            TsScale::Zero => 0,
        }
    }
}

/// Reads pcapng blocks from `*pos` until one yields a frame; `Ok(None)` at a clean end of file.
pub(super) fn ng_next<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    st: &mut NgState,
) -> Result<Option<Frame<'a>>, CaptureError> {
    loop {
        match ng_step(buf, pos, st)? {
            NgStep::End => return Ok(None),
            NgStep::Block => {}
            NgStep::Frame(frame) => return Ok(Some(frame)),
        }
    }
}

/// What one pcapng block was.
pub(super) enum NgStep<'a> {
    /// No block left at `*pos`.
    End,
    /// A block without a packet (section or interface description, or one skipped).
    Block,
    Frame(Frame<'a>),
}

/// Reads the one block at `*pos` (the streaming reader makes sure it is loaded whole).
pub(super) fn ng_step<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    st: &mut NgState,
) -> Result<NgStep<'a>, CaptureError> {
    let start = *pos;
    if start >= buf.len() {
        return Ok(NgStep::End);
    }
    let blk = ng_block(buf, start, &mut st.order)?;
    let block_type = st.order.u32_at(blk, 0);
    let step = match block_type {
        block::SHB => {
            check_shb(blk, st.order, start)?;
            // Interface ids are numbered per section.
            st.ifaces.clear();
            NgStep::Block
        }
        block::IDB => {
            st.ifaces.push(parse_idb(blk, st.order, start)?);
            NgStep::Block
        }
        block::EPB | block::PB => NgStep::Frame(timed_packet(blk, block_type, st, start)?),
        block::SPB => NgStep::Frame(simple_packet(blk, st, start)?),
        _ => NgStep::Block,
    };
    *pos = start + blk.len();
    Ok(step)
}

/// The length of the block at the start of `rest`, once enough of it is there to tell
/// (12 bytes for a section header, whose byte order comes from its magic; 8 for others);
/// `order` is the current section's.
pub(super) fn ng_block_len(rest: &[u8], order: Order) -> Option<usize> {
    let head = rest.first_chunk::<12>();
    let section = rest.first_chunk::<4>().map(|t| u32::from_le_bytes(*t)) == Some(block::SHB);
    let order = if section {
        let head = head?;
        match u32::from_le_bytes([head[8], head[9], head[10], head[11]]) {
            magic::PCAPNG_BYTE_ORDER => Order::LITTLE,
            _ => Order::BIG,
        }
    } else {
        order
    };
    let len = rest.get(4..8)?;
    Some(order.u32_at(len, 0) as usize)
}

/// Checks the framing of the block at `start` (length at least 12, a multiple of 4, inside the
/// file, repeated at the end) and returns it whole. A Section Header Block first sets `order`
/// from its byte-order magic, since its own length is written in that order.
pub(super) fn ng_block<'a>(
    buf: &'a [u8],
    start: usize,
    order: &mut Order,
) -> Result<&'a [u8], CaptureError> {
    let rest = buf.get(start..).unwrap_or_default();
    if rest.len() < 8 {
        return Err(truncated(start, "block header", 8, rest.len()));
    }
    // The SHB type reads the same in both orders, so it can be recognised before the order is.
    if order.u32_at(rest, 0) == block::SHB {
        if rest.len() < 12 {
            return Err(truncated(start, "section header block", 12, rest.len()));
        }
        *order = match Order::LITTLE.u32_at(rest, 8) {
            magic::PCAPNG_BYTE_ORDER => Order::LITTLE,
            m if m == magic::PCAPNG_BYTE_ORDER.swap_bytes() => Order::BIG,
            _ => {
                return Err(corrupt(
                    start,
                    "section header has no valid byte-order magic",
                ))
            }
        };
    }
    let total = order.u32_at(rest, 4) as usize;
    if total < size::BLOCK_MIN {
        return Err(corrupt(start, "block length below the 12-byte minimum"));
    }
    if total % 4 != 0 {
        return Err(corrupt(start, "block length not a multiple of 4"));
    }
    let Some(blk) = rest.get(..total) else {
        return Err(truncated(start, "block", total, rest.len()));
    };
    // total >= 12 here, so the subtraction cannot underflow.
    if order.u32_at(blk, total - 4) as usize != total {
        return Err(corrupt(
            start,
            "trailing block length differs from the leading one",
        ));
    }
    Ok(blk)
}

pub(super) fn check_shb(blk: &[u8], order: Order, start: usize) -> Result<(), CaptureError> {
    if blk.len() < size::SHB_MIN {
        return Err(corrupt(start, "section header block shorter than 28 bytes"));
    }
    // Minor versions are compatible by definition; a new major version is not.
    if order.u16_at(blk, 12) != 1 {
        return Err(corrupt(start, "unsupported pcapng major version (not 1)"));
    }
    Ok(())
}

pub(super) fn parse_idb(blk: &[u8], order: Order, start: usize) -> Result<Interface, CaptureError> {
    if blk.len() < size::IDB_MIN {
        return Err(corrupt(
            start,
            "interface description block shorter than 20 bytes",
        ));
    }
    let mut iface = Interface {
        link_type: u32::from(order.u16_at(blk, 8)),
        snaplen: order.u32_at(blk, 12),
        scale: TsScale::Mul(1_000),
        offset_ns: 0,
    };
    // Options sit between the fixed part and the trailing length; len >= 20 checked above.
    let mut opts = blk.get(16..blk.len() - 4).unwrap_or_default();
    while opts.len() >= 4 {
        let code = order.u16_at(opts, 0);
        let len = usize::from(order.u16_at(opts, 2));
        if code == opt::END {
            break;
        }
        let Some(value) = opts.get(4..4 + len) else {
            return Err(corrupt(
                start,
                "interface option runs past the end of its block",
            ));
        };
        match code {
            opt::IF_TSRESOL => {
                let [v] = value else {
                    return Err(corrupt(start, "if_tsresol option is not 1 byte long"));
                };
                iface.scale = TsScale::from_tsresol(*v);
            }
            opt::IF_TSOFFSET => {
                if value.len() != 8 {
                    return Err(corrupt(start, "if_tsoffset option is not 8 bytes long"));
                }
                let secs = order.u64_at(value, 0) as i64;
                iface.offset_ns = secs.saturating_mul(1_000_000_000);
            }
            _ => {}
        }
        // Values are padded to 4 bytes; a missing pad after the last option is tolerated.
        opts = opts.get(4 + len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(iface)
}

/// Enhanced Packet Block, or the obsolete Packet Block whose interface id is 16 bits wide
/// (followed by a drops count); otherwise the two share their layout.
#[inline]
pub(super) fn timed_packet<'a>(
    blk: &'a [u8],
    block_type: u32,
    st: &mut NgState,
    start: usize,
) -> Result<Frame<'a>, CaptureError> {
    let iface_id = if block_type == block::PB {
        if blk.len() < size::PB_MIN {
            return Err(corrupt(start, "packet block shorter than 32 bytes"));
        }
        u32::from(st.order.u16_at(blk, 8))
    } else {
        if blk.len() < size::EPB_MIN {
            return Err(corrupt(
                start,
                "enhanced packet block shorter than 32 bytes",
            ));
        }
        st.order.u32_at(blk, 8)
    };
    let Some(iface) = st.ifaces.get(iface_id as usize) else {
        return Err(corrupt(
            start,
            "packet refers to an interface not described in this section",
        ));
    };
    let units = u64::from(st.order.u32_at(blk, 12)) << 32 | u64::from(st.order.u32_at(blk, 16));
    let cap_len = st.order.u32_at(blk, 20);
    let wire_len = st.order.u32_at(blk, 24);
    if cap_len > MAX_FRAME_LEN {
        return Err(corrupt(start, "captured length above 256 KiB"));
    }
    // Data ends before the options and the trailing length; len >= 32 checked above.
    let room = blk.len() - size::TIMED_DATA - 4;
    if cap_len as usize > room {
        return Err(corrupt(
            start,
            "captured length runs past the end of its block",
        ));
    }
    let data = blk
        .get(size::TIMED_DATA..size::TIMED_DATA + cap_len as usize)
        .unwrap_or_default();
    let ts_ns = iface
        .scale
        .to_ns(units)
        .saturating_add_signed(iface.offset_ns);
    st.last_ts_ns = ts_ns;
    Ok(Frame {
        ts_ns,
        link_type: iface.link_type,
        data,
        wire_len,
    })
}

/// Simple Packet Block: always interface 0, captured length implied by the original length,
/// the interface snaplen and the block size. It has no timestamp, so the frame gets the previous
/// packet's timestamp (0 if it is the first), which keeps time monotonic for the flow engine.
pub(super) fn simple_packet<'a>(
    blk: &'a [u8],
    st: &mut NgState,
    start: usize,
) -> Result<Frame<'a>, CaptureError> {
    if blk.len() < size::SPB_MIN {
        return Err(corrupt(start, "simple packet block shorter than 16 bytes"));
    }
    let Some(iface) = st.ifaces.first() else {
        return Err(corrupt(
            start,
            "simple packet block before any interface description",
        ));
    };
    let wire_len = st.order.u32_at(blk, 8);
    // len >= 16 checked above.
    let room = blk.len() - size::SPB_DATA - 4;
    let mut cap = (wire_len as usize).min(room);
    if iface.snaplen != 0 {
        cap = cap.min(iface.snaplen as usize);
    }
    if cap > MAX_FRAME_LEN as usize {
        return Err(corrupt(start, "captured length above 256 KiB"));
    }
    let data = blk
        .get(size::SPB_DATA..size::SPB_DATA + cap)
        .unwrap_or_default();
    Ok(Frame {
        ts_ns: st.last_ts_ns,
        link_type: iface.link_type,
        data,
        wire_len,
    })
}
