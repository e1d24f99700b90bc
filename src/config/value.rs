//! How each kind of value is written in the file. Every reader goes through the command line's
//! own parser or check, so a value means the same in a file as after its flag. A reader's error
//! gets the value's position from the TOML deserializer; `error.rs` turns it into a key path.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::Deserialize;

use super::checks;
use tcpulse_core::units::{self, NumberList};
use tcpulse_io::capture::xdp::XdpMode;
use tcpulse_io::capture::CaptureKind;

/// A string handed to one of the command line's text parsers (or any parser: scenario files
/// use it too); the parser's error becomes the value's, with its position.
pub(crate) fn parsed<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Text(&'static str);
    impl Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
    }
    let text = d.deserialize_str(Text(expecting))?;
    parse(&text).map(Some).map_err(de::Error::custom)
}

/// A number of the field's type, then the command line's range check.
fn checked<'de, D, T>(d: D, check: fn(T) -> Result<T, String>) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    check(T::deserialize(d)?)
        .map(Some)
        .map_err(de::Error::custom)
}

pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        parsed(
            d,
            "a duration string such as \"1s\" or \"500ms\"",
            units::parse_duration,
        )
    }

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&units::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}

pub mod capture_kind {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CaptureKind>, D::Error> {
        parsed(d, "\"xdp\" or \"af-packet\"", checks::parse_capture_kind)
    }

    pub fn serialize<S: Serializer>(v: &Option<CaptureKind>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(k) => s.serialize_str(k.name()),
            None => s.serialize_none(),
        }
    }
}

pub mod filter {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        parsed(d, "a pcap-filter expression", checks::parse_filter)
    }

    pub fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(e) => s.serialize_str(e),
            None => s.serialize_none(),
        }
    }
}

pub mod rtt_source {
    use super::*;
    use tcpulse_core::flow::latency::RttSource;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RttSource>, D::Error> {
        parsed(
            d,
            "\"auto\", \"timestamps\" or \"seq-ack\"",
            checks::parse_rtt_source,
        )
    }

    pub fn serialize<S: Serializer>(v: &Option<RttSource>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(k) => s.serialize_str(k.name()),
            None => s.serialize_none(),
        }
    }
}

pub mod key_tunnel {
    use super::*;
    use tcpulse_core::flow::TunnelKeying;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TunnelKeying>, D::Error> {
        parsed(d, "\"none\", \"vni\" or \"all\"", checks::parse_key_tunnel)
    }

    pub fn serialize<S: Serializer>(v: &Option<TunnelKeying>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(k) => s.serialize_str(k.name()),
            None => s.serialize_none(),
        }
    }
}

pub mod xdp_mode {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<XdpMode>, D::Error> {
        parsed(d, "\"native\" or \"skb\"", checks::parse_xdp_mode)
    }

    pub fn serialize<S: Serializer>(v: &Option<XdpMode>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }
}

/// A list of queues or CPUs: a string as on the command line (`"0-3"`, `"0,2"`) or an array
/// of integers (`[0, 2]`).
pub mod list {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NumberList>, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = NumberList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list such as \"0-3\", \"0,2\" or [0, 2]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumberList, E> {
                units::parse_list(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NumberList, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<u32>()? {
                    out.push(n);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("empty list"));
                }
                Ok(NumberList(out))
            }
        }
        d.deserialize_any(List).map(Some)
    }

    pub fn serialize<S: Serializer>(v: &Option<NumberList>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(list) => {
                let mut seq = s.serialize_seq(Some(list.0.len()))?;
                for n in &list.0 {
                    seq.serialize_element(n)?;
                }
                seq.end()
            }
            None => s.serialize_none(),
        }
    }
}

/// Server patterns (`pipeline.watch`): one string or a list of strings, each checked.
pub mod patterns {
    use super::*;
    use tcpulse_core::metrics::watch::ServerPattern;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<ServerPattern>>, D::Error> {
        struct Patterns;
        impl<'de> Visitor<'de> for Patterns {
            type Value = Vec<ServerPattern>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("server patterns such as [\"10.0.0.0/8:443\", \":5432\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ServerPattern::parse(v).map(|p| vec![p]).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    out.push(ServerPattern::parse(&text).map_err(de::Error::custom)?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(Patterns).map(Some)
    }

    pub fn serialize<S: Serializer>(
        v: &Option<Vec<ServerPattern>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(list) => {
                let mut seq = s.serialize_seq(Some(list.len()))?;
                for p in list {
                    seq.serialize_element(&p.to_string())?;
                }
                seq.end()
            }
            None => s.serialize_none(),
        }
    }
}

/// A worker count within the command line's range.
pub fn workers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    checked(d, checks::check_workers)
}

/// A count of AF_PACKET rings, 1 to 256.
pub fn threads<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    checked(d, checks::check_threads)
}

/// An AF_XDP ring size (a power of two in range).
pub fn ring_frames<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    checked(d, checks::check_ring_frames)
}

/// A flow-table size of at least one.
pub fn max_flows<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    checked(d, checks::check_max_flows)
}
