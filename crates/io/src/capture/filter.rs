//! Capture filters in pcap-filter syntax (`--filter 'host 10.1.2.3 and port 443'`), as tcpdump,
//! tshark's capture filters and Zeek take them: libpcap compiles the expression (through the
//! `pcap` crate), once per link type, and runs it over each frame's captured bytes. Frames that
//! do not match are not analysed and are counted (`capture.filtered_out`).
//!
//! The expression sees the frame as tcpdump would: outer headers first, so `vxlan` or `geneve`
//! (where libpcap knows them), `mpls` and `vlan` reach inside as they do there.

use std::fmt;

use pcap::{BpfProgram, Capture, Linktype};

use crate::sys::packet::SockFilter;

/// A compiled capture filter, and its programs per link type.
pub struct CaptureFilter {
    expression: String,
    /// Programs compiled so far, by link type; `None` where the expression has no meaning for
    /// that link type (its frames never match).
    programs: Vec<(u32, Option<BpfProgram>)>,
}

/// Why an expression cannot be a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub expression: String,
    pub reason: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capture filter `{}`: {} (pcap-filter syntax, as tcpdump's)",
            self.expression, self.reason
        )
    }
}

/// Ethernet, the link type an expression is checked against when the filter is made.
const ETHERNET: u32 = 1;

impl CaptureFilter {
    /// Compiles `expression` for Ethernet, so that a typo fails before any capture starts.
    ///
    /// # Errors
    /// libpcap's message for an expression it cannot compile.
    pub fn new(expression: &str) -> Result<CaptureFilter, FilterError> {
        let program = compile(expression, ETHERNET).map_err(|reason| FilterError {
            expression: expression.to_string(),
            reason,
        })?;
        Ok(CaptureFilter {
            expression: expression.to_string(),
            programs: vec![(ETHERNET, Some(program))],
        })
    }

    /// Another filter of the same expression, for another capture thread.
    pub fn fresh(&self) -> CaptureFilter {
        CaptureFilter {
            expression: self.expression.clone(),
            programs: Vec::new(),
        }
    }

    /// Whether the frame matches. `data` is what was captured: like tcpdump reading a file,
    /// the program sees the captured bytes only.
    #[inline]
    pub fn matches(&mut self, link_type: u32, data: &[u8]) -> bool {
        let program = match self.programs.iter().position(|(l, _)| *l == link_type) {
            Some(i) => &self.programs[i].1,
            None => {
                let program = compile(&self.expression, link_type).ok();
                self.programs.push((link_type, program));
                &self.programs[self.programs.len() - 1].1
            }
        };
        program.as_ref().is_some_and(|p| p.filter(data))
    }
}

impl CaptureFilter {
    /// The program for Ethernet as classic BPF instructions, to run in the kernel as a socket
    /// filter (AF_PACKET). libpcap writes each instruction as `code jt jf k`; `None` if one
    /// does not read so (the filter then runs in user space only), or for a filter made by
    /// [`CaptureFilter::fresh`].
    pub fn socket_program(&self) -> Option<Vec<SockFilter>> {
        let (_, program) = self.programs.iter().find(|(l, _)| *l == ETHERNET)?;
        program
            .as_ref()?
            .get_instructions()
            .iter()
            .map(|ins| {
                let text = ins.to_string();
                let mut n = text.split(' ').map(str::parse::<u32>);
                let mut next = || n.next()?.ok();
                Some(SockFilter {
                    code: u16::try_from(next()?).ok()?,
                    jt: u8::try_from(next()?).ok()?,
                    jf: u8::try_from(next()?).ok()?,
                    k: next()?,
                })
            })
            .collect()
    }
}

fn compile(expression: &str, link_type: u32) -> Result<BpfProgram, String> {
    // libpcap's dead handles take its DLT_ numbers, which differ from the link types files
    // carry for raw IP only (among those tcpulse reads): LINKTYPE_RAW 101 is Linux's DLT_RAW 12.
    let dlt = match link_type {
        101 => 12,
        n => n,
    };
    let link = i32::try_from(dlt).map_err(|_| format!("link type {link_type}"))?;
    let dead = Capture::dead(Linktype(link)).map_err(|e| e.to_string())?;
    dead.compile(expression, true).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/TCP SYN from 192.0.2.1:40000 to 198.51.100.7:443.
    fn syn() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[192, 0, 2, 1]);
        f[30..34].copy_from_slice(&[198, 51, 100, 7]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&443u16.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x02;
        f
    }

    #[test]
    fn expressions_select_as_tcpdump_does() {
        let frame = syn();
        let mut yes = CaptureFilter::new("host 198.51.100.7 and tcp port 443").unwrap();
        assert!(yes.matches(ETHERNET, &frame));
        let mut no = CaptureFilter::new("udp or port 80").unwrap();
        assert!(!no.matches(ETHERNET, &frame));
        // Raw IP (link type 101): the same packet without its Ethernet header.
        assert!(yes.fresh().matches(101, &frame[14..]));
        // An expression with no meaning for a link type matches none of its frames.
        let mut ether = CaptureFilter::new("ether host 00:00:00:00:00:00").unwrap();
        assert!(ether.matches(ETHERNET, &frame));
        assert!(!ether.matches(101, &frame[14..]));
    }

    #[test]
    fn a_bad_expression_is_refused_with_libpcap_s_reason() {
        let e = CaptureFilter::new("host and and").err().unwrap();
        assert!(e.to_string().contains("host and and"), "{e}");
        assert!(e.reason.contains("syntax"), "{e}");
    }
}
