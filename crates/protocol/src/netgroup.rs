//! Network groups, and which addresses a peer may teach us.
//!
//! A *network group* is the part of an address that one operator can hardly choose many of:
//! the first 16 bits of an IPv4 address, the first 32 of an IPv6 one (as Bitcoin Core groups
//! them without its AS map). Connections from one group compete with each other for inbound
//! slots before they compete with anyone else (`node::eviction`). An address that is not a
//! numeric IP and port (a unix socket path, a simulated node's name, an in-memory pipe) is a
//! group of its own: only the local user makes those.
//!
//! **One outbound peer per public network group** (Bitcoin Core's rule): an attacker must
//! hold addresses in as many groups as we have outbound slots to surround us. Loopback,
//! private and link-local addresses are exempt ([`is_public`]): a test network on one
//! machine, or a LAN, is one group.
//!
//! Peers may only teach numeric `IP:port` addresses with a real IP and port: a host name
//! would make us resolve what an attacker chose, and a unix socket path would make us dial a
//! file on this machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The network group of `address` (see the module docs).
pub fn net_group(address: &str) -> String {
    match address.parse::<SocketAddr>().map(|socket| socket.ip()) {
        Ok(IpAddr::V4(ip)) => {
            let [a, b, _, _] = ip.octets();
            format!("{a}.{b}")
        }
        Ok(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(ip) => {
                let [a, b, _, _] = ip.octets();
                format!("{a}.{b}")
            }
            None => {
                let segments = ip.segments();
                format!("{:x}:{:x}", segments[0], segments[1])
            }
        },
        Err(_) => address.to_owned(),
    }
}

/// Whether `address` is a numeric address on the public internet: not loopback, private,
/// link-local, unique-local, unspecified, broadcast or multicast.
pub fn is_public(address: &str) -> bool {
    let public_v4 = |ip: Ipv4Addr| {
        !(ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast())
    };
    match address.parse::<SocketAddr>().map(|socket| socket.ip()) {
        Ok(IpAddr::V4(ip)) => public_v4(ip),
        Ok(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(ip) => public_v4(ip),
            None => {
                !(ip.is_loopback()
                    || ip.is_unique_local()
                    || ip.is_unicast_link_local()
                    || ip.is_unspecified()
                    || ip.is_multicast())
            }
        },
        Err(_) => false,
    }
}

/// Whether a peer may teach us `address`: a numeric IP (not unspecified, not multicast)
/// and a port other than 0.
pub fn is_learnable(address: &str) -> bool {
    match address.parse::<SocketAddr>() {
        Ok(socket) => {
            let ip = socket.ip();
            socket.port() != 0 && !ip.is_unspecified() && !ip.is_multicast()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_the_first_16_bits_of_ipv4_and_32_of_ipv6() {
        assert_eq!(net_group("203.0.113.7:8333"), "203.0");
        assert_eq!(net_group("203.0.200.9:1"), "203.0");
        assert_ne!(net_group("203.1.113.7:8333"), net_group("203.0.113.7:8333"));
        assert_eq!(net_group("[2001:db8:1:2::1]:8333"), "2001:db8");
        assert_eq!(net_group("[::ffff:203.0.113.7]:8333"), "203.0");
        assert_eq!(
            net_group("/tmp/powchain-nodes/node.3"),
            "/tmp/powchain-nodes/node.3"
        );
    }

    #[test]
    fn public_addresses_are_those_outside_private_and_local_ranges() {
        assert!(is_public("203.0.113.7:8333"));
        assert!(is_public("[2001:db8::1]:8333"));
        assert!(is_public("[::ffff:198.51.100.1]:8333"));
        for local in [
            "127.0.0.1:8333",
            "10.1.2.3:8333",
            "172.16.0.1:8333",
            "192.168.1.1:8333",
            "169.254.0.1:8333",
            "[::1]:8333",
            "[fd00::1]:8333",
            "[fe80::1]:8333",
            "[::ffff:192.168.1.1]:8333",
            "/tmp/powchain-nodes/node.3",
            "node7",
        ] {
            assert!(!is_public(local), "{local}");
        }
    }

    #[test]
    fn only_numeric_addresses_with_a_port_are_learnable() {
        assert!(is_learnable("203.0.113.7:8333"));
        assert!(is_learnable("[2001:db8::1]:8333"));
        assert!(!is_learnable("example.com:8333"), "a host name");
        assert!(!is_learnable("/tmp/powchain-nodes/node.3"), "a socket path");
        assert!(!is_learnable("203.0.113.7"), "no port");
        assert!(!is_learnable("203.0.113.7:0"));
        assert!(!is_learnable("0.0.0.0:8333"));
        assert!(!is_learnable("224.0.0.1:8333"));
        assert!(!is_learnable("node7"));
    }
}
