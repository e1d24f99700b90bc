//! One AF_XDP socket on one RX queue: UMEM, fill and RX rings (xsk-rs), batch receive.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::clock::{self, EpochOffset};
use super::error::LiveError;
pub use super::info::{ProgramKind, TimestampSource, XdpInfo, XdpStats};
use super::meta::{self, META_LEN};
use super::program::{self, XdpProgram};
use super::{ProgramChoice, XdpMode, XdpOptions, ZeroCopy};
use crate::capture::Frame;
use crate::sys::xdp as sys;

/// UMEM frame sizes the kernel accepts for an aligned UMEM.
const FRAME_SIZES: [u32; 2] = [2048, 4096];
/// Rings smaller than this make batching pointless.
const MIN_FRAMES: u32 = 64;
const MAX_FRAMES: u32 = 1 << 20;
/// The TX and completion rings are unused; the smallest sizes that work.
const UNUSED_RING: u32 = 64;
/// Idle polls between checks that the interface still exists, when polling without timeout.
const IDLE_CHECK_EVERY: u32 = 1024;

/// Everything that belongs to one bound socket; dropped together.
struct Bound {
    umem: Umem,
    rx: RxQueue,
    fill: FillQueue,
    _tx: TxQueue,
    _comp: CompQueue,
    frames: Vec<FrameDesc>,
    zero_copy: bool,
}

/// One AF_XDP socket bound to one RX queue of an interface.
///
/// Created with [`XdpQueue::open`]; frames are read in batches with [`XdpQueue::recv_batch`].
/// `Send`, so it can move to a pinned capture thread; not `Sync`.
pub struct XdpQueue {
    /// Dropped by hand in Drop, inside `netns` when there is one.
    bound: ManuallyDrop<Bound>,
    /// With libxdp's default program: the namespace the socket was opened in. libxdp detaches
    /// its program when the last socket is deleted, through netlink in the calling thread's
    /// namespace, so the deletion must happen there.
    netns: Option<sys::Netns>,
    /// Descriptors of the batch in hand.
    batch: Vec<FrameDesc>,
    /// Frames consumed but not yet back on the fill ring (only when the ring was full).
    spare: Vec<FrameDesc>,
    /// Address (not a pointer: see `meta_ptr`) of the UMEM's first byte, and its length.
    umem_base: usize,
    umem_len: usize,
    frame_size: usize,
    has_meta: bool,
    offset: &'static EpochOffset,
    info: XdpInfo,
    counts: Cell<XdpStats>,
    last_stats: Cell<XdpStats>,
    idle: u32,
    /// Set once the interface is known to be gone; every later call reports it.
    gone: bool,
    _promisc: Option<sys::Promisc>,
    program: Option<Arc<XdpProgram>>,
}

impl fmt::Debug for XdpQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpQueue")
            .field("info", &self.info)
            .finish()
    }
}

fn check_options(opts: &XdpOptions) -> Result<(), LiveError> {
    let detail = if !FRAME_SIZES.contains(&opts.frame_size) {
        format!("frame_size {} must be 2048 or 4096", opts.frame_size)
    } else if !opts.frame_count.is_power_of_two()
        || !(MIN_FRAMES..=MAX_FRAMES).contains(&opts.frame_count)
    {
        format!(
            "frame_count {} must be a power of two between {MIN_FRAMES} and {MAX_FRAMES}",
            opts.frame_count
        )
    } else if opts.batch == 0 || opts.batch > opts.frame_count {
        format!(
            "batch {} must be between 1 and frame_count ({})",
            opts.batch, opts.frame_count
        )
    } else {
        return Ok(());
    };
    Err(LiveError::Options { detail })
}

