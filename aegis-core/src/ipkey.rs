//! Addresses as 16-byte keys that sort in address order, so CIDR filters are range scans.

use std::net::{IpAddr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// The first 12 bytes of an IPv4 address's key (its IPv4-mapped IPv6 form).
pub(crate) const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// The 16-byte key of an address, IPv4 as its IPv4-mapped IPv6 form (the
/// embedded store writes IPv4 keys in 5 bytes, in the same order).
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a key made by [`ip_key`].
pub fn ip_from_key(key: &[u8]) -> Option<IpAddr> {
    let octets: [u8; 16] = key.try_into().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(octets)).to_canonical())
}

/// The key of the first address in `key`'s network as
/// [`network_of`](crate::query::network_of) draws it (/24 for IPv4, /64 for
/// IPv6): addresses grouped by network without leaving their keys.
pub fn network_key(mut key: [u8; 16]) -> [u8; 16] {
    if key[..12] == V4_MAPPED {
        key[15] = 0;
    } else {
        key[8..].fill(0);
    }
    key
}

/// Lower-case hex digits of `bytes` (address keys and event ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex digits made by [`hex`]; `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The first and last key inside a network.
pub fn network_range(net: IpNetwork) -> ([u8; 16], [u8; 16]) {
    (ip_key(net.network()), ip_key(net.broadcast_or_last()))
}

trait LastAddress {
    fn broadcast_or_last(&self) -> IpAddr;
}

impl LastAddress for IpNetwork {
    fn broadcast_or_last(&self) -> IpAddr {
        match self {
            IpNetwork::V4(n) => IpAddr::V4(n.broadcast()),
            IpNetwork::V6(n) => {
                let host_bits = 128 - u32::from(n.prefix());
                let mask = u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
                let mask = if host_bits == 0 { 0 } else { mask };
                IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | mask))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_ranges_cover_networks() {
        for ip in ["203.0.113.7", "2001:db8::5", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_from_key(&ip_key(ip)), Some(ip));
        }
        let (lo, hi) = network_range("2001:db8::/32".parse().unwrap());
        assert_eq!(ip_from_key(&lo).unwrap().to_string(), "2001:db8::");
        assert_eq!(
            ip_from_key(&hi).unwrap().to_string(),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        let (lo, hi) = network_range("198.51.100.0/24".parse().unwrap());
        assert_eq!(ip_from_key(&lo).unwrap().to_string(), "198.51.100.0");
        assert_eq!(ip_from_key(&hi).unwrap().to_string(), "198.51.100.255");
        let (_, hi) = network_range("2001:db8::1/128".parse().unwrap());
        assert_eq!(ip_from_key(&hi).unwrap().to_string(), "2001:db8::1");
    }

    #[test]
    fn a_network_key_is_the_key_of_the_network_drawn_around_an_address() {
        for ip in [
            "203.0.113.7",
            "0.0.0.255",
            "2001:db8:1:2:3:4:5:6",
            "::ffff:0:1",
            "::1",
        ] {
            let ip: IpAddr = ip.parse::<IpAddr>().unwrap().to_canonical();
            let network = crate::query::network_of(ip);
            assert_eq!(network_key(ip_key(ip)), ip_key(network.network()), "{ip}");
        }
    }
}
