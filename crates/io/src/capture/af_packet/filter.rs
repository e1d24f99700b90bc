//! The classic BPF socket filter (SO_ATTACH_FILTER) of the AF_PACKET rings: TCP over IPv4 or
//! IPv6, untagged or behind up to two VLAN tags left in the frame, and the carriers of the
//! encapsulations the decoder follows (MPLS and PPPoE session frames; IP-in-IP, GRE and ERSPAN;
//! UDP to the VXLAN, GENEVE, GRE-in-UDP, GTP-U, Teredo and AYIYA ports), whatever they carry:
//! the decoder decides, and counts what is not TCP. Everything else stays out of the ring (the
//! host's stack gets it either way).
//!
//! The filter sees the frame as the socket will: on receive the kernel has already moved the
//! outermost VLAN tag into the packet's metadata, so a frame tagged once on the wire looks
//! untagged here and a QinQ frame shows its inner tag. IPv6 is followed through one extension
//! header (hop-by-hop, routing, fragment, destination options): TCP behind two or more is not
//! captured (classic BPF has no loops; such packets are rare, and tcpulse's XDP program, which
//! walks the chain, is the choice where they matter).

pub use crate::sys::packet::SockFilter;

/// Opcodes used here (linux/bpf_common.h).
mod op {
    /// Load a half word / byte at an absolute offset into A (out of range: the filter drops).
    pub const LDH_ABS: u16 = 0x28;
    pub const LDB_ABS: u16 = 0x30;
    /// Load a half word at X + k into A.
    pub const LDH_IND: u16 = 0x48;
    /// X = 4 * (the byte at k & 0xf): an IPv4 header's length.
    pub const LDX_MSH: u16 = 0xb1;
    /// Jump if A == k.
    pub const JEQ_K: u16 = 0x15;
    /// Jump k instructions forward.
    pub const JA: u16 = 0x05;
    /// Return k: the number of bytes to keep, 0 to drop.
    pub const RET_K: u16 = 0x06;
    /// A = k; X = k.
    pub const LD_IMM: u16 = 0x00;
    pub const LDX_IMM: u16 = 0x01;
    /// Load a word at an absolute offset; offsets from `SKF_AD_OFF` read the packet's metadata.
    pub const LD_W_ABS: u16 = 0x20;
}

/// The ancillary load of whether the kernel moved a VLAN tag out of the frame into metadata
/// (`SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT`, linux/filter.h).
const VLAN_TAG_PRESENT: u32 = (-0x1000i32 + 48) as u32;
/// Instructions a socket filter may have (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;

/// Keep the whole frame (the kernel caps it at what the ring can hold).
const KEEP_ALL: u32 = 0x0004_0000;

const ETH_TYPE: u32 = 12;
const TAG_LEN: u32 = 4;
const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const TAG_TYPES: [u32; 3] = [0x8100, 0x88a8, 0x9100];
const IPV4_PROTOCOL: u32 = 9;
const IPV6_NEXT_HEADER: u32 = 6;
const IPV6_HEADER_LEN: u32 = 40;
const PROTO_TCP: u32 = 6;
const PROTO_UDP: u32 = 17;
/// IP protocols of tunnels the decoder follows: IPv4 in IP, IPv6 in IP, GRE (and ERSPAN in it).
const TUNNEL_PROTOCOLS: [u32; 3] = [4, 41, 47];
/// Ethertypes of MPLS (unicast, multicast) and PPPoE sessions.
const CARRIER_ETHERTYPES: [u32; 3] = [0x8847, 0x8848, 0x8864];
/// UDP destination ports of VXLAN, GENEVE, GRE-in-UDP; and GTP-U, Teredo, AYIYA, whose replies
/// come from the port, so either port counts for them.
const TUNNEL_DST_PORTS: [u32; 3] = [4789, 6081, 4754];
const TUNNEL_EITHER_PORTS: [u32; 3] = [2152, 3544, 5072];
/// Hop-by-hop, routing, fragment, destination options: may precede TCP.
const IPV6_EXTENSIONS: [u32; 4] = [0, 43, 44, 60];
/// Tags left in the frame that the filter looks through.
const MAX_TAGS: u32 = 2;

