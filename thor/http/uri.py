"""``parse_uri``: split an http(s) URL into what a client needs to send it.

Thor 0.17's ``thor.http.uri.parse_uri``, with its signature, return types
and errors (``UrlError`` for a URL that is not a usable absolute http or
https URL), written for thor. Stricter than Thor 0.17 in two ways: a URL
holding whitespace or a control character is refused (urllib silently
drops some of them), and an IPv6 literal must be a valid IPv6 address.
"""

from __future__ import annotations

from typing import Tuple, Union

from thor.http.error import UrlError, detail_text

__all__ = ["parse_uri"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Bytes a URL may not hold as they are (RFC 3986 2: they are percent-encoded).
_BAD = bytes(range(0x00, 0x21)) + bytes(range(0x7F, 0x100))
_SCHEME = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."
# What a host name may be made of (letters, digits, hyphens, dots), as in
# Thor 0.17; an IP address in dotted form is one too.
_HOST_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."


def parse_uri(uri: Union[bytes, str]) -> Tuple[str, str, int, bytes, bytes]:
    """(scheme, host, port, authority, target) for an absolute http(s) URL.

    ``scheme`` is lower case; ``host`` is as written, an IPv6 address
    without its brackets; ``port`` is the URL's or the scheme's default;
    ``authority`` is the URL's host and port as written, without userinfo;
    ``target`` is the path (``/`` when empty) and query, without the
    fragment. Raises UrlError for anything else, naming the problem.
    """
    if isinstance(uri, str):
        try:
            raw = uri.encode("ascii")
        except UnicodeEncodeError:
            raise UrlError("URL has non-ascii characters") from None
    elif isinstance(uri, (bytes, bytearray, memoryview)):
        raw = bytes(uri)
    else:
        raise TypeError("a URL is bytes or str, not %s" % type(uri).__name__)
    if len(raw.translate(None, _BAD)) != len(raw):
        if max(raw, default=0) > 0x7F:
            raise UrlError("URL has non-ascii characters")
        raise UrlError("URL has whitespace or control characters: %s" % detail_text(raw, 80))
    colon = raw.find(b":")
    scheme_raw = raw[:colon] if colon > 0 else b""
    if scheme_raw.translate(None, _SCHEME) or not scheme_raw[:1].isalpha():
        scheme_raw = b""
    scheme = scheme_raw.decode("ascii").lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        raise UrlError("Unsupported URL scheme '%s'" % scheme)
    rest = raw[colon + 1:]
    if rest[:2] != b"//":
        raise UrlError("URL has no authority (//host)")
    end = len(rest)
    for delimiter in (b"/", b"?", b"#"):
        found = rest.find(delimiter, 2, end)
        if found >= 0:
            end = found
    authority = rest[2:end].rpartition(b"@")[2]
    target = rest[end:].partition(b"#")[0]
    if target[:1] != b"/":
        target = b"/" + target  # an empty path, perhaps with a query

    port_raw = b""
    if authority[:1] == b"[":
        close = authority.find(b"]")
        if close < 0:
            raise UrlError("IPv6 URL missing ]")
        host = authority[1:close].decode("ascii")
        after = authority[close + 1:]
        if after:
            if after[:1] != b":":
                raise UrlError("URL has characters after its IPv6 literal")
            port_raw = after[1:]
        _check_ipv6(host)
    else:
        host_raw, _, port_raw = authority.partition(b":")
        host = host_raw.decode("ascii")
        _check_host_name(host_raw)
    if port_raw:
        if not port_raw.isdigit():
            raise UrlError("Non-integer port '%s' in URL" % port_raw.decode("ascii"))
        port = int(port_raw)
        if not 1 <= port <= 65535:
            raise UrlError("URL port %d out of range" % port)
    else:
        port = default_port  # RFC 3986 3.2.3: an empty port is the default
    return scheme, host, port, authority, target


def _check_host_name(host: bytes) -> None:
    if not host:
        raise UrlError("URL has no host")
    if host.translate(None, _HOST_CHARS):
        raise UrlError("URL hostname has disallowed character")
    if len(host) > 255:
        raise UrlError("URL hostname greater than 255 characters")
    if host[:1] == b"." or host[-1:] == b"." or b".." in host:
        raise UrlError("URL hostname has empty label")
    if len(host) > 63 and any(len(label) > 63 for label in host.split(b".")):
        raise UrlError("URL hostname label greater than 63 characters")


def _check_ipv6(host: str) -> None:
    # Imported here: only a URL with an IPv6 literal needs it.
    import ipaddress

    # A zone identifier (fe80::1%25eth0) names an interface of this host,
    # nothing a request can carry (RFC 9110 4.2.1 has no place for it).
    if "%" in host:
        raise UrlError("URL IPv6 literal has disallowed character")
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise UrlError("URL IPv6 literal is not a valid IPv6 address") from None
