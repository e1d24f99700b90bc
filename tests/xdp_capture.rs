//! AF_XDP capture end to end, on a veth pair between two network namespaces each test creates
//! (unique names, removed by an RAII guard even when the test fails). Frames are written from
//! the generator namespace with a raw AF_PACKET socket; nothing is sent anywhere else.
//!
//! Needs root (CI runs as root); as another user every test prints a skip line and passes.
//! Each test prints what it measured (`--nocapture` shows it).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tcpulse::gen::TcpFrame;
use tcpulse_core::decode::flags;
use tcpulse_io::capture::xdp::{
    attached_ids, rx_queue_count, LiveError, ProgramChoice, ProgramKind, TimestampSource, XdpMode,
    XdpOptions, XdpQueue, ZeroCopy, PROGRAM_NAME,
};

macro_rules! require_root {
    () => {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: AF_XDP capture tests need root (network namespaces, XDP)");
            return;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The lab: two namespaces and a veth pair, removed on drop.

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

const GEN_MAC: [u8; 6] = [0x02, 0x00, 198, 51, 100, 1];
const MON_MAC: [u8; 6] = [0x02, 0x00, 198, 51, 100, 2];

struct Lab {
    gen_ns: String,
    mon_ns: String,
    gen_if: String,
    mon_if: String,
}

impl Lab {
    /// Namespaces `tcpulse-PID-N-{gen,mon}` joined by veth `xgPIDnN` / `xmPIDnN`, with
    /// `queues` RX and TX queues on each end, IPv6 off (no autoconfiguration chatter), up.
    fn new(queues: u32) -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Built before anything exists, so a failure below still cleans up.
        let lab = Lab {
            gen_ns: format!("tcpulse-{pid}-{n}-gen"),
            mon_ns: format!("tcpulse-{pid}-{n}-mon"),
            gen_if: format!("xg{pid}n{n}"),
            mon_if: format!("xm{pid}n{n}"),
        };
        let q = queues.to_string();
        ip(&["netns", "add", &lab.gen_ns]);
        ip(&["netns", "add", &lab.mon_ns]);
        ip(&[
            "link",
            "add",
            &lab.gen_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &lab.gen_ns,
            "type",
            "veth",
            "peer",
            "name",
            &lab.mon_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &lab.mon_ns,
        ]);
        for (ns, ifc, mac, host) in [
            (&lab.gen_ns, &lab.gen_if, GEN_MAC, 1),
            (&lab.mon_ns, &lab.mon_if, MON_MAC, 2),
        ] {
            let sysctl = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
                .args([
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ])
                .status()
                .expect("run sysctl");
            assert!(sysctl.success(), "disable IPv6 in {ns}");
            let mac = mac.map(|b| format!("{b:02x}")).join(":");
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", ifc, "address", &mac]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("198.51.100.{host}/24"),
                "dev",
                ifc,
            ]);
            ip(&["-n", ns, "link", "set", ifc, "up"]);
        }
        lab
    }

    fn mon<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.mon_ns, f)
    }

    fn gen<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.gen_ns, f)
    }

    /// `ip link show` of the monitored end mentions an XDP program.
    fn xdp_attached(&self) -> bool {
        ip(&["-n", &self.mon_ns, "link", "show", "dev", &self.mon_if]).contains("xdp")
    }

    fn promiscuity(&self) -> u32 {
        let out = ip(&[
            "-n",
            &self.mon_ns,
            "-d",
            "link",
            "show",
            "dev",
            &self.mon_if,
        ]);
        out.split_whitespace()
            .skip_while(|w| *w != "promiscuity")
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX)
    }

    fn open(&self, queue: u32, opts: &XdpOptions) -> Result<XdpQueue, LiveError> {
        let iface = self.mon_if.clone();
        self.mon(move || XdpQueue::open(&iface, queue, opts))
    }

    fn sender(&self) -> Sender {
        let iface = self.gen_if.clone();
        self.gen(move || Sender::open(&iface))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.gen_ns, &self.mon_ns] {
            let _ = Command::new("ip")
                .args(["netns", "delete", ns])
                .stderr(Stdio::null())
                .status();
        }
        // In case creation stopped with an end in this namespace.
        for ifc in [&self.gen_if, &self.mon_if] {
            let _ = Command::new("ip")
                .args(["link", "delete", ifc])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`; sockets created there stay
/// in it wherever they are used later.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path).expect("open netns");
            // SAFETY: setns on a namespace descriptor; it only affects this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------------------------
// Sending and tapping with AF_PACKET.

/// A raw AF_PACKET socket that writes whole Ethernet frames on one interface.
struct Sender {
    fd: OwnedFd,
    ifindex: i32,
}

impl Sender {
    fn open(iface: &str) -> Sender {
        // Protocol 0: this socket receives nothing.
        // SAFETY: plain socket(2), checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        assert!(ifindex > 0, "no {iface}");
        // SAFETY: fresh descriptor.
        Sender {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex,
        }
    }

    /// Sends one frame; returns CLOCK_REALTIME just before the send.
    fn send(&self, frame: &[u8]) -> u64 {
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        let t = realtime_ns();
        // SAFETY: buffer and address are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            frame.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
        t
    }
}

const SO_TIMESTAMPNS: libc::c_int = 35;

/// An AF_PACKET socket on the generator end that sees the frames going out, with the kernel's
/// software timestamp of each: an independent reference for the XDP timestamps.
struct Tap {
    fd: OwnedFd,
}

impl Tap {
    fn open(iface: &str) -> Tap {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2), checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                i32::from(proto),
            )
        };
        assert!(fd >= 0, "tap socket: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: sockaddr_ll is plain data; the name is NUL-terminated.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        // SAFETY: valid address for bind.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind tap");
        let one: libc::c_int = 1;
        // SAFETY: one int option.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_TIMESTAMPNS,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(rc, 0, "SO_TIMESTAMPNS");
        Tap { fd }
    }

    /// Outgoing frames seen so far, with their kernel timestamps (SCM_TIMESTAMPNS).
    fn drain(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        let mut control = [0u64; 16];
        loop {
            // SAFETY: sockaddr_ll and msghdr are plain data.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = mem::size_of_val(&control);
            // SAFETY: every buffer msg points at is alive and sized as declared.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
            if n < 0 {
                break;
            }
            let mut t = None;
            // SAFETY: walking the control messages the kernel wrote into `control`.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                        let ts: libc::timespec =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        t = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                if let Some(t) = t {
                    out.push((t, buf[..n as usize].to_vec()));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Frames.

const GEN_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const MON_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const GEN_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
const MON_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2);

/// A TCP segment from the generator to the monitor; `seq` makes each frame unique.
fn tcp(seq: u32, sport: u16, v6: bool, vlan: Option<u16>, payload_len: u32) -> Vec<u8> {
    let (src, dst) = if v6 {
        (IpAddr::V6(GEN_V6), IpAddr::V6(MON_V6))
    } else {
        (IpAddr::V4(GEN_V4), IpAddr::V4(MON_V4))
    };
    let seg = TcpFrame {
        src,
        dst,
        sport,
        dport: 80,
        seq,
        ack: 1,
        flags: flags::ACK | flags::PSH,
        window: 512,
        payload_len,
        mss: None,
        wscale: None,
        sack_permitted: false,
        timestamps: None,
        vlan,
        wrap: None,
    };
    let mut buf = Vec::new();
    seg.write_ethernet(&mut buf);
    buf[..6].copy_from_slice(&MON_MAC);
    buf[6..12].copy_from_slice(&GEN_MAC);
    buf
}

/// The single-tagged frame turned QinQ: an 802.1ad outer tag in front of the 802.1Q one.
fn qinq(mut tagged: Vec<u8>) -> Vec<u8> {
    assert_eq!(tagged[12..14], [0x81, 0x00]);
    tagged.splice(12..12, [0x88, 0xa8, 0x00, 0x07]);
    tagged
}

/// An IPv6 frame with a hop-by-hop options header inserted in front of its upper layer.
fn with_hop_by_hop(mut v6: Vec<u8>) -> Vec<u8> {
    let ip = 14;
    let next = v6[ip + 6];
    v6[ip + 6] = 0; // hop-by-hop
    let plen = u16::from_be_bytes([v6[ip + 4], v6[ip + 5]]) + 8;
    v6[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
    // Next header, length 0 (8 bytes), PadN option of 4 bytes.
    v6.splice(ip + 40..ip + 40, [next, 0, 1, 4, 0, 0, 0, 0]);
    v6
}

fn eth(ethertype: u16, dst: [u8; 6]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&GEN_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4_header(proto: u8, payload: usize) -> Vec<u8> {
    let total = (20 + payload) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&GEN_V4.octets());
    h.extend_from_slice(&MON_V4.octets());
    let mut sum = 0u32;
    for w in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    h
}

fn udp4(tag: u8) -> Vec<u8> {
    let mut f = eth(0x0800, MON_MAC);
    f.extend(ipv4_header(17, 8 + 16));
    f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35, 0, 24, 0, 0]);
    f.extend_from_slice(&[tag; 16]);
    f
}

fn udp6(tag: u8) -> Vec<u8> {
    let mut f = eth(0x86dd, MON_MAC);
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, 17, 64]);
    f.extend_from_slice(&GEN_V6.octets());
    f.extend_from_slice(&MON_V6.octets());
    f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35, 0, 24, 0, 0]);
    f.extend_from_slice(&[tag; 16]);
    f
}

fn icmp4() -> Vec<u8> {
    let mut f = eth(0x0800, MON_MAC);
    f.extend(ipv4_header(1, 8));
    f.extend_from_slice(&[8, 0, 0xf7, 0xfe, 0, 1, 0, 0]);
    f
}

fn arp_request() -> Vec<u8> {
    let mut f = eth(0x0806, [0xff; 6]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&GEN_MAC);
    f.extend_from_slice(&GEN_V4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&MON_V4.octets());
    f
}

/// IPv4 ethertype, but too short to hold an IPv4 header.
fn runt_ipv4() -> Vec<u8> {
    let mut f = eth(0x0800, MON_MAC);
    f.extend_from_slice(&[0x45, 0, 0, 20, 0, 0]);
    f
}

fn vlan_udp4() -> Vec<u8> {
    let mut f = udp4(9);
    f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    f
}

/// The mixed set of the main test: TCP in every encapsulation the program knows, and the
/// non-TCP frames it must leave to the kernel.
fn mixed_frames() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut tcp_frames = Vec::new();
    let mut seq = 1000;
    let mut next = || {
        seq += 1;
        seq
    };
    for len in [0, 1, 100, 1400] {
        tcp_frames.push(tcp(next(), 40000, false, None, len));
    }
    tcp_frames.push(tcp(next(), 40001, false, Some(5), 64));
    tcp_frames.push(qinq(tcp(next(), 40002, false, Some(6), 64)));
    tcp_frames.push(tcp(next(), 40003, true, None, 200));
    tcp_frames.push(tcp(next(), 40004, true, Some(7), 0));
    tcp_frames.push(with_hop_by_hop(tcp(next(), 40005, true, None, 10)));
    for i in 0..100 {
        tcp_frames.push(tcp(next(), 41000 + (i % 8) as u16, i % 3 == 0, None, i * 7));
    }
    let other = vec![
        arp_request(),
        udp4(1),
        udp4(2),
        udp6(3),
        with_hop_by_hop(udp6(4)),
        icmp4(),
        vlan_udp4(),
        runt_ipv4(),
    ];
    (tcp_frames, other)
}

/// Receives until `want` frames arrived or `deadline` passed, then `settle` longer to catch
/// any frame that should not be there.
fn collect(
    q: &mut XdpQueue,
    want: usize,
    deadline: Duration,
    settle: Duration,
) -> Vec<(u64, Vec<u8>)> {
    let mut got = Vec::new();
    let start = Instant::now();
    let mut settle_from = None;
    loop {
        q.recv_batch(10, &mut |frame| {
            got.push((frame.ts_ns, frame.data.to_vec()))
        })
        .expect("recv_batch");
        if got.len() >= want && settle_from.is_none() {
            settle_from = Some(Instant::now());
        }
        match settle_from {
            Some(t) if t.elapsed() >= settle => break,
            None if start.elapsed() >= deadline => break,
            _ => {}
        }
    }
    got
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut d: Vec<i64>) -> (i64, i64, i64, i64) {
    d.sort_unstable();
    let s = (
        d[0],
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        d[d.len() - 1],
    );
    println!(
        "{name}: n={} min={} ns p50={} ns p99={} ns max={} ns",
        d.len(),
        s.0,
        s.1,
        s.2,
        s.3
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn tcp_is_captured_exactly_and_everything_else_stays_with_the_kernel() {
    require_root!();
    let lab = Lab::new(1);
    assert_eq!(
        lab.mon(|| rx_queue_count(&lab.mon_if)),
        Some(1),
        "veth queue count"
    );
    let mut q = lab.open(0, &XdpOptions::default()).expect("open");
    let info = q.info().clone();
    println!("{info}");
    assert_eq!(info.mode, XdpMode::Native);
    assert_eq!(info.program, ProgramKind::Tcpulse);
    assert_eq!(info.timestamps, TimestampSource::Kernel);
    assert!(
        !info.zero_copy,
        "veth has no zero-copy AF_XDP: copy mode expected"
    );
    assert!(lab.xdp_attached());

    let tx = lab.sender();
    let tap = lab.gen(|| Tap::open(&lab.gen_if));
    let (tcp_frames, other) = mixed_frames();
    let mut sent_at = Vec::new();
    // Interleave: a non-TCP frame every 13 TCP frames.
    let mut others = other.iter();
    for (i, f) in tcp_frames.iter().enumerate() {
        sent_at.push(tx.send(f));
        if i % 13 == 0 {
            if let Some(o) = others.next() {
                tx.send(o);
            }
        }
    }
    for o in others {
        tx.send(o);
    }

    let got = collect(
        &mut q,
        tcp_frames.len(),
        Duration::from_secs(5),
        Duration::from_millis(300),
    );
    let frames: Vec<&Vec<u8>> = got.iter().map(|(_, f)| f).collect();
    let expected: Vec<&Vec<u8>> = tcp_frames.iter().collect();
    assert_eq!(frames.len(), expected.len(), "frame count");
    assert_eq!(
        frames, expected,
        "captured frames differ from the TCP frames sent"
    );
    let sent_bytes: usize = tcp_frames.iter().map(Vec::len).sum();
    let got_bytes: usize = got.iter().map(|(_, f)| f.len()).sum();
    assert_eq!(got_bytes, sent_bytes);

    // Timestamps: never backwards, shortly after the send.
    let ts: Vec<u64> = got.iter().map(|(t, _)| *t).collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "timestamps go backwards"
    );
    let lag: Vec<i64> = ts
        .iter()
        .zip(&sent_at)
        .map(|(&t, &s)| t as i64 - s as i64)
        .collect();
    println!("epoch offset uncertainty: {} ns", info.epoch_uncertainty_ns);
    let (min, _, _, max) = summary("xdp timestamp - user send time", lag);
    let slack = info.epoch_uncertainty_ns as i64 + 50_000;
    assert!(min > -slack, "timestamp {min} ns before the send");
    assert!(max < 10_000_000, "timestamp {max} ns after the send");

    // Against the kernel's own timestamp of the same frames leaving the generator end.
    let tapped = tap.drain();
    let lag_tap: Vec<i64> = got
        .iter()
        .filter_map(|(t, f)| {
            tapped
                .iter()
                .find(|(_, g)| g == f)
                .map(|(tt, _)| *t as i64 - *tt as i64)
        })
        .collect();
    assert_eq!(lag_tap.len(), got.len(), "tap saw every frame");
    summary("xdp timestamp - AF_PACKET tx timestamp", lag_tap);

    let stats = q.stats();
    println!("{stats:?}");
    assert_eq!(stats.frames, tcp_frames.len() as u64);
    assert_eq!(stats.batch_time_frames, 0, "every frame carried metadata");
    assert_eq!(
        stats.rx_dropped + stats.rx_ring_full + stats.invalid_descs,
        0
    );
    let counters = q
        .program()
        .expect("our program")
        .counters()
        .expect("counters");
    println!("{counters:?}");
    assert_eq!(counters.tcp_redirected, tcp_frames.len() as u64);
    assert!(counters.non_tcp_passed >= other.len() as u64);
    assert_eq!(counters.other_redirected, 0);
    assert_eq!(counters.no_meta, 0);

    drop(q);
    assert!(!lab.xdp_attached(), "XDP program left attached after drop");
    assert!(lab.mon(|| attached_ids(&lab.mon_if)).unwrap().is_empty());
}

#[test]
fn two_queues_share_the_traffic_and_the_program() {
    require_root!();
    let lab = Lab::new(2);
    let opts = XdpOptions::default();
    let mut q0 = lab.open(0, &opts).expect("open queue 0");
    let mut q1 = lab.open(1, &opts).expect("open queue 1");
    assert_eq!(q0.info().queues, Some(2));
    let (p0, p1) = (q0.program().unwrap().id(), q1.program().unwrap().id());
    assert_eq!(p0, p1, "queues of one interface share one program");

    let tx = lab.sender();
    let mut sent = Vec::new();
    for flow in 0..64u16 {
        for k in 0..4u32 {
            let f = tcp(
                u32::from(flow) * 10 + k,
                42000 + flow,
                flow % 2 == 1,
                None,
                40,
            );
            tx.send(&f);
            sent.push(f);
        }
    }

    let mut got: Vec<(u32, u64, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < sent.len() && Instant::now() < deadline {
        for (qid, q) in [(0u32, &mut q0), (1, &mut q1)] {
            q.recv_batch(5, &mut |f| got.push((qid, f.ts_ns, f.data.to_vec())))
                .expect("recv");
        }
    }
    for (qid, q) in [(0u32, &mut q0), (1, &mut q1)] {
        // Anything extra would show here.
        q.recv_batch(100, &mut |f| got.push((qid, f.ts_ns, f.data.to_vec())))
            .expect("recv");
    }
    let on = |qid| got.iter().filter(|g| g.0 == qid).count();
    println!("queue 0: {} frames, queue 1: {} frames", on(0), on(1));
    assert_eq!(got.len(), sent.len(), "everything sent arrives, once");
    let mut a: Vec<&Vec<u8>> = got.iter().map(|g| &g.2).collect();
    let mut b: Vec<&Vec<u8>> = sent.iter().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert!(on(0) > 0 && on(1) > 0, "64 flows all hashed to one queue");
    for qid in [0, 1] {
        let ts: Vec<u64> = got.iter().filter(|g| g.0 == qid).map(|g| g.1).collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "queue {qid} timestamps go backwards"
        );
    }
    // Every segment of a flow on the same queue (the sender hashes flows to queues).
    for flow in 0..64u16 {
        let port = (42000 + flow).to_be_bytes();
        let queues: Vec<u32> = got
            .iter()
            .filter(|g| {
                let l4 = if g.2[12..14] == [0x86, 0xdd] {
                    14 + 40
                } else {
                    14 + 20
                };
                g.2[l4..l4 + 2] == port
            })
            .map(|g| g.0)
            .collect();
        assert!(queues.windows(2).all(|w| w[0] == w[1]), "flow {flow} split");
    }

    drop(q0);
    assert!(lab.xdp_attached(), "queue 1 still needs the program");
    drop(q1);
    assert!(
        !lab.xdp_attached(),
        "XDP program left attached after the last queue"
    );
}

#[test]
fn errors_name_the_interface_the_queue_count_and_the_capability() {
    require_root!();
    let lab = Lab::new(2);
    let opts = XdpOptions::default();

    let missing = format!("{}x", lab.mon_if);
    let err = lab
        .mon(|| XdpQueue::open(&missing, 0, &opts))
        .expect_err("missing interface");
    assert!(matches!(err, LiveError::InterfaceMissing { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");

    let err = lab.open(5, &opts).expect_err("queue out of range");
    match &err {
        LiveError::QueueOutOfRange { queue, queues, .. } => assert_eq!((*queue, *queues), (5, 2)),
        other => panic!("expected QueueOutOfRange, got {other:?}"),
    }
    assert!(err.to_string().contains("has 2 RX queues"), "{err}");

    // A thread without CAP_BPF (and CAP_SYS_ADMIN, which would stand in for it).
    let err = lab
        .mon(|| {
            drop_effective_caps(&[21, 39]);
            XdpQueue::open(&lab.mon_if, 0, &opts)
        })
        .expect_err("no CAP_BPF");
    match &err {
        LiveError::Privilege { missing } => assert_eq!(missing, &vec!["CAP_BPF"]),
        other => panic!("expected Privilege, got {other:?}"),
    }
    assert!(err.to_string().contains("CAP_BPF"), "{err}");

    let err = lab
        .open(
            0,
            &XdpOptions {
                frame_count: 1000,
                ..XdpOptions::default()
            },
        )
        .expect_err("bad options");
    assert!(matches!(err, LiveError::Options { .. }), "{err:?}");

    let err = lab
        .open(
            0,
            &XdpOptions {
                zero_copy: ZeroCopy::ZeroCopy,
                ..XdpOptions::default()
            },
        )
        .expect_err("veth has no zero-copy");
    println!("{err}");
    assert!(
        matches!(err, LiveError::ZeroCopyUnavailable { .. }),
        "{err:?}"
    );
    assert!(!lab.xdp_attached(), "failed opens leave no program");

    let q = lab.open(1, &opts).expect("open queue 1");
    let err = lab.open(1, &opts).expect_err("queue 1 twice");
    println!("{err}");
    assert!(
        matches!(&err, LiveError::Socket { detail, .. } if detail.contains("already has an AF_XDP socket")),
        "{err:?}"
    );
    drop(q);
    assert!(!lab.xdp_attached());
}

/// Clears capabilities from the calling thread's effective set (capset affects one thread).
fn drop_effective_caps(caps: &[u32]) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a v3 header fills two Data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget");
    for &c in caps {
        data[(c / 32) as usize].effective &= !(1 << (c % 32));
    }
    // SAFETY: capset with the same header and data shape.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn a_leftover_program_of_ours_is_replaced() {
    require_root!();
    let lab = Lab::new(1);
    // What a run that attached the old way (netlink) and died leaves behind: our program,
    // attached by iproute2 from the same object file.
    let obj = std::env::temp_dir().join(format!("tcpulse-xdp-test-{}.o", std::process::id()));
    std::fs::write(&obj, tcpulse_io::capture::xdp::object_file()).unwrap();
    let attached = Command::new("ip")
        .args([
            "-n",
            &lab.mon_ns,
            "link",
            "set",
            "dev",
            &lab.mon_if,
            "xdpdrv",
            "obj",
        ])
        .arg(&obj)
        .args(["sec", "xdp"])
        .output()
        .expect("ip");
    let _ = std::fs::remove_file(&obj);
    assert!(
        attached.status.success(),
        "iproute2 could not attach the object: {}",
        String::from_utf8_lossy(&attached.stderr)
    );
    let old = lab.mon(|| attached_ids(&lab.mon_if)).unwrap();
    assert_eq!(old.len(), 1);

    let mut q = lab
        .open(0, &XdpOptions::default())
        .expect("open over a leftover");
    println!("{}", q.info());
    assert_eq!(q.info().replaced_program, Some(old[0]));
    let now = lab.mon(|| attached_ids(&lab.mon_if)).unwrap();
    assert_eq!(now, vec![q.program().unwrap().id()]);

    let tx = lab.sender();
    for i in 0..3 {
        tx.send(&tcp(i, 43000, false, None, 10));
    }
    let got = collect(&mut q, 3, Duration::from_secs(3), Duration::from_millis(50));
    assert_eq!(got.len(), 3);
    drop(q);
    assert!(!lab.xdp_attached());
}

/// Not a test on its own: the process `a_killed_run_leaves_nothing_attached` starts and kills.
/// Without `TCPULSE_XDP_TEST_CHILD` it does nothing.
#[test]
fn child_holding_a_capture() {
    let Ok(iface) = std::env::var("TCPULSE_XDP_TEST_CHILD") else {
        return;
    };
    let q = XdpQueue::open(&iface, 0, &XdpOptions::default()).expect("child open");
    println!("READY {}", q.program().map(|p| p.id()).unwrap_or(0));
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_run_leaves_nothing_attached() {
    require_root!();
    let lab = Lab::new(1);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.mon_ns])
        .arg(&exe)
        .args([
            "child_holding_a_capture",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TCPULSE_XDP_TEST_CHILD", &lab.mon_if)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    // Killed however this test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Kill(child);
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest may print "test name ... " in front on the same line.
        if let Some(at) = line.find("READY ") {
            ready = Some(line[at + 6..].trim().parse::<u32>().unwrap());
            break;
        }
    }
    let child_prog = ready.expect("child never got ready");
    assert_eq!(
        lab.mon(|| attached_ids(&lab.mon_if)).unwrap(),
        vec![child_prog]
    );

    // A second tcpulse on the same interface is refused while the first lives.
    let err = lab
        .open(0, &XdpOptions::default())
        .expect_err("interface busy");
    assert!(
        matches!(&err, LiveError::XdpBusy { holder, .. } if holder.contains("tcpulse")),
        "{err:?}"
    );

    // SIGKILL: no Drop runs in the child.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while lab.xdp_attached() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !lab.xdp_attached(),
        "the killed run's program stayed attached"
    );

    let q = lab
        .open(0, &XdpOptions::default())
        .expect("open after the kill");
    assert_eq!(q.info().replaced_program, None);
    drop(q);
    assert!(!lab.xdp_attached());
}

#[test]
fn interface_removed_while_capturing_is_an_error_value() {
    require_root!();
    let lab = Lab::new(1);
    let mut q = lab.open(0, &XdpOptions::default()).expect("open");
    assert_eq!(q.recv_batch(10, &mut |_| {}).expect("idle"), 0);
    ip(&["-n", &lab.mon_ns, "link", "delete", &lab.mon_if]);
    let deadline = Instant::now() + Duration::from_secs(3);
    let err = loop {
        match q.recv_batch(20, &mut |_| {}) {
            Err(e) => break e,
            Ok(_) if Instant::now() > deadline => panic!("no error after the interface went"),
            Ok(_) => {}
        }
    };
    assert!(matches!(err, LiveError::InterfaceGone { .. }), "{err:?}");
    assert!(err.to_string().contains(&lab.mon_if));
    // Sticky, and dropping is clean.
    assert!(q.recv_batch(0, &mut |_| {}).is_err());
    drop(q);
}

#[test]
fn skb_mode_capture_all_and_promiscuous() {
    require_root!();
    let lab = Lab::new(1);
    let opts = XdpOptions {
        mode: XdpMode::Skb,
        capture_all: true,
        promiscuous: true,
        ..XdpOptions::default()
    };
    let before = lab.promiscuity();
    let mut q = lab.open(0, &opts).expect("open skb");
    println!("{}", q.info());
    assert_eq!(q.info().mode, XdpMode::Skb);
    assert_eq!(lab.promiscuity(), before + 1);
    let link = ip(&["-n", &lab.mon_ns, "link", "show", "dev", &lab.mon_if]);
    assert!(link.contains("xdpgeneric"), "{link}");

    let tx = lab.sender();
    let frames = vec![
        tcp(1, 44000, false, None, 5),
        udp4(7),
        arp_request(),
        udp6(8),
    ];
    for f in &frames {
        tx.send(f);
    }
    let got = collect(
        &mut q,
        frames.len(),
        Duration::from_secs(3),
        Duration::from_millis(200),
    );
    let got: Vec<Vec<u8>> = got.into_iter().map(|(_, f)| f).collect();
    assert_eq!(got, frames, "capture_all takes every frame");
    drop(q);
    assert_eq!(lab.promiscuity(), before);
    assert!(!lab.xdp_attached());
}

#[test]
fn libxdp_default_program_fallback_uses_batch_time() {
    require_root!();
    let lab = Lab::new(1);
    let opts = XdpOptions {
        program: ProgramChoice::LibxdpDefault,
        ..XdpOptions::default()
    };
    let mut q = lab.open(0, &opts).expect("open with libxdp's program");
    println!("{}", q.info());
    assert_eq!(q.info().program, ProgramKind::LibxdpDefault);
    assert_eq!(q.info().timestamps, TimestampSource::UserBatch);
    assert!(q.program().is_none());
    assert!(lab.xdp_attached());

    let tx = lab.sender();
    let frames = vec![tcp(1, 45000, false, None, 5), udp4(3)];
    let t0 = realtime_ns();
    for f in &frames {
        tx.send(f);
    }
    let got = collect(
        &mut q,
        frames.len(),
        Duration::from_secs(3),
        Duration::from_millis(100),
    );
    let t1 = realtime_ns();
    assert_eq!(got.len(), 2, "libxdp's program takes all traffic");
    assert!(got.iter().all(|(t, _)| (t0..=t1).contains(t)));
    assert_eq!(q.stats().batch_time_frames, 2);
    // Another program on the interface is not ours to replace.
    let err = lab.open(0, &XdpOptions::default()).expect_err("busy");
    println!("{err}");
    assert!(
        matches!(&err, LiveError::XdpBusy { holder, .. } if holder.contains("xsk_def_prog")),
        "{err:?}"
    );
    drop(q);
    assert!(!lab.xdp_attached(), "libxdp's program left attached");
}

#[test]
fn hardware_timestamps_requested_on_veth() {
    require_root!();
    let lab = Lab::new(1);
    let opts = XdpOptions {
        hw_timestamps: true,
        ..XdpOptions::default()
    };
    let mut q = lab.open(0, &opts).expect("open");
    println!(
        "{} (device-bound: {})",
        q.info(),
        q.program().unwrap().device_bound()
    );
    let tx = lab.sender();
    for i in 0..5 {
        tx.send(&tcp(i, 46000, false, None, 1));
    }
    let got = collect(&mut q, 5, Duration::from_secs(3), Duration::from_millis(50));
    assert_eq!(got.len(), 5);
    let s = q.stats();
    println!("{s:?}");
    // veth has no hardware clock: every frame falls back to the kernel stamp, none to batch time.
    assert_eq!(s.batch_time_frames, 0);
    drop(q);
    assert!(!lab.xdp_attached());
}

#[test]
fn program_name_fits_the_kernel_limit() {
    assert!(PROGRAM_NAME.len() < 16);
}

/// Receive rate on the veth lab: trafgen floods TCP frames from the generator namespace while
/// this thread counts what `recv_batch` delivers. A measurement, not a check; run it with
/// `cargo test --release --test xdp_capture -- --ignored --nocapture receive_rate`
/// (`TCPULSE_RATE_FRAMES` sets how many frames trafgen sends, default 2,000,000). One trafgen
/// process: with two, its TX ring flush on the single-queue veth fails with EAGAIN.
#[test]
#[ignore]
fn receive_rate() {
    require_root!();
    let frames: u64 = std::env::var("TCPULSE_RATE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let lab = Lab::new(1);
    let mut q = lab.open(0, &XdpOptions::default()).expect("open");
    println!("{}", q.info());

    // Eight flows of 64-byte TCP frames (60 bytes + FCS on a wire), as trafgen byte lists.
    let cfg = std::env::temp_dir().join(format!("tcpulse-rate-{}.cfg", std::process::id()));
    let mut text = String::new();
    for flow in 0..8u16 {
        let f = tcp(u32::from(flow), 47000 + flow, false, None, 6);
        let bytes: Vec<String> = f.iter().map(|b| format!("0x{b:02x}")).collect();
        text.push_str(&format!("{{ {} }}\n", bytes.join(", ")));
    }
    std::fs::write(&cfg, text).unwrap();
    let n = frames.to_string();
    let mut gen = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.gen_ns,
            "trafgen",
            "-o",
            &lab.gen_if,
            "-i",
        ])
        .arg(&cfg)
        // One process, no socket-memory or IRQ-affinity tuning of the host, no CPU stats.
        .args([
            "-n",
            &n,
            "-P",
            "1",
            "--no-sock-mem",
            "--notouch-irq",
            "--no-cpu-stats",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("trafgen");

    let cpu0 = thread_cpu_ns();
    let mut got = 0u64;
    let mut bytes = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    let mut idle_since = None;
    loop {
        let n = q
            .recv_batch(10, &mut |f| bytes += f.data.len() as u64)
            .expect("recv");
        if n > 0 {
            got += n as u64;
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            idle_since = None;
        } else if first.is_some() {
            let t = *idle_since.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_millis(500) {
                break;
            }
        } else if gen.try_wait().unwrap().is_some() {
            break;
        }
    }
    let cpu = thread_cpu_ns() - cpu0;
    let status = gen.wait().unwrap();
    let _ = std::fs::remove_file(&cfg);
    assert!(status.success(), "trafgen failed");
    let secs = first
        .map(|f| last.duration_since(f).as_secs_f64())
        .unwrap_or(0.0);
    let s = q.stats();
    let c = q.program().unwrap().counters().unwrap();
    println!(
        "sent {frames} frames; received {got} ({:.2} %) in {secs:.3} s = {:.0} frames/s, {:.1} Mbit/s",
        got as f64 * 100.0 / frames as f64,
        got as f64 / secs.max(1e-9),
        bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
    );
    println!(
        "receive thread: {:.3} s CPU, {:.0} ns per frame (includes idle polling)",
        cpu as f64 / 1e9,
        cpu as f64 / got.max(1) as f64
    );
    println!("{s:?}");
    println!("{c:?}");
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Timestamp precision on the veth lab, on a larger sample than the main test: the XDP
/// timestamp of each frame against the user-space time just before its send and against the
/// kernel's software timestamp of the same frame leaving the generator end (an AF_PACKET tap).
/// Run with `cargo test --release --test xdp_capture -- --ignored --nocapture timestamp_precision`.
#[test]
#[ignore]
fn timestamp_precision() {
    require_root!();
    let lab = Lab::new(1);
    let mut q = lab.open(0, &XdpOptions::default()).expect("open");
    println!(
        "{}; epoch offset uncertainty {} ns",
        q.info(),
        q.info().epoch_uncertainty_ns
    );
    let tx = lab.sender();
    let tap = lab.gen(|| Tap::open(&lab.gen_if));
    let mut sent = std::collections::HashMap::new();
    let mut tapped = std::collections::HashMap::new();
    let mut got = Vec::new();
    for burst in 0..200u32 {
        for i in 0..100u32 {
            let f = tcp(burst * 100 + i, 48000 + (i % 16) as u16, false, None, 20);
            sent.insert(f.clone(), tx.send(&f));
        }
        got.extend(collect(&mut q, 100, Duration::from_secs(2), Duration::ZERO));
        tapped.extend(tap.drain().into_iter().map(|(t, f)| (f, t)));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(got.len(), sent.len());
    let user: Vec<i64> = got
        .iter()
        .map(|(t, f)| *t as i64 - sent[f] as i64)
        .collect();
    let kernel: Vec<i64> = got
        .iter()
        .filter_map(|(t, f)| tapped.get(f).map(|k| *t as i64 - *k as i64))
        .collect();
    summary("xdp timestamp - user send time", user);
    summary("xdp timestamp - AF_PACKET tx timestamp", kernel);
}
