//! Who is logging in: the client's IP address, from the connection's peer address
//! and, behind trusted proxies only, from `X-Forwarded-For` or `Forwarded`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::{Extensions, HeaderMap};
use ipnet::IpNet;

/// The connection's peer address, as the server accepted it: put it in each
/// request's extensions so that the login throttle can count failures per client
/// address (and the logs name the client).
///
/// axum's `ConnectInfo<SocketAddr>` (feature `axum`) is read as well, so axum apps
/// served with `into_make_service_with_connect_info::<SocketAddr>()` need nothing
/// more. With hyper-util, insert it where the connection is accepted:
///
/// ```
/// use std::net::SocketAddr;
/// use http::Request;
/// use tower_oauth2_password::endpoint::PeerAddr;
///
/// # let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
/// // let (stream, peer) = listener.accept().await?;
/// let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
///     request.extensions_mut().insert(PeerAddr(peer));
///     // app.clone().oneshot(request)
/// #   async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }
/// });
/// # let _ = service;
/// ```
///
/// With tonic, copy `TcpConnectInfo::remote_addr()` from the request extensions
/// into a `PeerAddr` in a layer inside this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The proxies whose word on the client's address is believed (default: none).
///
/// Behind a reverse proxy or load balancer every connection comes from the proxy,
/// so the client's address is in a header the proxy adds. Anyone can send that
/// header, so it is read only from a connection whose peer is one of these
/// networks, and only the addresses proxies appended are believed: the header is
/// read from the right, skipping trusted proxies, and the first address that is
/// not one is the client.
///
/// ```
/// use tower_oauth2_password::endpoint::TrustedProxies;
///
/// let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8", "::1"]).expect("networks");
/// let proxies = TrustedProxies::forwarded(["192.0.2.7"]).expect("networks");
/// # let _ = proxies;
/// assert!(TrustedProxies::x_forwarded_for(["not an address"]).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

/// Which header the trusted proxies set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ForwardedHeader {
    #[default]
    XForwardedFor,
    /// RFC 7239.
    Forwarded,
}

/// A trusted proxy that is neither an IP address nor a network (`10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProxy(String);

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an IP address or network: {:?}", self.0)
    }
}

impl std::error::Error for InvalidProxy {}

impl TrustedProxies {
    /// Proxies at `networks` (addresses, or networks such as `10.0.0.0/8`) that
    /// append the client's address to `X-Forwarded-For`.
    pub fn x_forwarded_for<'a>(
        networks: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidProxy> {
        Self::parse(networks, ForwardedHeader::XForwardedFor)
    }

    /// Proxies at `networks` that append `for=` elements to `Forwarded` (RFC 7239).
    pub fn forwarded<'a>(
        networks: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidProxy> {
        Self::parse(networks, ForwardedHeader::Forwarded)
    }

    fn parse<'a>(
        networks: impl IntoIterator<Item = &'a str>,
        header: ForwardedHeader,
    ) -> Result<Self, InvalidProxy> {
        let networks = networks
            .into_iter()
            .map(|network| {
                IpNet::from_str(network)
                    .or_else(|_| IpAddr::from_str(network).map(IpNet::from))
                    .map_err(|_| InvalidProxy(network.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks, header })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// The client's address: the peer's, or behind trusted proxies the last
    /// untrusted address they appended. `None` when the server put no peer address
    /// in the extensions.
    pub(crate) fn client_ip(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = peer_ip(extensions)?.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        // From the nearest hop outwards; a malformed entry ends the walk at the
        // last address a trusted proxy vouched for.
        for hop in self.hops(headers).rev() {
            let Some(ip) = hop else { break };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        Some(client)
    }

    /// The scheme and host the client used, as trusted proxies report them: the
    /// `proto=` and `host=` of the `Forwarded` element the outermost trusted proxy
    /// added, or the last `X-Forwarded-Proto` and `X-Forwarded-Host` values (the
    /// header these proxies set decides which). `None` unless the connection's
    /// peer is a trusted proxy: anyone else's word on it is ignored. A scheme other
    /// than `http` or `https` is ignored.
    #[cfg(feature = "dpop")]
    pub(crate) fn forwarded_origin<'h>(
        &self,
        headers: &'h HeaderMap,
        extensions: &Extensions,
    ) -> Option<(Option<&'h str>, Option<&'h str>)> {
        let peer = peer_ip(extensions)?.to_canonical();
        if !self.trusts(peer) {
            return None;
        }
        let (proto, host) = match self.header {
            ForwardedHeader::XForwardedFor => (
                last_value(headers, "x-forwarded-proto"),
                last_value(headers, "x-forwarded-host"),
            ),
            ForwardedHeader::Forwarded => {
                let elements: Vec<&str> = headers
                    .get_all("forwarded")
                    .iter()
                    .flat_map(|value| value.to_str().unwrap_or("").split(','))
                    .collect();
                // From the nearest proxy's element outwards, while the hop it
                // describes is itself a trusted proxy.
                let mut chosen = None;
                for element in elements.into_iter().rev() {
                    chosen = Some(element);
                    match forwarded_param(element, "for").and_then(parse_node) {
                        Some(ip) if self.trusts(ip) => continue,
                        _ => break,
                    }
                }
                let element = chosen.unwrap_or("");
                (
                    forwarded_param(element, "proto"),
                    forwarded_param(element, "host"),
                )
            }
        };
        let proto = proto.filter(|proto| matches!(*proto, "http" | "https"));
        Some((proto, host.filter(|host| !host.is_empty())))
    }

    /// Every address in the header, in order (`None` for one that is not an IP
    /// address: `unknown`, an obfuscated name, garbage).
    fn hops<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> impl DoubleEndedIterator<Item = Option<IpAddr>> + 'h {
        let header = self.header;
        let name = match header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        };
        let hops: Vec<Option<IpAddr>> = headers
            .get_all(name)
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
            .map(|element| match header {
                ForwardedHeader::XForwardedFor => parse_node(element.trim()),
                ForwardedHeader::Forwarded => forwarded_param(element, "for").and_then(parse_node),
            })
            .collect();
        hops.into_iter()
    }
}