/// The errno inside an xsk-rs error, if it carries one.
fn os_error(e: &(dyn std::error::Error + 'static)) -> Option<io::Error> {
    e.source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
        .map(io::Error::from_raw_os_error)
}

fn qsize(n: u32) -> Result<QueueSize, LiveError> {
    QueueSize::new(n).map_err(|e| LiveError::Options {
        detail: e.to_string(),
    })
}

/// Creates a UMEM and binds a socket with `bind`; the fill ring gets every frame.
fn bind(
    iface: &str,
    queue: u32,
    opts: &XdpOptions,
    bind: BindFlags,
    libxdp: LibxdpFlags,
) -> Result<Bound, (LiveError, Option<io::Error>)> {
    let plain = |e: LiveError| (e, None);
    let frame_size = FrameSize::new(opts.frame_size).map_err(|e| {
        plain(LiveError::Options {
            detail: e.to_string(),
        })
    })?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(qsize(opts.frame_count).map_err(plain)?)
        .comp_queue_size(qsize(UNUSED_RING).map_err(plain)?)
        .frame_headroom(0)
        .build()
        .map_err(|e| {
            plain(LiveError::Options {
                detail: e.to_string(),
            })
        })?;
    let count = NonZeroU32::new(opts.frame_count).ok_or_else(|| {
        plain(LiveError::Options {
            detail: "frame_count is 0".into(),
        })
    })?;
    let (umem, frames) = Umem::new(umem_cfg, count, false).map_err(|e| {
        let os = os_error(&e);
        let detail = match &os {
            Some(o) => format!("{e}: {o}"),
            None => e.to_string(),
        };
        (
            LiveError::Socket {
                iface: iface.to_string(),
                queue,
                detail: format!("UMEM: {detail}"),
            },
            os,
        )
    })?;

    let xdp_flags = match opts.mode {
        XdpMode::Native => XdpFlags::XDP_FLAGS_DRV_MODE,
        XdpMode::Skb => XdpFlags::XDP_FLAGS_SKB_MODE,
    };
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(qsize(opts.frame_count).map_err(plain)?)
        .tx_queue_size(qsize(UNUSED_RING).map_err(plain)?)
        .libxdp_flags(libxdp)
        .xdp_flags(xdp_flags)
        .bind_flags(bind | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let name: Interface = iface.parse().map_err(|_| {
        plain(LiveError::InterfaceMissing {
            iface: iface.to_string(),
        })
    })?;
    // SAFETY: the UMEM is new and not shared, so the inhibit-flag requirement for shared UMEMs
    // does not apply.
    let (tx, rx, rings) = unsafe { Socket::new(sock_cfg, &umem, &name, queue) }.map_err(|e| {
        let os = os_error(&e);
        let detail = match &os {
            Some(o) if o.raw_os_error() == Some(libc::EBUSY) => {
                format!("{e}: {o}; the queue already has an AF_XDP socket (another capture?)")
            }
            Some(o) => format!("{e}: {o}"),
            None => e.to_string(),
        };
        (
            LiveError::Socket {
                iface: iface.to_string(),
                queue,
                detail,
            },
            os,
        )
    })?;
    let Some((mut fill, comp)) = rings else {
        return Err(plain(LiveError::Socket {
            iface: iface.to_string(),
            queue,
            detail: "no fill ring for a new UMEM".into(),
        }));
    };
    // SAFETY: the descriptors are this UMEM's own frames, none of them in use.
    let put = unsafe { fill.produce(&frames) };
    if put != frames.len() {
        return Err(plain(LiveError::Socket {
            iface: iface.to_string(),
            queue,
            detail: format!("fill ring took {put} of {} frames", frames.len()),
        }));
    }
    Ok(Bound {
        umem,
        rx,
        fill,
        _tx: tx,
        _comp: comp,
        frames,
        zero_copy: bind.contains(BindFlags::XDP_ZEROCOPY),
    })
}

/// Zero-copy first when allowed, copy mode as the fallback.
fn bind_with_fallback(
    iface: &str,
    queue: u32,
    opts: &XdpOptions,
    libxdp: LibxdpFlags,
) -> Result<Bound, LiveError> {
    match opts.zero_copy {
        ZeroCopy::Copy => bind(iface, queue, opts, BindFlags::XDP_COPY, libxdp).map_err(|e| e.0),
        ZeroCopy::ZeroCopy | ZeroCopy::Auto => {
            match bind(iface, queue, opts, BindFlags::XDP_ZEROCOPY, libxdp) {
                Ok(b) => Ok(b),
                Err((_, Some(os))) if opts.zero_copy == ZeroCopy::ZeroCopy => {
                    Err(LiveError::ZeroCopyUnavailable {
                        iface: iface.to_string(),
                        queue,
                        source: os,
                    })
                }
                Err((e, _)) if opts.zero_copy == ZeroCopy::ZeroCopy => Err(e),
                Err(_) => bind(iface, queue, opts, BindFlags::XDP_COPY, libxdp).map_err(|e| e.0),
            }
        }
    }
}

impl XdpQueue {
    /// Opens RX queue `queue_id` of `iface` (in the calling thread's network namespace).
    ///
    /// Attaches tcpulse's XDP program to the interface if this process has not already (queues
    /// of one interface share it; it is detached when the last one is dropped), creates a UMEM
    /// of `frame_count` frames, binds an AF_XDP socket to the queue (zero-copy first unless told
    /// otherwise) and enters it in the program's XSKMAP. When tcpulse's program cannot be loaded
    /// and `opts.program` is `Auto`, falls back to libxdp's default program, which takes every
    /// frame of the queue and gives no timestamps; [`XdpQueue::info`] says what is in use.
    ///
    /// # Errors
    /// [`LiveError::Privilege`], [`LiveError::InterfaceMissing`], [`LiveError::QueueOutOfRange`],
    /// [`LiveError::XdpRefused`], [`LiveError::XdpBusy`], [`LiveError::ZeroCopyUnavailable`],
    /// [`LiveError::ProgramLoad`] (with `program: Ours`), [`LiveError::Socket`],
    /// [`LiveError::Options`].
    ///
    /// # Minimum kernel version
    /// 5.3 for tcpulse's program (bounded loops, XSKMAP fallback action); 6.3 for driver
    /// timestamps.
    pub fn open(iface: &str, queue_id: u32, opts: &XdpOptions) -> Result<XdpQueue, LiveError> {
        check_options(opts)?;
        let mut missing = program::missing_capabilities();
        if missing.is_empty() {
            let umem_bytes = u64::from(opts.frame_count) * u64::from(opts.frame_size);
            let ipc_lock = sys::effective_caps()
                .map(|c| c & (1u64 << sys::cap::IPC_LOCK) != 0)
                .unwrap_or(true);
            let limit = sys::memlock_limit().unwrap_or(u64::MAX);
            if !ipc_lock && limit < umem_bytes {
                missing.push("CAP_IPC_LOCK (or a memlock limit above the UMEM size)");
            }
        }
        if !missing.is_empty() {
            return Err(LiveError::Privilege { missing });
        }
        let ifindex = sys::if_index(iface).ok_or_else(|| LiveError::InterfaceMissing {
            iface: iface.to_string(),
        })?;
        let queues = sys::rx_queue_count(iface);
        if let Some(n) = queues {
            if queue_id >= n {
                return Err(LiveError::QueueOutOfRange {
                    iface: iface.to_string(),
                    queue: queue_id,
                    queues: n,
                });
            }
        }

        let (program, fallback_reason) = match opts.program {
            ProgramChoice::LibxdpDefault => (None, Some("libxdp default program requested".into())),
            ProgramChoice::Ours => (Some(program::shared(iface, opts)?), None),
            ProgramChoice::Auto => match program::shared(iface, opts) {
                Ok(p) => (Some(p), None),
                Err(LiveError::ProgramLoad { detail }) => (None, Some(detail)),
                Err(e) => return Err(e),
            },
        };

        let (libxdp, netns) = if program.is_some() {
            (LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD, None)
        } else {
            let ns = sys::Netns::current()
                .map_err(|e| LiveError::io("open the network namespace", e))?;
            (LibxdpFlags::empty(), Some(ns))
        };
        let bound = bind_with_fallback(iface, queue_id, opts, libxdp)?;
        if let Some(p) = &program {
            p.register(queue_id, bound.rx.fd().as_raw_fd())
                .map_err(|e| {
                    LiveError::io(format!("enter {iface} queue {queue_id} in the XSKMAP"), e)
                })?;
        }

        let promisc = if opts.promiscuous {
            Some(
                sys::Promisc::enable(ifindex)
                    .map_err(|e| LiveError::io(format!("set {iface} promiscuous"), e))?,
            )
        } else {
            None
        };

        // The UMEM's first byte: frame 0's headroom starts there.
        let umem_base = bound
            .frames
            .first()
            // SAFETY: the descriptor is one of this UMEM's frames; only its address is used.
            .map(|d| unsafe { bound.umem.headroom(d) }.contents().as_ptr().addr())
            .unwrap_or(0);
        let frame_size = opts.frame_size as usize;
        let umem_len = bound.frames.len() * frame_size;
        let offset = clock::process_offset();
        let has_meta = program.is_some();
        let timestamps = match &program {
            Some(p) if p.device_bound() => TimestampSource::Hardware,
            Some(_) => TimestampSource::Kernel,
            None => TimestampSource::UserBatch,
        };
        let info = XdpInfo {
            iface: iface.to_string(),
            queue: queue_id,
            queues,
            mode: opts.mode,
            zero_copy: bound.zero_copy,
            program: if has_meta {
                ProgramKind::Tcpulse
            } else {
                ProgramKind::LibxdpDefault
            },
            timestamps,
            fallback_reason,
            replaced_program: program.as_ref().and_then(|p| p.replaced()),
            epoch_uncertainty_ns: offset.uncertainty_ns(),
        };
        let batch = opts.batch as usize;
        Ok(XdpQueue {
            batch: vec![FrameDesc::default(); batch],
            spare: Vec::with_capacity(bound.frames.len()),
            bound: ManuallyDrop::new(bound),
            netns,
            umem_base,
            umem_len,
            frame_size,
            has_meta,
            offset,
            info,
            counts: Cell::new(XdpStats::default()),
            last_stats: Cell::new(XdpStats::default()),
            idle: 0,
            gone: false,
            _promisc: promisc,
            program,
        })
    }

    /// How this queue is set up: mode, zero-copy or copy, program, timestamp source.
    pub fn info(&self) -> &XdpInfo {
        &self.info
    }

    /// The shared XDP program, unless libxdp's default program is in use.
    pub fn program(&self) -> Option<&XdpProgram> {
        self.program.as_deref()
    }

    /// Receives up to one batch: waits up to `timeout_ms` (0: do not wait, negative: forever)
    /// when the RX ring is empty, then calls `f(timestamp_ns, frame)` for each frame in place
    /// (no copy) and gives the frames back to the kernel in one fill-ring refill. Returns the
    /// number of frames, 0 on timeout.
    ///
    /// `timestamp_ns` is Unix-epoch nanoseconds: from the frame's metadata when tcpulse's
    /// program wrote it, else CLOCK_REALTIME read once for the batch.
    ///
    /// # Errors
    /// [`LiveError::InterfaceGone`] when the interface was removed; [`LiveError::Io`] when
    /// polling fails.
    pub fn recv_batch(
        &mut self,
        timeout_ms: i32,
        f: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        if self.gone {
            return Err(self.gone_error());
        }
        self.return_spare();
        // SAFETY: `batch` only receives descriptors from this socket's own RX ring.
        let mut n = unsafe { self.bound.rx.consume(&mut self.batch) };
        if n == 0 {
            self.wake_fill();
            let ready = if timeout_ms != 0 {
                sys::poll_in(self.bound.rx.fd().as_raw_fd(), timeout_ms)
                    .map_err(|e| LiveError::io(format!("poll {}", self.info.iface), e))?
            } else {
                sys::Readiness::default()
            };
            if ready.readable {
                // SAFETY: as above.
                n = unsafe { self.bound.rx.consume(&mut self.batch) };
            }
            if n == 0 {
                self.idle = self.idle.wrapping_add(1);
                if ready.error || timeout_ms != 0 || self.idle % IDLE_CHECK_EVERY == 0 {
                    self.check_alive()?;
                }
                return Ok(0);
            }
        }
        self.idle = 0;

        let mut counts = self.counts.get();
        let mut batch_ns: Option<u64> = None;
        for desc in &self.batch[..n] {
            let stamp = if self.has_meta {
                self.read_meta(desc)
            } else {
                None
            };
            let ts = match stamp {
                Some(m) => {
                    let (ts, hw) = meta::choose(m, |k| self.offset.to_unix(k));
                    counts.hw_time_frames += u64::from(hw);
                    ts
                }
                None => {
                    counts.batch_time_frames += 1;
                    *batch_ns.get_or_insert_with(sys::realtime_ns)
                }
            };
            // SAFETY: the descriptor came from this socket's RX ring and the frame is ours
            // until it goes back on the fill ring below; nothing writes it meanwhile.
            let data = unsafe { self.bound.umem.data(desc) };
            f(Frame::ethernet(ts, data.contents()));
            if self.has_meta {
                self.clear_meta(desc);
            }
        }
        counts.frames += n as u64;
        self.counts.set(counts);

        // SAFETY: these frames belong to this UMEM and user space is done with them.
        let put = unsafe { self.bound.fill.produce(&self.batch[..n]) };
        if put < n {
            self.spare.extend_from_slice(&self.batch[put..n]);
        }
        self.wake_fill();
        Ok(n)
    }

    /// Socket statistics (drops the kernel counted for this socket) and this queue's counts.
    /// If the kernel stops answering (socket torn down), the last values read are returned.
    pub fn stats(&self) -> XdpStats {
        let counts = self.counts.get();
        let mut s = self.last_stats.get();
        if let Ok(k) = self.bound.rx.fd().xdp_statistics() {
            s.rx_dropped = k.rx_dropped();
            s.rx_ring_full = k.rx_ring_full();
            s.fill_ring_empty = k.rx_fill_ring_empty_descs();
            s.invalid_descs = k.rx_invalid_descs();
        }
        s.frames = counts.frames;
        s.batch_time_frames = counts.batch_time_frames;
        s.hw_time_frames = counts.hw_time_frames;
        self.last_stats.set(s);
        s
    }

    /// Address of the metadata block in front of the frame `desc` describes, when the whole
    /// block lies inside the frame's headroom and the UMEM.
    fn meta_addr(&self, desc: &FrameDesc) -> Option<usize> {
        let addr = desc.addr();
        let in_frame = addr % self.frame_size;
        if in_frame < META_LEN || addr >= self.umem_len {
            return None;
        }
        Some(self.umem_base + addr - META_LEN)
    }

    fn read_meta(&self, desc: &FrameDesc) -> Option<meta::Meta> {
        let at = self.meta_addr(desc)?;
        let p = std::ptr::with_exposed_provenance::<[u8; META_LEN]>(at);
        // SAFETY: `at..at + META_LEN` lies inside the UMEM mapping, in the headroom of a frame
        // user space owns right now (consumed from the RX ring, not yet refilled). The mapping
        // was handed to libxdp and the kernel (xsk_umem__create), which exposed its provenance;
        // xsk-rs keeps it mapped while `self.bound.umem` lives. Unaligned read of plain bytes.
        let block = unsafe { p.read_unaligned() };
        meta::parse(&block)
    }

    fn clear_meta(&self, desc: &FrameDesc) {
        if let Some(at) = self.meta_addr(desc) {
            let p = std::ptr::with_exposed_provenance_mut::<[u8; 4]>(at + meta::MAGIC_OFFSET);
            // SAFETY: as in `read_meta`; the four bytes are the magic word inside the block,
            // and the frame is still ours (it goes back to the fill ring after this).
            unsafe { p.write_unaligned([0; 4]) };
        }
    }

    /// Puts frames the fill ring could not take earlier back on it.
    fn return_spare(&mut self) {
        if self.spare.is_empty() {
            return;
        }
        // SAFETY: the spare frames belong to this UMEM and are not in use.
        let put = unsafe { self.bound.fill.produce(&self.spare) };
        self.spare.drain(..put);
    }

    /// Kicks the driver when it asked to be woken for fill-ring refills (need_wakeup).
    fn wake_fill(&mut self) {
        let bound = &mut *self.bound;
        if bound.fill.needs_wakeup() {
            let fd = bound.rx.fd_mut();
            // A failed wake-up only delays frames; the next batch tries again.
            let _ = bound.fill.wakeup(fd, 0);
        }
    }

    fn gone_error(&self) -> LiveError {
        LiveError::InterfaceGone {
            iface: self.info.iface.clone(),
        }
    }

    /// Turns a vanished interface or another socket error into an error value. The kernel
    /// marks the socket ENETDOWN when its interface is unregistered (SO_ERROR, which reading
    /// clears: hence the sticky `gone`). Independent of the calling thread's namespace.
    fn check_alive(&mut self) -> Result<(), LiveError> {
        match sys::socket_error(self.bound.rx.fd().as_raw_fd()) {
            Ok(None) => Ok(()),
            Ok(Some(e))
                if matches!(e.raw_os_error(), Some(libc::ENETDOWN) | Some(libc::ENODEV)) =>
            {
                self.gone = true;
                Err(self.gone_error())
            }
            Ok(Some(e)) | Err(e) => Err(LiveError::io(
                format!(
                    "AF_XDP socket on {} queue {}",
                    self.info.iface, self.info.queue
                ),
                e,
            )),
        }
    }
}

/// The AF_XDP socket, for an epoll loop over several queues (readable: frames waiting).
impl AsRawFd for XdpQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.bound.rx.fd().as_raw_fd()
    }
}

