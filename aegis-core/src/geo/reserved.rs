//! Private and reserved address ranges: labelled, never looked up.

use std::net::IpAddr;
use std::sync::LazyLock;

use ipnetwork::IpNetwork;

/// (network, label) for every range that is not a public unicast address.
const RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network (RFC 1122)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "unique local (ULA)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// [`RANGES`] parsed once.
static PARSED: LazyLock<Vec<(IpNetwork, &'static str)>> = LazyLock::new(|| {
    RANGES
        .iter()
        .filter_map(|(net, label)| Some((net.parse().ok()?, *label)))
        .collect()
});

/// The label of the private or reserved range holding `ip`, if any.
pub fn reserved_range(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    PARSED
        .iter()
        .find_map(|(net, label)| net.contains(ip).then_some(*label))
}

/// The first private or reserved range that shares an address with `net`, as
/// (range, label).
pub fn reserved_overlap(net: IpNetwork) -> Option<(IpNetwork, &'static str)> {
    PARSED
        .iter()
        .find(|(range, _)| overlap(*range, net))
        .copied()
}

/// Whether two networks share an address (of two CIDR blocks, one then holds the other).
pub fn overlap(a: IpNetwork, b: IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_parses() {
        assert_eq!(PARSED.len(), RANGES.len());
    }

    #[test]
    fn labels() {
        for (ip, want) in [
            ("10.1.2.3", Some("private (RFC 1918)")),
            ("::ffff:192.168.1.1", Some("private (RFC 1918)")),
            ("100.64.0.1", Some("carrier-grade NAT (RFC 6598)")),
            ("fd00::1", Some("unique local (ULA)")),
            ("2001:db8::5", Some("documentation")),
            ("127.0.0.1", Some("loopback")),
            ("8.8.8.8", None),
            ("2a00:1450::1", None),
        ] {
            assert_eq!(reserved_range(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn overlaps() {
        let net = |s: &str| s.parse::<IpNetwork>().unwrap();
        assert_eq!(
            reserved_overlap(net("10.1.0.0/16")).unwrap().1,
            "private (RFC 1918)"
        );
        // A wider network holding one.
        assert_eq!(
            reserved_overlap(net("10.0.0.0/7")).unwrap().1,
            "private (RFC 1918)"
        );
        assert!(reserved_overlap(net("8.8.8.0/24")).is_none());
    }
}
