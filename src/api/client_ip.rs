//! The client's address for the login lockout, the audit and the logs: the TCP peer, unless the
//! peer is one of `RZMON_TRUSTED_PROXIES`; then the forwarding chain (`Forwarded: for=`, else
//! `X-Forwarded-For`) is walked from the right, skipping trusted hops, and the first untrusted
//! hop is the client. From any other peer those headers are ignored (anyone can send them).

use crate::cidr::Cidr;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use warp::Filter;
use warp::http::HeaderMap;

/// The TCP peer of the request: what our server attached (`server::Peer`), else warp's own
/// (`warp::test` requests). Use this, never `warp::addr::remote()` alone, which is `None` under
/// our server.
pub fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<super::server::Peer>()
        .and(warp::addr::remote())
        .map(
            |ours: Option<super::server::Peer>, warp: Option<SocketAddr>| {
                ours.map(|p| p.0).or(warp)
            },
        )
}

pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in chain(headers).into_iter().rev() {
        let Some(ip) = hop else {
            break; // an unreadable hop: trust nothing left of it
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The hops named by the forwarding headers, leftmost (the original client) first.
fn chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<Option<IpAddr>> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.eq_ignore_ascii_case("for").then(|| parse_hop(v))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(s) => s.split(',').map(parse_hop).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:80`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    s.strip_prefix('[')?
        .split(']')
        .next()?
        .parse::<IpAddr>()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                warp::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn only_trusted_peers_may_name_the_client() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = Some("10.0.0.2:5000".parse().unwrap());
        let stranger = Some("192.0.2.9:5000".parse().unwrap());
        let xff = h(&[("x-forwarded-for", "198.51.100.7, 10.0.0.3")]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_ip(stranger, &xff, &trusted), Some(ip("192.0.2.9")));
        assert_eq!(client_ip(proxy, &xff, &trusted), Some(ip("198.51.100.7")));
        assert_eq!(client_ip(proxy, &xff, &[]), Some(ip("10.0.0.2")));
        // A spoofed leftmost entry does not help: the rightmost untrusted hop counts.
        let spoof = h(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(client_ip(proxy, &spoof, &trusted), Some(ip("198.51.100.7")));
        let fwd = h(&[(
            "forwarded",
            r#"for="[2001:db8::17]:4711";proto=https, for=10.0.0.3"#,
        )]);
        assert_eq!(client_ip(proxy, &fwd, &trusted), Some(ip("2001:db8::17")));
        let junk = h(&[("x-forwarded-for", "nonsense")]);
        assert_eq!(client_ip(proxy, &junk, &trusted), Some(ip("10.0.0.2")));
        assert_eq!(
            client_ip(proxy, &HeaderMap::new(), &trusted),
            Some(ip("10.0.0.2"))
        );
    }
}
