"""Outbound HTTP to customer-chosen URLs (webhooks) that cannot be pointed at the operator's network.

The host is resolved once, every address is vetted, and the connection goes to a vetted address (the
Host header, TLS SNI and certificate check still use the name): a DNS answer that changes between the
check and the connect (rebinding) cannot reach a private address. Redirects are never followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: operator-local translation
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


class BlockedTarget(Exception):
    """The URL's host resolves to an address customers may not reach (loopback, private, link-local...)."""


def address_is_public(address: str) -> bool:
    """True for globally routable unicast addresses; IPv6 forms that embed an IPv4 address (mapped,
    NAT64, 6to4, IPv4-compatible) are judged by that IPv4 address, operator-local NAT64 is never public."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return address_is_public(str(ip.ipv4_mapped))
        if ip.sixtofour is not None:
            return address_is_public(str(ip.sixtofour))
        if ip in NAT64_WELL_KNOWN or ip in IPV4_COMPATIBLE:
            return address_is_public(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip in NAT64_LOCAL_USE:
            return False
    return ip.is_global and not ip.is_multicast


def resolve_public(host: str, port: int, *, allow_private: bool = False) -> list[str]:
    """The host's addresses, all of them vetted; BlockedTarget if any is not public (OSError if unresolvable)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        bad = [a for a in addresses if not address_is_public(a)]
        if bad:
            raise BlockedTarget(f"{host} resolves to a non-public address ({bad[0]})")
    return addresses


@dataclass(frozen=True)
class Response:
    status: int


def post_pinned(url: str, body: bytes, headers: dict, *, timeout: float = 10, allow_private: bool = False) -> Response:
    """POST `body` to an http(s) URL, connecting only to an address resolve_public() vetted; no redirects."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedTarget(f"not an http(s) URL: {url[:100]}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve_public(parts.hostname, port, allow_private=allow_private)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, port, timeout=timeout)

    def connect_vetted(address, timeout=None, source_address=None):
        error: OSError | None = None
        for ip in addresses:  # the vetted addresses only, whatever DNS says now
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    conn._create_connection = connect_vetted  # http.client's hook for opening the socket
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=headers)
        return Response(status=conn.getresponse().status)
    finally:
        conn.close()
