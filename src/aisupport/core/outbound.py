"""Requests to addresses a tenant chose (webhook endpoints, web pages to index, model providers) that
cannot be pointed inside our network (decisions 0048, 0052).

A URL's host is resolved here and every address checked (only globally routable unicast addresses,
unless the caller allows private ones, for development or a provider on the operator's own network);
the request then goes to the address that was checked (the Host header and TLS server name stay the
URL's), so a DNS answer that changes between the check and the connection (rebinding) cannot move it.
`GuardedTransport` does this for every request an httpx client sends, each redirect included."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx


class TargetRefused(Exception):
    """The URL names a place we may not send requests to (a private address, a bad scheme)."""


def _allowed(address: str, *, allow_private: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return False
    return allow_private or ip.is_global


LOCAL_NAMES = ("localhost", "localhost.localdomain")


def check_url(url: httpx.URL, *, allow_private: bool) -> None:
    """What can be told of `url` without resolving it (when it is saved): a scheme, a host, https, and
    no address or local name we may not reach. Its addresses are checked on each request."""
    if url.scheme not in ("https", "http") or not url.host:
        raise TargetRefused("only http(s) URLs with a host")
    if url.scheme == "http" and not allow_private:
        raise TargetRefused("https only")
    if url.userinfo:
        raise TargetRefused("no credentials in the URL")
    host = url.host.rstrip(".").lower()
    if not allow_private and (host in LOCAL_NAMES or host.endswith(".localhost")):
        raise TargetRefused("a local name")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return
    if not _allowed(str(literal), allow_private=allow_private):
        raise TargetRefused("an address we may not reach")


async def resolve(url: httpx.URL, *, allow_private: bool) -> str:
    """The address to connect to for `url`; TargetRefused if it, or any address its host has, is not
    one we may reach."""
    check_url(url, allow_private=allow_private)
    try:
        ipaddress.ip_address(url.host)
        addresses = [url.host]
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                url.host, url.port or (443 if url.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except OSError:
            raise TargetRefused("the host does not resolve") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses or not all(_allowed(address, allow_private=allow_private) for address in addresses):
        raise TargetRefused("the host resolves to an address we may not reach")
    return addresses[0]


def pinned(request: httpx.Request, address: str) -> httpx.Request:
    """A copy of `request` sent to `address`, the URL's host still its Host header and TLS server name
    (the original is left as it was: redirects are resolved against it)."""
    target = request.url
    headers = request.headers.copy()
    headers["Host"] = target.host if target.port is None else f"{target.host}:{target.port}"
    return httpx.Request(
        request.method,
        target.copy_with(host=address),
        headers=headers,
        stream=request.stream,
        extensions={**request.extensions, "sni_hostname": target.host},
    )


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that checks and pins every request it sends (see the module's docstring);
    a refused one raises TargetRefused before any connection is made."""

    def __init__(self, *, allow_private: bool, **options: object) -> None:
        self._allow_private = allow_private
        self._inner = httpx.AsyncHTTPTransport(**options)  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        address = await resolve(request.url, allow_private=self._allow_private)
        return await self._inner.handle_async_request(pinned(request, address))

    async def aclose(self) -> None:
        await self._inner.aclose()
