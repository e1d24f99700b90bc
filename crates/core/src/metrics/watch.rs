//! Servers of interest (`--watch`): patterns of addresses and ports whose servers are always
//! listed in interval records, whatever their traffic, next to the busiest and the troubled.
//!
//! A pattern is `ADDR`, `ADDR/LEN` (a network), either followed by `:PORT` (IPv6 in brackets:
//! `[2001:db8::]/32:443`), or `:PORT` alone (every server on that port).

use std::fmt;
use std::net::IpAddr;

use crate::decode::Addr;
use crate::decode::Endpoint;
use crate::flow::anonymize::Anonymizer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerPattern {
    /// Network in the 128-bit (IPv4-mapped) space and its prefix length there; `None`: any.
    net: Option<(Addr, u8)>,
    port: Option<u16>,
}

impl fmt::Display for ServerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.net {
            Some((a, len)) if a.is_v4() => write!(f, "{}/{}", a.to_ip(), len - 96)?,
            Some((a, len)) => write!(f, "[{}]/{len}", a.to_ip())?,
            None => {}
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

fn mask(a: Addr, len: u8) -> Addr {
    let bits = u128::from_be_bytes(a.0);
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    Addr((bits & m).to_be_bytes())
}

impl ServerPattern {
    /// Parses a pattern (see the module docs).
    ///
    /// # Errors
    /// A message naming the pattern and the expected forms.
    pub fn parse(text: &str) -> Result<ServerPattern, String> {
        let bad = || {
            format!(
                "`{text}` is not a server pattern: ADDR, ADDR/LEN, either with :PORT \
                 ([v6]/LEN:PORT), or :PORT"
            )
        };
        let t = text.trim();
        let (addr_part, port) = if let Some(rest) = t.strip_prefix('[') {
            // [v6] or [v6]/len, then optional :port
            let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
            let (len, port) = match after.split_once(':') {
                Some((len, p)) => (len, Some(p)),
                None => (after, None),
            };
            (format!("{inside}{len}"), port)
        } else if t.matches(':').count() == 1 {
            let (a, p) = t.split_once(':').ok_or_else(bad)?;
            (a.to_string(), Some(p))
        } else {
            (t.to_string(), None)
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad()))
            .transpose()?;
        if addr_part.is_empty() {
            return port
                .map(|p| ServerPattern {
                    net: None,
                    port: Some(p),
                })
                .ok_or_else(bad);
        }
        let (ip, len) = match addr_part.split_once('/') {
            Some((ip, len)) => (ip, Some(len.parse::<u8>().map_err(|_| bad())?)),
            None => (addr_part.as_str(), None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let len = match (ip, len) {
            (IpAddr::V4(_), Some(l)) if l <= 32 => l + 96,
            (IpAddr::V6(_), Some(l)) if l <= 128 => l,
            (IpAddr::V4(_), None) | (IpAddr::V6(_), None) => 128,
            _ => return Err(bad()),
        };
        Ok(ServerPattern {
            net: Some((mask(Addr::from(ip), len), len)),
            port,
        })
    }

    pub fn matches(&self, e: &Endpoint) -> bool {
        self.port.is_none_or(|p| p == e.port)
            && self.net.is_none_or(|(net, len)| mask(e.addr, len) == net)
    }

    /// The same pattern over anonymised addresses: the mapping keeps prefixes, so a network
    /// maps to a network of the same length.
    pub fn anonymised(self, a: &mut Anonymizer) -> ServerPattern {
        ServerPattern {
            net: self.net.map(|(net, len)| (mask(a.addr(net), len), len)),
            port: self.port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        let sa: std::net::SocketAddr = s.parse().unwrap();
        Endpoint {
            addr: Addr::from(sa.ip()),
            port: sa.port(),
        }
    }

    #[test]
    fn patterns_parse_and_match() {
        let p = |t: &str| ServerPattern::parse(t).unwrap();
        assert!(p("10.0.0.0/8").matches(&ep("10.2.3.4:80")));
        assert!(!p("10.0.0.0/8").matches(&ep("11.2.3.4:80")));
        assert!(p("10.0.0.0/8:443").matches(&ep("10.2.3.4:443")));
        assert!(!p("10.0.0.0/8:443").matches(&ep("10.2.3.4:80")));
        assert!(p("192.0.2.7").matches(&ep("192.0.2.7:1")));
        assert!(!p("192.0.2.7").matches(&ep("192.0.2.8:1")));
        assert!(p(":5432").matches(&ep("[2001:db8::1]:5432")));
        assert!(p("[2001:db8::]/32:443").matches(&ep("[2001:db8:5::1]:443")));
        assert!(!p("[2001:db8::]/32:443").matches(&ep("[2001:db9::1]:443")));
        assert!(p("2001:db8::/32").matches(&ep("[2001:db8::9]:1")));
        assert!(!p("10.0.0.0/8").matches(&ep("[::a00:1]:1")), "v4 is not v6");
        assert_eq!(p("10.1.0.0/16:443").to_string(), "10.1.0.0/16:443");
        for bad in ["", "10.0.0.0/33", "x", "10.0.0.1:99999", "[::1", ":"] {
            assert!(ServerPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anonymised_patterns_match_anonymised_servers() {
        let mut a = Anonymizer::new(&[3u8; 32]);
        let net = ServerPattern::parse("10.20.0.0/16:443")
            .unwrap()
            .anonymised(&mut a);
        let inside = a.endpoint(ep("10.20.7.9:443"));
        let outside = a.endpoint(ep("10.21.7.9:443"));
        assert!(net.matches(&inside));
        assert!(!net.matches(&outside));
    }
}
