//! Address keys as this store keeps them: an IPv4 address in 5 bytes, not 16.
//!
//! A stored key is a tag, then the address's 4 bytes (IPv4) or 16 (IPv6).
//! The tag keeps stored keys in the order of the 16-byte keys of
//! [`crate::ipkey`], where IPv4 sits inside IPv6 as `::ffff:a.b.c.d`: 0 for
//! IPv6 below that block, 1 for IPv4, 2 for IPv6 above it. A network is
//! therefore still one range of keys, and ties ranked by address fall as
//! before. Migration 12 converts older stores with the same rule.

use std::net::IpAddr;

use rusqlite::types::{ToSql, ToSqlOutput, Value, ValueRef};

use crate::ipkey::{ip_from_key, ip_key, V4_MAPPED};

/// A 16-byte address key in its stored form, bound to SQL as a blob.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stored {
    bytes: [u8; 17],
    len: usize,
}

impl Stored {
    pub(super) fn of(key: &[u8; 16]) -> Self {
        let mut bytes = [0; 17];
        let len = if key[..12] == V4_MAPPED {
            bytes[0] = 1;
            bytes[1..5].copy_from_slice(&key[12..]);
            5
        } else {
            bytes[0] = if key[..12] < V4_MAPPED[..] { 0 } else { 2 };
            bytes[1..].copy_from_slice(key);
            17
        };
        Stored { bytes, len }
    }

    pub(super) fn ip(ip: IpAddr) -> Self {
        Stored::of(&ip_key(ip))
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl ToSql for Stored {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Blob(self.as_bytes())))
    }
}

impl From<Stored> for Value {
    fn from(key: Stored) -> Self {
        Value::Blob(key.as_bytes().to_vec())
    }
}

/// The 16-byte key of a stored one; `None` when `stored` is not one.
pub(super) fn unstored(stored: &[u8]) -> Option<[u8; 16]> {
    let mut key = [0; 16];
    match stored {
        [1, v4 @ ..] if v4.len() == 4 => {
            key[..12].copy_from_slice(&V4_MAPPED);
            key[12..].copy_from_slice(v4);
        }
        [0 | 2, v6 @ ..] if v6.len() == 16 => key.copy_from_slice(v6),
        _ => return None,
    }
    Some(key)
}

/// The address of a stored key; `None` when `stored` is not one.
pub(super) fn ip_of(stored: &[u8]) -> Option<IpAddr> {
    unstored(stored).and_then(|key| ip_from_key(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses in the order of their 16-byte keys, from each side of the
    /// IPv4 block and its edges.
    const ORDERED: [&str; 9] = [
        "::",
        "::1",
        "::fffe:ffff:ffff",
        "0.0.0.0",
        "192.0.2.7",
        "255.255.255.255",
        "::1:0:0:0",
        "2001:db8::5",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ];

    #[test]
    fn stored_keys_round_trip_and_keep_the_order_of_addresses() {
        let ips: Vec<IpAddr> = ORDERED.iter().map(|s| s.parse().unwrap()).collect();
        let stored: Vec<Stored> = ips.iter().map(|ip| Stored::ip(*ip)).collect();
        for (ip, s) in ips.iter().zip(&stored) {
            assert_eq!(ip_of(s.as_bytes()), Some(*ip));
            assert_eq!(s.as_bytes().len(), if ip.is_ipv4() { 5 } else { 17 });
        }
        for pair in stored.windows(2) {
            assert!(pair[0].as_bytes() < pair[1].as_bytes(), "{pair:?}");
        }
        // An IPv4 address written as IPv6 is the same key.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Stored::ip(mapped).as_bytes(), stored[4].as_bytes());
    }

    #[test]
    fn anything_else_is_not_a_stored_key() {
        for bad in [
            &[][..],
            &[1, 2, 3, 4],
            &[1, 2, 3, 4, 5, 6],
            &[3, 0, 0, 0, 0],
            &[0; 16],
        ] {
            assert_eq!(unstored(bad), None, "{bad:?}");
        }
    }
}