impl Drop for XdpQueue {
    fn drop(&mut self) {
        if let Some(p) = &self.program {
            p.unregister(self.info.queue);
        }
        // If entering fails the socket is still deleted; libxdp then may not find its program.
        let back = self.netns.as_ref().and_then(|ns| ns.enter().ok().flatten());
        // SAFETY: `bound` is dropped exactly once, here, and never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.bound) };
        drop(back);
        // Then the program (field), detached if this was its last queue.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = XdpOptions::default();
        assert!(check_options(&ok).is_ok());
        let bad = |o: XdpOptions| match check_options(&o) {
            Err(LiveError::Options { detail }) => detail,
            other => panic!("expected an options error, got {other:?}"),
        };
        assert!(bad(XdpOptions {
            frame_size: 3000,
            ..ok.clone()
        })
        .contains("2048 or 4096"));
        assert!(bad(XdpOptions {
            frame_count: 1000,
            ..ok.clone()
        })
        .contains("power of two"));
        assert!(bad(XdpOptions {
            batch: 0,
            ..ok.clone()
        })
        .contains("batch"));
    }

    #[test]
    fn info_line_says_what_is_in_use() {
        let info = XdpInfo {
            iface: "veth1".into(),
            queue: 0,
            queues: Some(1),
            mode: XdpMode::Native,
            zero_copy: false,
            program: ProgramKind::Tcpulse,
            timestamps: TimestampSource::Kernel,
            fallback_reason: None,
            replaced_program: Some(42),
            epoch_uncertainty_ns: 20,
        };
        assert_eq!(
            info.to_string(),
            "veth1 queue 0: native XDP, copy mode, tcpulse program, kernel timestamps; \
             replaced leftover program id 42"
        );
    }

    fn _queue_is_send(q: XdpQueue) -> impl Send {
        q
    }
}