/// A jump target while assembling.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

enum Asm {
    LoadHalf(u32),
    LoadByte(u32),
    /// A = half word at X + k.
    LoadHalfX(u32),
    /// X = IPv4 header length of the header at k.
    LoadIpv4HeaderLen(u32),
    JumpIfEq(u32, To, To),
    Jump(usize),
    Ret(u32),
    Label(usize),
}

/// Resolves labels into the relative forward offsets classic BPF wants. `None` when a jump
/// goes backwards or further than 255 instructions (a bug in the program text, caught by the
/// unit tests).
fn assemble(prog: &[Asm]) -> Option<Vec<SockFilter>> {
    let mut at = Vec::new();
    let mut pc = 0usize;
    for a in prog {
        match a {
            Asm::Label(l) => {
                if at.len() <= *l {
                    at.resize(*l + 1, usize::MAX);
                }
                at[*l] = pc;
            }
            _ => pc += 1,
        }
    }
    let mut out = Vec::with_capacity(pc);
    for a in prog {
        let here = out.len();
        let rel = |t: To| -> Option<u8> {
            match t {
                To::Next => Some(0),
                To::Label(l) => {
                    let target = *at.get(l)?;
                    u8::try_from(target.checked_sub(here + 1)?).ok()
                }
            }
        };
        let ins = |code, k| SockFilter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        out.push(match *a {
            Asm::Label(_) => continue,
            Asm::LoadHalf(k) => ins(op::LDH_ABS, k),
            Asm::LoadByte(k) => ins(op::LDB_ABS, k),
            Asm::LoadHalfX(k) => ins(op::LDH_IND, k),
            Asm::LoadIpv4HeaderLen(k) => ins(op::LDX_MSH, k),
            Asm::Ret(k) => ins(op::RET_K, k),
            Asm::Jump(l) => ins(op::JA, u32::from(rel(To::Label(l))?)),
            Asm::JumpIfEq(k, t, f) => SockFilter {
                code: op::JEQ_K,
                jt: rel(t)?,
                jf: rel(f)?,
                k,
            },
        });
    }
    Some(out)
}

