//! AF_XDP transmit on one queue of an interface (copy mode: veth and most drivers without
//! zero-copy), no XDP program needed. The sender chooses the TX queue, so with several queues
//! (one sender per queue) the monitor sees traffic on chosen RX queues of a veth peer.

use std::io::{self, Write};
use std::num::NonZeroU32;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FrameDesc, TxQueue, Umem};

use super::{Transmit, TxError, TxStats};

const FRAME: u32 = 2048;
/// The kernel sends at most this many frames per wake-up in copy mode.
const KERNEL_TX_BATCH: usize = 32;

pub struct XskTx {
    umem: Umem,
    tx: TxQueue,
    comp: CompQueue,
    /// Frames free to fill.
    free: Vec<FrameDesc>,
    /// The batch being produced.
    scratch: Vec<FrameDesc>,
    /// Room for completions (one per frame).
    done: Vec<FrameDesc>,
    ring: u32,
    stats: TxStats,
    iface: String,
    queue: u32,
}

// SAFETY: the UMEM and rings are used by one thread at a time, through `&mut self`.
unsafe impl Send for XskTx {}

fn setup(iface: &str, what: &str, e: impl std::fmt::Display) -> TxError {
    TxError::Io {
        context: format!("AF_XDP {what} on {iface}"),
        source: io::Error::other(e.to_string()),
    }
}

impl XskTx {
    /// Binds a TX-only AF_XDP socket to `queue` of `iface` with `frames` UMEM frames (a power
    /// of two).
    ///
    /// # Errors
    /// [`TxError::InterfaceMissing`], or what the kernel refused (no CAP_NET_RAW/CAP_BPF,
    /// queue out of range, queue busy).
    pub fn open(iface: &str, queue: u32, frames: u32) -> Result<XskTx, TxError> {
        super::if_index(iface)?;
        let size = |n: u32| QueueSize::new(n).map_err(|e| setup(iface, "ring size", e));
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME).map_err(|e| setup(iface, "frame size", e))?)
            .fill_queue_size(size(64)?)
            .comp_queue_size(size(frames)?)
            .frame_headroom(0)
            .build()
            .map_err(|e| setup(iface, "UMEM config", e))?;
        let count = NonZeroU32::new(frames).ok_or_else(|| setup(iface, "UMEM", "0 frames"))?;
        let (umem, descs) =
            Umem::new(umem_cfg, count, false).map_err(|e| setup(iface, "UMEM", e))?;
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(size(64)?)
            .tx_queue_size(size(frames)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let name: Interface = iface.parse().map_err(|_| TxError::InterfaceMissing {
            iface: iface.to_string(),
        })?;
        // SAFETY: the UMEM is new and not shared with another socket.
        let (tx, _rx, rings) = unsafe { xsk_rs::Socket::new(sock_cfg, &umem, &name, queue) }
            .map_err(|e| {
                let why = std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                setup(
                    iface,
                    &format!("socket on queue {queue}"),
                    format!("{e} {why}"),
                )
            })?;
        let Some((_fill, comp)) = rings else {
            return Err(setup(iface, "socket", "no completion ring"));
        };
        Ok(XskTx {
            umem,
            tx,
            comp,
            scratch: Vec::with_capacity(descs.len()),
            done: vec![FrameDesc::default(); descs.len()],
            free: descs,
            ring: frames,
            stats: TxStats::default(),
            iface: iface.to_string(),
            queue,
        })
    }

    /// Takes back the frames the kernel has finished sending.
    fn reclaim(&mut self) {
        // SAFETY: completed descriptors are this UMEM's frames, done with by the kernel.
        let n = unsafe { self.comp.consume(&mut self.done) };
        self.free.extend_from_slice(&self.done[..n]);
    }
}

impl Transmit for XskTx {
    fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, TxError> {
        if self.free.len() < frames.len() {
            self.reclaim();
        }
        if self.free.is_empty() {
            // Everything is in flight: nudge the kernel, take what it finished.
            let kick = self.tx.wakeup();
            self.stats.syscalls += 1;
            kick.map_err(|e| self.io_error(e))?;
            self.reclaim();
        }
        let n = frames.len().min(self.free.len());
        self.scratch.clear();
        for (frame, mut desc) in frames[..n]
            .iter()
            .zip(self.free.drain(self.free.len() - n..))
        {
            let len = frame.len().min(FRAME as usize);
            if len < frame.len() {
                self.stats.truncated += 1;
            }
            // SAFETY: the frame is free (not on any ring), so nothing else reads or writes it.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            let _ = cursor.write_all(&frame[..len]);
            self.scratch.push(desc);
        }
        // SAFETY: every descriptor is a frame of this UMEM that user space no longer touches.
        let put = unsafe { self.tx.produce(&self.scratch) };
        self.free.extend_from_slice(&self.scratch[put..]);
        // Copy mode sends at most KERNEL_TX_BATCH frames per wake-up.
        for _ in 0..put.div_ceil(KERNEL_TX_BATCH) {
            let kick = self.tx.wakeup();
            self.stats.syscalls += 1;
            kick.map_err(|e| self.io_error(e))?;
        }
        self.stats.frames += put as u64;
        Ok(put)
    }

    fn stats(&self) -> TxStats {
        self.stats
    }

    fn describe(&self) -> String {
        format!(
            "{} queue {}: AF_XDP TX, copy mode ({} frames)",
            self.iface, self.queue, self.ring
        )
    }
}

impl XskTx {
    fn io_error(&self, e: io::Error) -> TxError {
        match e.raw_os_error() {
            Some(libc::ENXIO | libc::ENODEV) => TxError::InterfaceGone {
                iface: self.iface.clone(),
            },
            _ => TxError::Io {
                context: format!("AF_XDP send on {} queue {}", self.iface, self.queue),
                source: e,
            },
        }
    }
}
