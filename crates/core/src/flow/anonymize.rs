//! Prefix-preserving IP address anonymisation (the Crypto-PAn construction): two addresses that
//! share their first k bits map to two addresses that share exactly their first k bits, so
//! subnets stay subnets and per-prefix analysis still works, while the addresses themselves
//! cannot be read back without the key. Applied to every address in a record before the record
//! leaves the process (`--anonymize KEYFILE`); ports are kept.
//!
//! Bit i of the output is bit i of the input XOR the first bit of AES-128(key, the input's
//! first i bits followed by the rest of a secret pad). The key file holds 32 bytes (or 64 hex
//! digits): the AES key, then the material the pad is made from.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

use crate::decode::Addr;
use crate::decode::Endpoint;
use crate::flow::WorkerInterval;

pub struct Anonymizer {
    cipher: Aes128,
    pad: u128,
    /// Records name the same servers again and again; each address is worked out once
    /// (bounded: cleared when it grows past `CACHE_MAX`).
    cache: HashMap<Addr, Addr>,
}

const CACHE_MAX: usize = 1 << 16;

/// A key file that cannot be used.
#[derive(Debug)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl Anonymizer {
    /// From 32 bytes of key material.
    pub fn new(key: &[u8; 32]) -> Anonymizer {
        let cipher = Aes128::new(key[..16].into());
        let mut pad = aes::Block::clone_from_slice(&key[16..]);
        cipher.encrypt_block(&mut pad);
        Anonymizer {
            cipher,
            pad: u128::from_be_bytes(pad.into()),
            cache: HashMap::new(),
        }
    }

    /// Reads a key file: 32 raw bytes, or 64 hexadecimal digits (whitespace around ignored).
    ///
    /// # Errors
    /// The file cannot be read or holds anything else; the message says how to make one.
    pub fn from_key_file(path: &Path) -> Result<Anonymizer, KeyError> {
        read_key(path).map(|k| Anonymizer::new(&k))
    }
}

/// The 32 key bytes of a key file (see [`Anonymizer::from_key_file`]).
///
/// # Errors
/// As [`Anonymizer::from_key_file`].
pub fn read_key(path: &Path) -> Result<[u8; 32], KeyError> {
    let how = "make one with: head -c 32 /dev/urandom > KEYFILE";
    let bytes = std::fs::read(path)
        .map_err(|e| KeyError(format!("--anonymize {}: {e}; {how}", path.display())))?;
    let key: Option<[u8; 32]> = if bytes.len() == 32 {
        bytes.as_slice().try_into().ok()
    } else {
        std::str::from_utf8(&bytes)
            .ok()
            .map(str::trim)
            .filter(|t| t.len() == 64)
            .and_then(|t| {
                let mut key = [0u8; 32];
                for (i, byte) in key.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some(key)
            })
    };
    key.ok_or_else(|| {
        KeyError(format!(
            "--anonymize {}: a key is 32 bytes or 64 hex digits, this file has {} bytes; {how}",
            path.display(),
            bytes.len()
        ))
    })
}

impl Anonymizer {
    /// The anonymised address (IPv4 stays IPv4, IPv6 stays IPv6).
    pub fn addr(&mut self, a: Addr) -> Addr {
        if let Some(&done) = self.cache.get(&a) {
            return done;
        }
        let out = if a.is_v4() {
            let v4 = u32::from_be_bytes([a.0[12], a.0[13], a.0[14], a.0[15]]);
            let mapped = self.bits(u128::from(v4) << 96, 32) >> 96;
            Addr::from_v4((mapped as u32).to_be_bytes())
        } else {
            Addr::from_v6(self.bits(u128::from_be_bytes(a.0), 128).to_be_bytes())
        };
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(a, out);
        out
    }

    pub fn endpoint(&mut self, e: Endpoint) -> Endpoint {
        Endpoint {
            addr: self.addr(e.addr),
            port: e.port,
        }
    }