/// TCP, and the carriers of tunnels and link encapsulations the decoder follows.
pub fn tcp_and_tunnels() -> Vec<SockFilter> {
    const ACCEPT: usize = 0;
    const DROP: usize = 1;
    // Labels per depth d (tags in the frame): 2 + 6d = ethertype, +1 = IPv4, +2 = IPv6,
    // +3 = after one IPv6 extension header, +4 = UDP in IPv4, +5 = UDP in IPv6.
    let ethertype = |d: u32| 2 + 6 * d as usize;
    let v4 = |d: u32| ethertype(d) + 1;
    let v6 = |d: u32| ethertype(d) + 2;
    let ext = |d: u32| ethertype(d) + 3;
    let udp4 = |d: u32| ethertype(d) + 4;
    let udp6 = |d: u32| ethertype(d) + 5;
    // A = the IP protocol or next header: TCP and tunnels accepted, UDP to `udp`, else on to
    // `other` (the next instruction when `None`).
    let protocol = |p: &mut Vec<Asm>, udp: Option<usize>, other: Option<usize>| {
        p.push(Asm::JumpIfEq(PROTO_TCP, To::Label(ACCEPT), To::Next));
        for t in TUNNEL_PROTOCOLS {
            p.push(Asm::JumpIfEq(t, To::Label(ACCEPT), To::Next));
        }
        if let Some(udp) = udp {
            p.push(Asm::JumpIfEq(PROTO_UDP, To::Label(udp), To::Next));
        }
        if let Some(other) = other {
            p.push(Asm::Jump(other));
        }
    };
    // A = a UDP destination port, then (after `load_src`) its source port.
    let ports = |p: &mut Vec<Asm>, load_src: Asm| {
        for port in TUNNEL_DST_PORTS.into_iter().chain(TUNNEL_EITHER_PORTS) {
            p.push(Asm::JumpIfEq(port, To::Label(ACCEPT), To::Next));
        }
        p.push(load_src);
        for port in TUNNEL_EITHER_PORTS {
            p.push(Asm::JumpIfEq(port, To::Label(ACCEPT), To::Next));
        }
        p.push(Asm::Ret(0));
    };
    let mut p = Vec::new();
    for d in 0..=MAX_TAGS {
        let type_at = ETH_TYPE + TAG_LEN * d;
        p.push(Asm::Label(ethertype(d)));
        p.push(Asm::LoadHalf(type_at));
        p.push(Asm::JumpIfEq(ETHERTYPE_IPV4, To::Label(v4(d)), To::Next));
        p.push(Asm::JumpIfEq(ETHERTYPE_IPV6, To::Label(v6(d)), To::Next));
        for t in CARRIER_ETHERTYPES {
            p.push(Asm::JumpIfEq(t, To::Label(ACCEPT), To::Next));
        }
        if d < MAX_TAGS {
            for t in TAG_TYPES {
                p.push(Asm::JumpIfEq(t, To::Label(ethertype(d + 1)), To::Next));
            }
        }
        p.push(Asm::Ret(0));
    }
    for d in 0..=MAX_TAGS {
        let l3 = ETH_TYPE + 2 + TAG_LEN * d;
        p.push(Asm::Label(v4(d)));
        p.push(Asm::LoadByte(l3 + IPV4_PROTOCOL));
        protocol(&mut p, Some(udp4(d)), Some(DROP));
        p.push(Asm::Label(v6(d)));
        p.push(Asm::LoadByte(l3 + IPV6_NEXT_HEADER));
        protocol(&mut p, Some(udp6(d)), None);
        for e in IPV6_EXTENSIONS {
            p.push(Asm::JumpIfEq(e, To::Label(ext(d)), To::Next));
        }
        p.push(Asm::Ret(0));
        // Every one of these headers starts with its next-header byte. UDP behind one is not
        // followed: its offset depends on the header's length.
        p.push(Asm::Label(ext(d)));
        p.push(Asm::LoadByte(l3 + IPV6_HEADER_LEN));
        protocol(&mut p, None, Some(DROP));
        // UDP in IPv4: X = the IPv4 header's length.
        p.push(Asm::Label(udp4(d)));
        p.push(Asm::LoadIpv4HeaderLen(l3));
        p.push(Asm::LoadHalfX(l3 + 2));
        ports(&mut p, Asm::LoadHalfX(l3));
        p.push(Asm::Label(udp6(d)));
        p.push(Asm::LoadHalf(l3 + IPV6_HEADER_LEN + 2));
        ports(&mut p, Asm::LoadHalf(l3 + IPV6_HEADER_LEN));
    }
    p.push(Asm::Label(DROP));
    p.push(Asm::Ret(0));
    p.push(Asm::Label(ACCEPT));
    p.push(Asm::Ret(KEEP_ALL));
    // The program text above is fixed; its jumps are checked by the tests.
    assemble(&p).unwrap_or_else(|| {
        vec![SockFilter {
            code: op::RET_K,
            jt: 0,
            jf: 0,
            k: KEEP_ALL,
        }]
    })
}

