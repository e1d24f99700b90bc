//! Every input is decoded as every link type, with the original length equal to, below and above
//! the captured length. Beyond "no panic", it checks what a record must always satisfy.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpulse_core::decode::{decode_frame, opt, LinkType, NO_WSCALE};

const LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

fuzz_target!(|data: &[u8]| {
    let Ok(len) = u32::try_from(data.len()) else {
        return;
    };
    for link in LINKS {
        let exact = decode_frame(link, data, len, 7);
        // An original length below the captured one is read as the captured length.
        assert_eq!(decode_frame(link, data, 0, 7), exact);
        let snapped = decode_frame(link, data, len.saturating_add(9000), 7);
        if let Ok(rec) = exact {
            assert_eq!(rec.ts_ns, 7);
            assert!(rec.wscale == NO_WSCALE || rec.wscale <= 14);
            assert_eq!(rec.options & opt::TRUNCATED_PAYLOAD, 0);
            assert!(rec.payload_len < len);
            // More bytes on the wire than captured cannot turn a good frame bad or change it.
            assert_eq!(snapped, Ok(rec));
        }
        if let Ok(rec) = snapped {
            assert!(rec.payload_len < len.saturating_add(9000));
        }
    }
});