    /// Every address in a worker's share of an interval: servers and flow endpoints.
    pub fn apply(&mut self, part: &mut WorkerInterval) {
        for s in part.servers.iter_mut().filter(|s| !s.overflow) {
            s.endpoint = self.endpoint(s.endpoint);
        }
        for f in &mut part.flows {
            f.client = self.endpoint(f.client);
            f.server = self.endpoint(f.server);
            if let Some(t) = &mut f.tunnel {
                t.outer_src = self.addr(t.outer_src.into()).to_ip();
                t.outer_dst = self.addr(t.outer_dst.into()).to_ip();
            }
        }
    }

    /// The first `n` bits of `x` (left-aligned), each flipped by its one-time-pad bit.
    fn bits(&self, x: u128, n: u32) -> u128 {
        let mut otp = 0u128;
        for i in 0..n {
            // The input's first i bits, then the pad's remaining bits.
            let prefix_mask = if i == 0 { 0 } else { u128::MAX << (128 - i) };
            let input = (x & prefix_mask) | (self.pad & !prefix_mask);
            let mut block = aes::Block::from(input.to_be_bytes());
            self.cipher.encrypt_block(&mut block);
            let first_bit = u128::from(block[0] >> 7);
            otp |= first_bit << (127 - i);
        }
        x ^ otp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Addr {
        Addr::from(s.parse::<std::net::IpAddr>().unwrap())
    }

    fn common_prefix(a: Addr, b: Addr) -> u32 {
        let (a, b) = (u128::from_be_bytes(a.0), u128::from_be_bytes(b.0));
        (a ^ b).leading_zeros()
    }

    #[test]
    fn prefixes_are_preserved_exactly_and_families_kept() {
        let mut an = Anonymizer::new(&[7u8; 32]);
        let addrs = [
            "10.0.0.1",
            "10.0.0.2",
            "10.0.1.1",
            "10.200.3.4",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8:1::1",
            "fe80::1",
        ]
        .map(v4);
        for &a in &addrs {
            let x = an.addr(a);
            assert_ne!(x, a, "{a:?} unchanged");
            assert_eq!(x.is_v4(), a.is_v4());
            assert_eq!(an.addr(a), x, "deterministic");
            for &b in &addrs {
                if a.is_v4() == b.is_v4() && a != b {
                    assert_eq!(
                        common_prefix(an.addr(a), an.addr(b)),
                        common_prefix(a, b),
                        "{a:?} {b:?}"
                    );
                }
            }
        }
        // Another key, another mapping.
        let mut other = Anonymizer::new(&[8u8; 32]);
        assert_ne!(other.addr(addrs[0]), an.addr(addrs[0]));
    }

    #[test]
    fn key_files_raw_or_hex_and_clear_errors() {
        let dir = std::env::temp_dir();
        let raw = dir.join(format!("tcpulse-key-raw-{}", std::process::id()));
        let hex = dir.join(format!("tcpulse-key-hex-{}", std::process::id()));
        let bad = dir.join(format!("tcpulse-key-bad-{}", std::process::id()));
        std::fs::write(&raw, [7u8; 32]).unwrap();
        std::fs::write(&hex, format!("{}\n", "07".repeat(32))).unwrap();
        std::fs::write(&bad, b"short").unwrap();
        let a = v4("10.1.2.3");
        let mut from_raw = Anonymizer::from_key_file(&raw).unwrap();
        let mut from_hex = Anonymizer::from_key_file(&hex).unwrap();
        assert_eq!(from_raw.addr(a), Anonymizer::new(&[7u8; 32]).addr(a));
        assert_eq!(from_hex.addr(a), from_raw.addr(a));
        let e = Anonymizer::from_key_file(&bad).err().unwrap().to_string();
        assert!(
            e.contains("32 bytes or 64 hex digits") && e.contains("5 bytes"),
            "{e}"
        );
        let e = Anonymizer::from_key_file(&dir.join("no-such-key-file"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("head -c 32"), "{e}");
        for f in [raw, hex, bad] {
            std::fs::remove_file(f).unwrap();
        }
    }
}