/// Every frame, whole (`capture_all`).
/// [`tcp_and_tunnels`], then the operator's capture filter (`--filter`, libpcap's program for
/// Ethernet) on the frames it keeps, so frames the filter rejects never reach the ring. That
/// program expects the frame as on the wire, but the kernel has moved the outermost VLAN tag out
/// of it by now: a frame that had one passes here, and user space runs the filter on it with the
/// tag put back. Whatever length the filter keeps, the whole frame is kept. `None` when the two
/// do not fit in one socket filter.
pub fn tcp_and_tunnels_matching(filter: &[SockFilter]) -> Option<Vec<SockFilter>> {
    let ours = tcp_and_tunnels();
    let mut prog = Vec::with_capacity(ours.len() + 5 + filter.len());
    // Where ours accepts, go on to the operator's part, which starts right after ours.
    for (i, ins) in ours.iter().enumerate() {
        prog.push(if ins.code == op::RET_K && ins.k != 0 {
            SockFilter {
                code: op::JA,
                jt: 0,
                jf: 0,
                k: u32::try_from(ours.len() - i - 1).ok()?,
            }
        } else {
            *ins
        });
    }
    let plain = |code, k| SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    prog.push(plain(op::LD_W_ABS, VLAN_TAG_PRESENT));
    // No tag in metadata: on to the filter (skip the next instruction); else keep.
    prog.push(SockFilter {
        code: op::JEQ_K,
        jt: 1,
        jf: 0,
        k: 0,
    });
    prog.push(plain(op::RET_K, KEEP_ALL));
    // The filter starts as the kernel starts a program, with A and X zero.
    prog.push(plain(op::LD_IMM, 0));
    prog.push(plain(op::LDX_IMM, 0));
    prog.extend(filter.iter().map(|ins| {
        if ins.code == op::RET_K && ins.k != 0 {
            plain(op::RET_K, KEEP_ALL)
        } else {
            *ins
        }
    }));
    (prog.len() <= MAX_INSTRUCTIONS).then_some(prog)
}

pub fn accept_all() -> Vec<SockFilter> {
    vec![SockFilter {
        code: op::RET_K,
        jt: 0,
        jf: 0,
        k: KEEP_ALL,
    }]
}

