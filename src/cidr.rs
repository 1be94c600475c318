//! CIDR ranges (`192.168.1.0/24`, `10.0.0.1`, `fd00::/8`) for `RZMON_TRUSTED_PROXIES`. A bare
//! address is its own /32 or /128; IPv4-mapped IPv6 peers match IPv4 ranges.

use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn mask(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    let shift = u32::from(bits - prefix);
    shift >= 128 || (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let err = || format!("{s:?} is not an IP address or CIDR range like 192.168.1.0/24");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| err())?)),
            None => (s, None),
        };
        let net = IpAddr::from_str(addr).map_err(|_| err())?.to_canonical();
        let bits = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(err());
        }
        Ok(Self { net, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let c: Cidr = "192.168.1.0/24".parse().unwrap();
        assert!(c.contains("192.168.1.77".parse().unwrap()));
        assert!(c.contains("::ffff:192.168.1.77".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        let one: Cidr = "10.0.0.1".parse().unwrap();
        assert!(one.contains("10.0.0.1".parse().unwrap()));
        assert!(!one.contains("10.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["", "x", "10.0.0.0/33", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
