//! Where tenants may point the server: the destination policy of monitor webhooks. A tenant
//! names a URL; the server must not become a way into the operator's network (loopback,
//! link-local, private and unique-local addresses, cloud metadata at 169.254.169.254), so every
//! address a destination resolves to is checked, when the webhook is saved and again at
//! connect time (the delivery agent resolves through [`PolicyResolver`], so a name that
//! changes its answer after the check, DNS rebinding, is refused too). Operators allow
//! internal receivers by CIDR (`--webhook-allow-cidr`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// An address block, `10.0.0.0/8` or `fd00::/8` (a bare address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Why an address is not a public one, or `None` when it is.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata lives here)")
    } else if ip.is_private() {
        Some("private")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("shared address space (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("multicast, broadcast or reserved")
    } else if (o[0] == 192 && o[1] == 0 && o[2] == 0) || (o[0] == 198 && (18..20).contains(&o[1])) {
        Some("reserved for protocols or benchmarking")
    } else {
        None
    }
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
        Some("link-local")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        Some("unique local (private)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if seg[0] == 0x64 && seg[1] == 0xff9b || seg[0] == 0x2002 {
        // NAT64 and 6to4 carry an IPv4 address: judge that one.
        let v4 = if seg[0] == 0x2002 {
            Ipv4Addr::new(
                (seg[1] >> 8) as u8,
                seg[1] as u8,
                (seg[2] >> 8) as u8,
                seg[2] as u8,
            )
        } else {
            Ipv4Addr::new(
                (seg[6] >> 8) as u8,
                seg[6] as u8,
                (seg[7] >> 8) as u8,
                seg[7] as u8,
            )
        };
        v4_reason(v4)
    } else if seg[0..6] == [0, 0, 0, 0, 0, 0] {
        Some("IPv4-compatible (deprecated)")
    } else {
        None
    }
}

/// The operator's destination policy: public addresses, plus the allowed blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    pub allowed: Vec<Cidr>,
}

impl DestinationPolicy {
    /// `Err` says why `ip` may not be a destination.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allowed.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        match non_public_reason(ip) {
            None => Ok(()),
            Some(why) => Err(format!(
                "{} is a {why} address; the operator can allow it with --webhook-allow-cidr",
                canonical(ip)
            )),
        }
    }

    /// Resolves `host:port` and checks every address: all must be allowed.
    pub fn resolve(&self, netloc: &str) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = netloc
            .to_socket_addrs()
            .map_err(|e| format!("{netloc} does not resolve ({})", e.kind()))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{netloc} does not resolve"));
        }
        for a in &addrs {
            self.check(a.ip())?;
        }
        Ok(addrs)
    }

    /// Checks a webhook URL as it is saved: its scheme, and its host when that is an address
    /// or resolves now (a name that does not resolve yet is checked at delivery).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{url:?} is not an http(s) URL"));
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        match parsed.host() {
            None => Err(format!("{url:?} has no host")),
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => match self.resolve(&format!("{name}:{port}")) {
                Err(e) if e.contains("does not resolve") => Ok(()),
                other => other.map(|_| ()),
            },
        }
    }
}

/// The delivery agent's resolver: the policy applied at connect time.
pub struct PolicyResolver(pub DestinationPolicy);

impl ureq::Resolver for PolicyResolver {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        self.0
            .resolve(netloc)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &DestinationPolicy, url: &str) -> bool {
        policy.check_url(url).is_err()
    }

    #[test]
    fn internal_destinations_are_refused_in_every_spelling() {
        let p = DestinationPolicy::default();
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
        ] {
            assert!(refused(&p, url), "{url} should be refused");
        }
        for url in ["https://93.184.216.34/hook", "http://[2606:4700::1111]/"] {
            assert!(!refused(&p, url), "{url} is public");
        }
        assert!(refused(&p, "ftp://93.184.216.34/"));
    }

    #[test]
    fn the_operator_allows_blocks() {
        let p = DestinationPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        };
        assert!(!refused(&p, "http://127.0.0.1:9000/"));
        assert!(!refused(&p, "http://[::ffff:127.0.0.2]/"));
        assert!(!refused(&p, "http://[fd12::1]/"));
        assert!(refused(&p, "http://10.0.0.1/"));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!("192.168.0.0/16"
            .parse::<Cidr>()
            .unwrap()
            .contains("192.168.200.1".parse().unwrap()));
    }
}