/// The value of `name` in one element of a `Forwarded` header (RFC 7239 §4:
/// `for=…;proto=…;host=…`), unquoted.
fn forwarded_param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The last comma-separated value of the header `name` (the one the nearest
/// proxy wrote), if any.
#[cfg(feature = "dpop")]
fn last_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    Some(value.rsplit(',').next()?.trim()).filter(|value| !value.is_empty())
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// The peer address the server put in the extensions: ours, or axum's.
fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(PeerAddr(addr)) = extensions.get() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    None
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedProxies")
            .field("networks", &self.networks)
            .field("header", &self.header)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn client(
        proxies: &TrustedProxies,
        peer: &str,
        headers: &[(&'static str, &str)],
    ) -> Option<IpAddr> {
        let mut extensions = Extensions::new();
        extensions.insert(PeerAddr(peer.parse().unwrap()));
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        proxies.client_ip(&map, &extensions)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let headers = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client(&none, "192.0.2.1:1", &headers), ip("192.0.2.1"));
        assert_eq!(none.client_ip(&HeaderMap::new(), &Extensions::new()), None);
    }

    #[test]
    fn an_untrusted_peer_cannot_pick_its_address() {
        let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap();
        let headers = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client(&proxies, "192.0.2.1:1", &headers), ip("192.0.2.1"));
    }

    #[test]
    fn the_last_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let headers = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")];
        assert_eq!(client(&proxies, "10.0.0.1:1", &headers), ip("203.0.113.9"));
        // Several header lines read as one list.
        let headers = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(&proxies, "10.0.0.1:1", &headers), ip("203.0.113.9"));
        // Garbage stops the walk at the proxy that appended it.
        let headers = [("x-forwarded-for", "203.0.113.9, garbage")];
        assert_eq!(client(&proxies, "10.0.0.1:1", &headers), ip("10.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(client(&proxies, "10.0.0.1:1", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_for_elements_with_ports_and_brackets() {
        let proxies = TrustedProxies::forwarded(["192.0.2.7", "2001:db8::/32"]).unwrap();
        let headers = [(
            "forwarded",
            r#"for=198.51.100.1;proto=https, for="[2001:db8:cafe::17]:4711", For=192.0.2.7"#,
        )];
        assert_eq!(
            client(&proxies, "192.0.2.7:1", &headers),
            ip("198.51.100.1")
        );
        // X-Forwarded-For is not what these proxies set.
        let headers = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client(&proxies, "192.0.2.7:1", &headers), ip("192.0.2.7"));
    }

    #[cfg(feature = "dpop")]
    #[test]
    fn forwarded_origin_only_from_trusted_proxies() {
        let origin = |proxies: &TrustedProxies, peer: &str, headers: &[(&'static str, &str)]| {
            let mut extensions = Extensions::new();
            extensions.insert(PeerAddr(peer.parse().unwrap()));
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(*name, HeaderValue::from_str(value).unwrap());
            }
            proxies
                .forwarded_origin(&map, &extensions)
                .map(|(proto, host)| (proto.map(str::to_owned), host.map(str::to_owned)))
        };
        let some = |proto: &str, host: &str| Some((Some(proto.to_owned()), Some(host.to_owned())));
        let xff = TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap();
        let headers = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example, api.example.com"),
        ];
        assert_eq!(
            origin(&xff, "10.0.0.1:1", &headers),
            some("https", "api.example.com")
        );
        assert_eq!(origin(&xff, "192.0.2.1:1", &headers), None);
        let headers = [("x-forwarded-proto", "gopher")];
        assert_eq!(origin(&xff, "10.0.0.1:1", &headers), Some((None, None)));
        let forwarded = TrustedProxies::forwarded(["192.0.2.7", "10.0.0.0/8"]).unwrap();
        let headers = [(
            "forwarded",
            r#"for=1.1.1.1;proto=http;host=evil.example, for=198.51.100.1;proto=https;host="api.example.com", for=10.0.0.2"#,
        )];
        assert_eq!(
            origin(&forwarded, "192.0.2.7:1", &headers),
            some("https", "api.example.com")
        );
        assert_eq!(origin(&forwarded, "198.51.100.9:1", &headers), None);
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap();
        let headers = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(
            client(&proxies, "[::ffff:10.0.0.1]:1", &headers),
            ip("203.0.113.9")
        );
    }
}
