//! Does this node hold the keepalived VIP right now?
//!
//! The node holding the VIP serves users, so its log is the demand signal
//! and it publishes the plan; the other node warms itself from that plan so
//! a failover lands on a warm cache. The answer comes from the addresses on
//! local interfaces (`ip -o addr show`, what keepalived itself changes),
//! behind the [`LocalAddrs`] seam so tests can fake a node.

use std::io;
use std::net::IpAddr;
use std::process::Command;

/// Source of the addresses configured on this node's interfaces.
pub trait LocalAddrs {
    /// Every address on every local interface.
    fn addrs(&self) -> io::Result<Vec<IpAddr>>;
}

/// The real source: `ip -o addr show` (iproute2, present on every Pi image).
#[derive(Debug, Default)]
pub struct IpCommand;

impl LocalAddrs for IpCommand {
    fn addrs(&self) -> io::Result<Vec<IpAddr>> {
        let output = Command::new("ip").args(["-o", "addr", "show"]).output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "ip -o addr show: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(parse_ip_o_addr(&String::from_utf8_lossy(&output.stdout)))
    }
}

/// A fixed list, for tests.
#[derive(Debug, Default)]
pub struct Fixed(pub Vec<IpAddr>);

impl LocalAddrs for Fixed {
    fn addrs(&self) -> io::Result<Vec<IpAddr>> {
        Ok(self.0.clone())
    }
}

/// Parse `ip -o addr show` output:
/// `4: eth0    inet 192.0.2.2/24 brd … scope global eth0\ …`.
pub fn parse_ip_o_addr(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Whether `vip` is on a local interface.
pub fn holds(source: &dyn LocalAddrs, vip: IpAddr) -> io::Result<bool> {
    Ok(source.addrs()?.contains(&vip))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever
4: eth0    inet 10.213.0.20/24 brd 10.213.0.255 scope global eth0\\       valid_lft forever preferred_lft forever
4: eth0    inet 10.213.0.100/32 scope global eth0\\       valid_lft forever preferred_lft forever
4: eth0    inet6 fe80::fc:ff:fe00:1/64 scope link \\       valid_lft forever preferred_lft forever
";

    #[test]
    fn parses_v4_and_v6_including_the_secondary_vip() {
        let addrs = parse_ip_o_addr(SAMPLE);
        assert_eq!(addrs.len(), 5);
        assert!(holds(&Fixed(addrs.clone()), "10.213.0.100".parse().unwrap()).unwrap());
        assert!(!holds(&Fixed(addrs.clone()), "10.213.0.101".parse().unwrap()).unwrap());
        assert!(holds(&Fixed(addrs), "fe80::fc:ff:fe00:1".parse().unwrap()).unwrap());
    }

    #[test]
    fn the_real_command_sees_loopback() {
        let addrs = IpCommand.addrs().expect("ip -o addr show");
        assert!(addrs.contains(&"127.0.0.1".parse().unwrap()), "{addrs:?}");
        assert!(!addrs.contains(&"127.0.0.2".parse().unwrap()));
    }
}
