//! The dashboard address that notifications link to when `RZMON_PUBLIC_URL` is not set: the
//! host a phone on the same network most likely reaches (the listener's own address if it is
//! bound to one, else a fully qualified host name, else the first non-loopback IPv4 address,
//! else the host name) with the HTTPS port when TLS is on, else the HTTP port.

use std::net::{IpAddr, SocketAddr};

/// `http(s)://host[:port]` for the dashboard listeners `http` and `https` (TLS on); `None`
/// without a listener.
pub fn default_url(http: Option<SocketAddr>, https: Option<SocketAddr>) -> Option<String> {
    let (scheme, addr, usual) = match (https, http) {
        (Some(a), _) => ("https", a, 443),
        (None, Some(a)) => ("http", a, 80),
        (None, None) => return None,
    };
    let host = if addr.ip().is_unspecified() {
        machine_host()
    } else {
        host_text(addr.ip())
    };
    Some(if addr.port() == usual {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{}", addr.port())
    })
}

/// How this machine is reached from the LAN, for a listener on every interface.
fn machine_host() -> String {
    let name = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| crate::tls::generate::valid_name(h) && h != "localhost");
    if let Some(n) = name.as_ref().filter(|n| n.contains('.')) {
        return n.to_ascii_lowercase();
    }
    let ipv4 = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
            IpAddr::V6(_) => false,
        });
    match (ipv4, name) {
        (Some(ip), _) => ip.to_string(),
        (None, Some(n)) => n.to_ascii_lowercase(),
        (None, None) => "localhost".into(),
    }
}

fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_address_scheme_and_port() {
        let a = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert_eq!(
            default_url(a("127.0.0.1:8080"), None).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            default_url(a("192.168.1.5:80"), None).as_deref(),
            Some("http://192.168.1.5")
        );
        // TLS on: the HTTPS port wins, the plain one only redirects.
        assert_eq!(
            default_url(a("10.0.0.2:8080"), a("10.0.0.2:443")).as_deref(),
            Some("https://10.0.0.2")
        );
        assert_eq!(
            default_url(None, a("[fd00::1]:8443")).as_deref(),
            Some("https://[fd00::1]:8443")
        );
        assert_eq!(default_url(None, None), None);
        // On every interface: some host of this machine, never the unspecified address.
        let any = default_url(a("0.0.0.0:8080"), None).unwrap();
        assert!(
            any.starts_with("http://") && any.ends_with(":8080"),
            "{any}"
        );
        assert!(!any.contains("0.0.0.0"), "{any}");
    }
}
