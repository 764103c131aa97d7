"""Who is calling: the client's address through trusted reverse proxies (``server.auth.trusted_proxies``).

A request from a trusted proxy carries the address it came from in ``X-Forwarded-For``; each proxy
appends the address it received from. The client is the rightmost address that is not a trusted
proxy (walking from the right, over trusted hops only): an address a client wrote into the header
itself sits left of that and is never believed. A request from anywhere else is its peer's own
address, whatever headers it sends. Login throttling and the audit log key on this address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from fastapi import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def is_trusted(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def forwarded_client(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy, else the rightmost untrusted
    address of ``X-Forwarded-For`` (the leftmost when every hop is trusted)."""
    if not is_trusted(peer, trusted) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a hop that is no address: the chain cannot be followed past it
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def trusted_proxies(request: Request) -> tuple[Network, ...]:
    return networks(tuple(request.app.state.settings.auth.trusted_proxies))


def peer_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def client_address(request: Request) -> str:
    return forwarded_client(peer_address(request), request.headers.get("x-forwarded-for"), trusted_proxies(request))


def from_trusted_proxy(request: Request) -> bool:
    """The request's own peer is a trusted proxy (so its sign-in header may be believed)."""
    return is_trusted(peer_address(request), trusted_proxies(request))