/// No frame: installed before a socket is bound, until it has joined its fanout group, so it
/// never queues a frame on its own that the group also delivers.
pub fn drop_all() -> Vec<SockFilter> {
    vec![SockFilter {
        code: op::RET_K,
        jt: 0,
        jf: 0,
        k: 0,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the subset of classic BPF the filters use, as the kernel would.
    fn run(prog: &[SockFilter], frame: &[u8]) -> u32 {
        run_tagged(prog, frame, false)
    }

    /// [`run`], for a frame whose VLAN tag the kernel did (`tag_in_metadata`) or did not move
    /// out of it.
    fn run_tagged(prog: &[SockFilter], frame: &[u8], tag_in_metadata: bool) -> u32 {
        let mut a = 0u32;
        let mut x = 0usize;
        let mut pc = 0usize;
        for _ in 0..prog.len() {
            let ins = prog[pc];
            let k = ins.k as usize;
            match ins.code {
                op::LD_IMM => a = ins.k,
                op::LDX_IMM => x = k,
                op::LD_W_ABS if ins.k == VLAN_TAG_PRESENT => a = u32::from(tag_in_metadata),
                // Jump if A & k (libpcap's fragment-offset test).
                0x45 => pc += usize::from(if a & ins.k != 0 { ins.jt } else { ins.jf }),
                op::LDH_ABS => match frame.get(k..k + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                op::LDB_ABS => match frame.get(k) {
                    Some(&b) => a = u32::from(b),
                    None => return 0,
                },
                op::LDH_IND => match frame.get(x + k..x + k + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                op::LDX_MSH => match frame.get(k) {
                    Some(&b) => x = 4 * usize::from(b & 0xf),
                    None => return 0,
                },
                op::JA => pc += k,
                op::JEQ_K => {
                    pc += usize::from(if a == ins.k { ins.jt } else { ins.jf });
                }
                op::RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
        panic!("ran off the end");
    }

    fn frame(tags: &[u16], ethertype: u16, proto_at: usize, proto: u8) -> Vec<u8> {
        frame_with(tags, ethertype, &[(proto_at, proto)])
    }

    fn frame_with(tags: &[u16], ethertype: u16, bytes: &[(usize, u8)]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for &t in tags {
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(&[0, 5]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        let mut l3 = vec![0u8; 60];
        for &(at, b) in bytes {
            l3[at] = b;
        }
        f.extend_from_slice(&l3);
        f
    }

    /// The operator's filter runs on what ours keeps, untagged frames only; its verdict is
    /// taken, its length is not.
    #[test]
    fn the_operator_filter_runs_after_ours() {
        // libpcap's `ip` for Ethernet: ldh [12]; jeq #0x800, 0, 1; ret #262144; ret #0.
        let ip_only = [
            SockFilter {
                code: op::LDH_ABS,
                jt: 0,
                jf: 0,
                k: 12,
            },
            SockFilter {
                code: op::JEQ_K,
                jt: 0,
                jf: 1,
                k: 0x0800,
            },
            SockFilter {
                code: op::RET_K,
                jt: 0,
                jf: 0,
                k: 96,
            },
            SockFilter {
                code: op::RET_K,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        let p = tcp_and_tunnels_matching(&ip_only).expect("fits");
        assert_eq!(p.len(), tcp_and_tunnels().len() + 5 + ip_only.len());
        let tcp4 = frame(&[], 0x0800, IPV4_PROTOCOL as usize, 6);
        let tcp6 = frame(&[], 0x86dd, IPV6_NEXT_HEADER as usize, 6);
        let udp4 = frame(&[], 0x0800, IPV4_PROTOCOL as usize, 17);
        assert_eq!(run(&p, &tcp4), KEEP_ALL);
        assert_eq!(run(&p, &tcp6), 0, "ours keeps it, the operator's does not");
        assert_eq!(run(&p, &udp4), 0, "ours drops it");
        // A tag in metadata: user space decides with the tag put back.
        assert_eq!(run_tagged(&p, &tcp6, true), KEEP_ALL);
        assert_eq!(run_tagged(&p, &udp4, true), 0);
        let too_long = vec![ip_only[0]; MAX_INSTRUCTIONS];
        assert_eq!(tcp_and_tunnels_matching(&too_long), None);
    }

    /// libpcap's own program for an expression, through [`CaptureFilter::socket_program`].
    #[test]
    fn a_libpcap_filter_selects_in_the_kernel_program() {
        let filter = crate::capture::CaptureFilter::new("tcp port 443").expect("compiles");
        let p = tcp_and_tunnels_matching(&filter.socket_program().expect("instructions"))
            .expect("fits");
        let segment = |dport: u16| {
            let mut f = frame(&[], 0x0800, IPV4_PROTOCOL as usize, 6);
            f[14] = 0x45;
            f[14 + 22..14 + 24].copy_from_slice(&dport.to_be_bytes());
            f
        };
        assert_eq!(run(&p, &segment(443)), KEEP_ALL);
        assert_eq!(run(&p, &segment(80)), 0);
        assert_eq!(run_tagged(&p, &segment(80), true), KEEP_ALL);
    }

    #[test]
    fn the_program_assembles_and_fits() {
        let p = tcp_and_tunnels();
        // Forward jumps reach 255 instructions: the whole program stays within that.
        assert!(p.len() > 10 && p.len() < 256, "{} instructions", p.len());
        assert_ne!(p, accept_all(), "assembly fell back");
    }

    #[test]
    fn keeps_tcp_at_every_tag_depth() {
        let p = tcp_and_tunnels();
        for tags in [&[][..], &[0x8100], &[0x88a8, 0x8100], &[0x9100, 0x8100]] {
            assert_eq!(run(&p, &frame(tags, 0x0800, 9, 6)), KEEP_ALL, "{tags:x?}");
            assert_eq!(run(&p, &frame(tags, 0x86dd, 6, 6)), KEEP_ALL, "{tags:x?}");
            let v6_ext = |ext: u8, next: u8| frame_with(tags, 0x86dd, &[(6, ext), (40, next)]);
            for ext in [0, 43, 44, 60] {
                assert_eq!(
                    run(&p, &v6_ext(ext, 6)),
                    KEEP_ALL,
                    "TCP after {ext} {tags:x?}"
                );
            }
            assert_eq!(run(&p, &v6_ext(0, 58)), 0, "MLD after hop-by-hop {tags:x?}");
            assert_eq!(
                run(&p, &v6_ext(0, 60)),
                0,
                "two extension headers {tags:x?}"
            );
            assert_eq!(run(&p, &frame(tags, 0x0800, 9, 17)), 0, "UDP {tags:x?}");
            assert_eq!(run(&p, &frame(tags, 0x0800, 9, 1)), 0, "ICMP {tags:x?}");
            assert_eq!(run(&p, &frame(tags, 0x86dd, 6, 58)), 0, "ICMPv6 {tags:x?}");
            assert_eq!(run(&p, &frame(tags, 0x0806, 9, 6)), 0, "ARP {tags:x?}");
        }
        // Three tags left in the frame: beyond what the filter looks through.
        assert_eq!(run(&p, &frame(&[0x88a8, 0x8100, 0x8100], 0x0800, 9, 6)), 0);
    }

    #[test]
    fn keeps_the_carriers_of_every_followed_encapsulation() {
        let p = tcp_and_tunnels();
        let port = |at: usize, n: u16| [(at, (n >> 8) as u8), (at + 1, n as u8)];
        for tags in [&[][..], &[0x8100], &[0x88a8, 0x8100]] {
            for ethertype in [0x8847, 0x8848, 0x8864] {
                assert_eq!(
                    run(&p, &frame(tags, ethertype, 0, 0)),
                    KEEP_ALL,
                    "{ethertype:x}"
                );
            }
            for proto in [4, 41, 47] {
                assert_eq!(run(&p, &frame(tags, 0x0800, 9, proto)), KEEP_ALL, "{proto}");
                assert_eq!(run(&p, &frame(tags, 0x86dd, 6, proto)), KEEP_ALL, "{proto}");
            }
            // UDP in IPv4 with a 20- and a 24-byte header, and in IPv6.
            for ihl in [5u8, 6] {
                let udp = usize::from(ihl) * 4;
                let v4 = |bytes: &[(usize, u8)]| {
                    let mut all = vec![(0, 0x40 | ihl), (9, 17)];
                    all.extend_from_slice(bytes);
                    frame_with(tags, 0x0800, &all)
                };
                for dst in [4789, 6081, 4754, 2152, 3544, 5072] {
                    assert_eq!(run(&p, &v4(&port(udp + 2, dst))), KEEP_ALL, "to {dst}");
                }
                for src in [2152, 3544, 5072] {
                    assert_eq!(run(&p, &v4(&port(udp, src))), KEEP_ALL, "from {src}");
                }
                assert_eq!(run(&p, &v4(&port(udp, 4789))), 0, "VXLAN is to its port");
                assert_eq!(run(&p, &v4(&port(udp + 2, 53))), 0, "DNS");
            }
            let mut v6 = vec![(6, 17)];
            v6.extend_from_slice(&port(42, 6081));
            assert_eq!(
                run(&p, &frame_with(tags, 0x86dd, &v6)),
                KEEP_ALL,
                "GENEVE in IPv6"
            );
            let mut v6 = vec![(6, 17)];
            v6.extend_from_slice(&port(42, 443));
            assert_eq!(run(&p, &frame_with(tags, 0x86dd, &v6)), 0, "QUIC in IPv6");
        }
    }

    #[test]
    fn runts_are_dropped() {
        let p = tcp_and_tunnels();
        let f = frame(&[], 0x0800, 9, 6);
        for len in 0..24 {
            assert_eq!(run(&p, &f[..len]), 0, "{len} bytes");
        }
        assert_eq!(run(&accept_all(), &[]), KEEP_ALL);
        assert_eq!(run(&drop_all(), &f), 0);
    }

    #[test]
    fn backward_jumps_are_refused() {
        let p = [Asm::Label(0), Asm::JumpIfEq(1, To::Label(0), To::Next)];
        assert!(assemble(&p).is_none());
    }
}
