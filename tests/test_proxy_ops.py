"""thor.http.proxy as operators run it (issue 13, items 1-3 and the
--via-proxy flag): forwarding fields and loop detection, TLS on both sides,
access control (client networks, Basic authentication, CONNECT ports),
from HttpProxy in code and from the command line. End to end on loopback:
thor origins, the proxy, stdlib clients (http.client, raw sockets, ssl) in
a thread, curl where installed; the command line in subprocesses."""

import base64
import http.client
import os
import socket
import ssl
import subprocess
import sys
import unittest
from unittest import mock

from thor.http.client import HttpClient
from thor.http.proxy import (
    FORWARDING_FIELDS, HttpProxy, _address_in, _listen_socket, _networks, read_auth_file,
    tls_server_context, tls_upstream_context,
)

from tests import test_proxy as tp
from tests.support import make_cert

ROOT = tp.ROOT
CURL = tp.CURL


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def free_port():
    """A port nothing listens on now (bound to port 0, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class OpsTestCase(tp.ProxyTestCase):
    def request(self, port, method, target, headers=(), tls=None, body=None):
        """One request with http.client, which sends the fields as given:
        (status, headers, body)."""

        def go():
            if tls is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            else:
                conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            names = {name.lower() for name, _ in headers}
            if "host" not in names:
                conn.putheader("Host", "127.0.0.1:%d" % port)
            for name, value in headers:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            out = response.status, response.getheaders(), response.read()
            conn.close()
            return out

        return self.in_thread(go)

    def raw(self, port, data):
        """Send ``data`` on a new connection; all that comes back until the
        proxy closes it (the request should say Connection: close)."""

        def go():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(data)
                got = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return b"".join(got)
                    got.append(chunk)

        return self.in_thread(go)

    def seen_fields(self, name):
        """The values of field ``name`` in the request the origin saw last."""
        return self.header(self.seen[-1][3], name)


class ForwardingTest(OpsTestCase):
    def test_reverse_mode_tells_the_origin_the_true_client(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        self.assertEqual(proxy.forwarded, FORWARDING_FIELDS)
        status, _, body = self.request(proxy.port, "GET", "/a", [("Host", "app.example:8080")])
        self.assertEqual((status, body), (200, b"ok:"))
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [b"http"])
        self.assertEqual(self.seen_fields("x-forwarded-host"), [b"app.example:8080"])
        # RFC 7239: a host with a colon is a quoted string.
        self.assertEqual(self.seen_fields("forwarded"),
                         [b'for=127.0.0.1;proto=http;host="app.example:8080"'])

    def test_an_absolute_form_targets_authority_is_the_host(self):
        # RFC 9112 3.2.2: the target's authority replaces Host, in both
        # modes: the forwarding fields name it, not the Host sent.
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        answer = self.raw(proxy.port, b"GET http://app.example/x HTTP/1.1\r\n"
                                      b"Host: other.example\r\nConnection: close\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
        self.assertEqual(self.seen[-1][2], b"/x")
        self.assertEqual(self.seen_fields("x-forwarded-host"), [b"app.example"])
        self.assertEqual(self.seen_fields("forwarded"),
                         [b"for=127.0.0.1;proto=http;host=app.example"])
        # The same head again (the proxy remembers heads): the same answer.
        self.raw(proxy.port, b"GET http://app2.example/x HTTP/1.1\r\n"
                             b"Host: other.example\r\nConnection: close\r\n\r\n")
        self.assertEqual(self.seen_fields("x-forwarded-host"), [b"app2.example"])
        forward = self.proxy(forwarded=["x-forwarded-host", "forwarded"])
        target = b"127.0.0.1:%d" % origin.port
        self.raw(forward.port, b"GET http://%s/y HTTP/1.1\r\nHost: other.example\r\n"
                               b"Connection: close\r\n\r\n" % target)
        self.assertEqual(self.seen[-1][2], b"/y")
        self.assertEqual(self.seen_fields("x-forwarded-host"), [target])
        self.assertEqual(self.seen_fields("forwarded"),
                         [b'for=127.0.0.1;proto=http;host="%s"' % target])

    def test_forged_fields_from_an_untrusted_client_never_reach_the_origin(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        forged = [
            ("X-Forwarded-For", "6.6.6.6"), ("x-forwarded-for", "7.7.7.7, 8.8.8.8"),
            ("X-FORWARDED-PROTO", "https"), ("X-Forwarded-Host", "bank.example"),
            ("Forwarded", "for=6.6.6.6;proto=https"), ("forwarded", 'for="[2001:db8::1]"'),
        ]
        status, _, _ = self.request(proxy.port, "GET", "/", forged)
        self.assertEqual(status, 200)
        seen = b"\n".join(b"%s: %s" % field for field in self.seen[-1][3])
        for value in (b"6.6.6.6", b"7.7.7.7", b"8.8.8.8", b"https", b"bank.example", b"2001:db8"):
            self.assertNotIn(value, seen)
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [b"http"])

    def test_fields_not_sent_are_still_removed_from_an_untrusted_client(self):
        # Sending only X-Forwarded-For: a forged Forwarded must not pass
        # either (an origin may read that one).
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], forwarded=["X-Forwarded-For"])
        self.request(proxy.port, "GET", "/", [("Forwarded", "for=6.6.6.6"),
                                              ("X-Forwarded-Host", "evil")])
        self.assertEqual(self.seen_fields("forwarded"), [])
        self.assertEqual(self.seen_fields("x-forwarded-host"), [])
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])

    def test_a_trusted_proxy_values_are_kept_and_appended_to(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], trusted_proxies=["127.0.0.0/8"],
                           forwarded=["x-forwarded-for", "x-forwarded-proto", "forwarded"])
        self.request(proxy.port, "GET", "/", [
            ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "198.51.100.2"),
            ("X-Forwarded-Proto", "https"), ("Forwarded", "for=203.0.113.7;proto=https"),
            ("X-Forwarded-Host", "shop.example"),  # not sent by this proxy: passed on
        ])
        self.assertEqual(self.seen_fields("x-forwarded-for"),
                         [b"203.0.113.7, 198.51.100.2, 127.0.0.1"])
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [b"https"])
        self.assertEqual(self.seen_fields("forwarded"), [
            b"for=203.0.113.7;proto=https, for=127.0.0.1;proto=http;host=\"127.0.0.1:%d\""
            % proxy.port
        ])
        self.assertEqual(self.seen_fields("x-forwarded-host"), [b"shop.example"])

    def test_a_client_outside_the_trusted_networks_is_replaced(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], trusted_proxies=["10.0.0.0/8"])
        self.request(proxy.port, "GET", "/", [("X-Forwarded-For", "10.1.1.1")])
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])

    def test_none_sends_nothing_and_passes_fields_on(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], forwarded=())
        self.request(proxy.port, "GET", "/", [("X-Forwarded-For", "192.0.2.1")])
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"192.0.2.1"])
        self.assertEqual(self.seen_fields("forwarded"), [])

    def test_forward_mode_sends_none_by_default(self):
        origin = self.origin()
        proxy = self.proxy()
        self.assertEqual(proxy.forwarded, ())
        status, _, _ = self.request(proxy.port, "GET", self.url(origin))
        self.assertEqual(status, 200)
        names = {n.lower() for n, v in self.seen[-1][3]}
        self.assertFalse(names & {f.encode() for f in FORWARDING_FIELDS})

    def test_underscore_spellings_and_other_forwarding_names_are_removed(self):
        # WSGI, CGI and PHP read X_Forwarded_For as X-Forwarded-For (both
        # become HTTP_X_FORWARDED_FOR); and origins trust X-Real-IP,
        # X-Forwarded-Port and X-Forwarded-Prefix from their proxy.
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        forged = [
            ("X_Forwarded_For", "6.6.6.6"), ("X_Forwarded_Proto", "https"),
            ("x-forwarded_host", "evil.example"), ("X-Real-IP", "6.6.6.7"),
            ("x_real_ip", "6.6.6.8"), ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Prefix", "/admin"), ("X_Forwarded-Prefix", "/root"),
            ("X-Forwarded-Server", "internal.example"),
        ]
        status, _, _ = self.request(proxy.port, "GET", "/", forged)
        self.assertEqual(status, 200)
        names = {n.lower().replace(b"_", b"-") for n, v in self.seen[-1][3]}
        self.assertFalse(names & {b"x-real-ip", b"x-forwarded-port", b"x-forwarded-prefix"})
        seen = b"\n".join(b"%s: %s" % field for field in self.seen[-1][3])
        for value in (b"6.6.6", b"https", b"evil", b"/admin", b"/root", b"internal"):
            self.assertNotIn(value, seen)
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])
        # From a trusted proxy the dashed names pass on; the underscore
        # ones, which no proxy sends, never do.
        trusting = self.proxy(upstreams=[self.url(origin)], trusted_proxies=["127.0.0.1"])
        self.request(trusting.port, "GET", "/", forged)
        self.assertEqual(self.seen_fields("x-real-ip"), [b"6.6.6.7"])
        self.assertEqual(self.seen_fields("x-forwarded-prefix"), [b"/admin"])
        self.assertEqual(self.seen_fields("x-forwarded-port"), [b"443"])
        self.assertEqual(self.seen_fields("x-forwarded-server"), [b"internal.example"])
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])
        self.assertFalse([n for n, v in self.seen[-1][3] if b"_" in n])
        # Sending none: a transparent proxy leaves them all alone.
        transparent = self.proxy(upstreams=[self.url(origin)], forwarded=())
        self.request(transparent.port, "GET", "/", forged)
        self.assertEqual(len(self.seen[-1][3]), len(forged) + 2)  # with Host and Via

    def test_a_trusted_proxy_fields_named_in_connection_stay_on_its_hop(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], trusted_proxies=["127.0.0.1"])
        self.request(proxy.port, "GET", "/", [
            ("Connection", "X-Forwarded-Proto, forwarded"), ("X-Forwarded-Proto", "https"),
            ("Forwarded", "proto=https"), ("X-Forwarded-For", "203.0.113.7"),
        ])
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [b"http"])
        self.assertEqual(self.seen_fields("forwarded"), [
            b'for=127.0.0.1;proto=http;host="127.0.0.1:%d"' % proxy.port])
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"203.0.113.7, 127.0.0.1"])

    def test_forwarding_fields_in_request_trailers_are_removed(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        answer = self.raw(proxy.port, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
                          b"\r\nTrailer: X-Forwarded-For\r\nConnection: close\r\n\r\n1\r\nx\r\n"
                          b"0\r\nX-Forwarded-For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\n"
                          b"X-Checksum: 1\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
        self.assertEqual([(n, v.strip()) for n, v in self.seen[-1][5]], [(b"X-Checksum", b"1")])
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])

    def test_ipv4_clients_of_a_dual_stack_listener(self):
        # Listening on "::", an IPv4 client's address is ::ffff:127.0.0.1:
        # it is told, and matched, as 127.0.0.1, also against networks
        # written in the mapped form.
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6")
        origin = self.origin()
        for trusted in ("127.0.0.1", "::ffff:127.0.0.1", "::ffff:127.0.0.0/104"):
            proxy = HttpProxy("::", 0, self.loop, upstreams=[self.url(origin)],
                              trusted_proxies=[trusted])
            self.addCleanup(proxy.close)
            arrived = []
            proxy.on("exchange", arrived.append)
            status, _, _ = self.request(proxy.port, "GET", "/", [("X-Forwarded-For", "192.0.2.1")])
            self.assertEqual(status, 200)
            self.assertEqual(arrived[0].client_address, "127.0.0.1")
            self.assertEqual(self.seen_fields("x-forwarded-for"), [b"192.0.2.1, 127.0.0.1"],
                             trusted)
            self.assertEqual(self.seen_fields("forwarded")[0][:14], b"for=127.0.0.1;")
        self.assertEqual([str(n) for n in _networks(["::ffff:10.0.0.0/104", "::ffff:1.2.3.4"],
                                                     "allow")], ["10.0.0.0/8", "1.2.3.4/32"])
        forward = HttpProxy("::", 0, self.loop, allow=["::ffff:127.0.0.0/104"])
        self.addCleanup(forward.close)
        status, _, _ = self.request(forward.port, "GET", self.url(origin))
        self.assertEqual(status, 200)

    def test_bad_settings_raise_at_the_call(self):
        watched = self.loop.fd_count()
        self.addCleanup(lambda: self.assertEqual(self.loop.fd_count(), watched))  # none left listening
        with self.assertRaisesRegex(ValueError, "forwarded"):
            HttpProxy("127.0.0.1", 0, self.loop, forwarded=["x-real-ip"])
        with self.assertRaisesRegex(ValueError, "trusted_proxies"):
            HttpProxy("127.0.0.1", 0, self.loop, trusted_proxies=["10.0.0.0/33"])
        with self.assertRaisesRegex(ValueError, "allow"):
            HttpProxy("127.0.0.1", 0, self.loop, allow=["localhost"])
        with self.assertRaisesRegex(ValueError, "USER:PASSWORD"):
            HttpProxy("127.0.0.1", 0, self.loop, auth=["nopassword"])


class LoopTest(OpsTestCase):
    def test_each_proxy_has_its_own_pseudonym(self):
        a, b = self.proxy(), self.proxy()
        self.assertRegex(a.via, r"^thor-[0-9a-f]{8}$")
        self.assertNotEqual(a.via, b.via)

    def test_two_chained_thor_proxies_are_not_a_loop(self):
        origin = self.origin()
        inner = self.proxy(upstreams=[self.url(origin)], trusted_proxies=["127.0.0.1"])
        outer = self.proxy(upstreams=[self.url(inner)])
        status, _, body = self.request(outer.port, "GET", "/x")
        self.assertEqual((status, body), (200, b"ok:"))
        vias = self.seen_fields("via")
        self.assertEqual(vias, [b"1.1 " + outer.via.encode(), b"1.1 " + inner.via.encode()])
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1, 127.0.0.1"])

    def test_a_proxy_chained_to_itself_answers_508(self):
        sock = _listen_socket("127.0.0.1", 0)
        port = sock.getsockname()[1]
        proxy = self.proxy(sock=sock, upstreams=["http://127.0.0.1:%d" % port])
        arrived = []
        proxy.on("exchange", arrived.append)
        status, headers, body = self.request(port, "GET", "/")
        self.assertEqual(status, 508)
        self.assertIn(b"through this proxy already", body)
        # One hop into itself, then the loop is seen: not 97 hops.
        self.assertEqual(len(arrived), 2)

    def test_via_naming_this_proxy_anywhere_in_the_list_is_a_loop(self):
        origin = self.origin()
        named = type("Named", (HttpProxy,), {"via": "edge-1"})
        proxy = self.proxy(named, upstreams=[self.url(origin)])
        for via in ("1.1 edge-1", "1.0 other, 1.1 EDGE-1 (thor)", "HTTP/1.1 a,1.1 edge-1"):
            status, _, _ = self.request(proxy.port, "GET", "/", [("Via", via)])
            self.assertEqual(status, 508, via)
        self.assertEqual(self.seen, [])
        # A name that merely contains it, or a comment, is another proxy.
        for via in ("1.1 edge-10", "1.1 other (edge-1)"):
            status, _, _ = self.request(proxy.port, "GET", "/", [("Via", via)])
            self.assertEqual(status, 200, via)
        self.assertEqual(self.seen_fields("via"), [b"1.1 other (edge-1)", b"1.1 edge-1"])


class AccessTest(OpsTestCase):
    def test_address_matching(self):
        nets = _networks(["10.0.0.0/8", "::1", "2001:db8::/32"], "allow")
        self.assertTrue(_address_in("10.2.3.4", nets))
        self.assertTrue(_address_in("::ffff:10.2.3.4", nets))  # dual-stack socket
        self.assertTrue(_address_in("::1", nets))
        self.assertTrue(_address_in("2001:db8::5", nets))
        self.assertFalse(_address_in("11.0.0.1", nets))
        self.assertFalse(_address_in("127.0.0.1", nets))
        self.assertFalse(_address_in("not an address", nets))

    def test_forward_proxy_serves_loopback_by_default_and_refuses_others(self):
        origin = self.origin()
        proxy = self.proxy()
        self.assertEqual([str(n) for n in proxy.allow], ["127.0.0.0/8", "::1/128"])
        status, _, _ = self.request(proxy.port, "GET", self.url(origin))
        self.assertEqual(status, 200)
        refusing = self.proxy(allow=["192.0.2.0/24"])
        status, _, body = self.request(refusing.port, "GET", self.url(origin))
        self.assertEqual(status, 403)
        self.assertEqual(body, b"This proxy does not serve your address.\n")
        status, _, _ = self.request(refusing.port, "CONNECT", "127.0.0.1:443")
        self.assertEqual(status, 403)
        self.assertEqual(len(self.seen), 1)

    def test_basic_authentication_of_a_forward_proxy(self):
        origin = self.origin()
        proxy = self.proxy(auth={"alice": "s3cret", "bob": "hunter2"})
        url = self.url(origin)
        # Missing, wrong password, unknown user, another scheme, bad base64.
        for headers in ([], [("Proxy-Authorization", basic("alice", "wrong"))],
                        [("Proxy-Authorization", basic("mallory", "s3cret"))],
                        [("Proxy-Authorization", "Bearer s3cret")],
                        [("Proxy-Authorization", "Basic !!!")],
                        [("Authorization", basic("alice", "s3cret"))]):
            status, response_headers, _ = self.request(proxy.port, "GET", url, headers)
            self.assertEqual(status, 407, headers)
            self.assertIn(("Proxy-Authenticate", 'Basic realm="thor proxy", charset="UTF-8"'),
                          response_headers)
        self.assertEqual(self.seen, [])
        status, _, body = self.request(proxy.port, "GET", url, [
            ("Proxy-Authorization", basic("alice", "s3cret")),
        ])
        self.assertEqual((status, body), (200, b"ok:"))
        # The credentials were for the proxy: the origin never sees them.
        self.assertEqual(self.seen_fields("proxy-authorization"), [])

    def test_credentials_are_compared_in_constant_time(self):
        origin = self.origin()
        proxy = self.proxy(auth=["alice:s3cret"])
        import hmac

        calls = []
        real = hmac.compare_digest

        def spy(a, b):
            calls.append((len(a), len(b)))
            return real(a, b)

        with mock.patch("thor.http.proxy.hmac.compare_digest", spy):
            for user, password in (("alice", "x"), ("nobody", "s3cret"), ("alice", "s3cret")):
                self.request(proxy.port, "GET", self.url(origin),
                             [("Proxy-Authorization", basic(user, password))])
        # Unknown user included; digests, so equal lengths whatever the input.
        self.assertEqual(calls, [(32, 32)] * 3)
        self.assertEqual(len(self.seen), 1)

    def test_connect_needs_the_credentials_too(self):
        target = self.origin()
        proxy = self.proxy(auth=["alice:s3cret"], connect_ports=[target.port])
        request = b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n%s\r\n"
        answer = self.raw(proxy.port, request % (target.port, b"Connection: close\r\n"))
        self.assertTrue(answer.startswith(b"HTTP/1.1 407 "), answer)

        def tunnel():
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
                sock.sendall(request % (target.port, b"Proxy-Authorization: %s\r\n"
                                        % basic("alice", "s3cret").encode()))
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(4096)
                sock.sendall(b"GET /in HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                rest = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return head, rest
                    rest += chunk

        head, rest = self.in_thread(tunnel)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertTrue(rest.endswith(b"ok:"), rest)

    def test_reverse_proxy_authenticates_with_authorization(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], auth=["alice:s3cret"])
        status, headers, _ = self.request(proxy.port, "GET", "/")
        self.assertEqual(status, 401)
        self.assertIn(("WWW-Authenticate", 'Basic realm="thor proxy", charset="UTF-8"'), headers)
        status, _, _ = self.request(proxy.port, "GET", "/",
                                    [("Authorization", basic("alice", "s3cret"))])
        self.assertEqual(status, 200)
        self.assertEqual(self.seen_fields("authorization"), [])

    def test_proxy_authorization_is_never_forwarded(self):
        # RFC 9110 11.7.2: it is for this proxy, whether it checks it or not.
        origin = self.origin()
        theirs = [("Proxy-Authorization", basic("bob", "hunter2"))]
        for proxy in (self.proxy(), self.proxy(upstreams=[self.url(origin)]),
                      self.proxy(upstreams=[self.url(origin)], auth=["alice:s3cret"])):
            target = "/" if proxy.upstreams else self.url(origin)
            status, _, _ = self.request(proxy.port, "GET", target, theirs + [
                ("Authorization", basic("alice", "s3cret"))])
            self.assertEqual(status, 200)
            self.assertEqual(self.seen_fields("proxy-authorization"), [])
        # Chained to an upstream proxy with credentials: that proxy gets
        # those, once (the origin plays the upstream proxy here).
        proxy = self.proxy()
        proxy.client.proxy = "http://chain:pw@127.0.0.1:%d" % origin.port
        status, _, _ = self.request(proxy.port, "GET", "http://example.invalid/", theirs)
        self.assertEqual(status, 200)
        self.assertEqual(self.seen[-1][2], b"http://example.invalid/")
        self.assertEqual(self.seen_fields("proxy-authorization"),
                         [basic("chain", "pw").encode()])
        # A hook (checking credentials itself) still sees them; they go
        # after it.
        seen = []
        hooked = type("Hooked", (HttpProxy,), {
            "request_hook": lambda self, pex: seen.append(list(pex.headers))
        })
        proxy = self.proxy(hooked)
        status, _, _ = self.request(proxy.port, "GET", self.url(origin), theirs)
        self.assertEqual(status, 200)
        self.assertEqual(self.header(seen[0], "proxy-authorization"),
                         [basic("bob", "hunter2").encode()])
        self.assertEqual(self.seen_fields("proxy-authorization"), [])

    def test_a_refused_connect_port_names_the_setting(self):
        proxy = self.proxy()
        status, _, body = self.request(proxy.port, "CONNECT", "127.0.0.1:8443")
        self.assertEqual(status, 403)
        self.assertIn(b"port 8443", body)
        self.assertIn(b"--connect-port", body)

    def test_auth_file(self):
        path = os.path.join(self.tmpdir(), "users")
        with open(path, "w") as out:
            out.write("# operators\nalice:s3:cr:et\n\nbob:x\n")
        self.assertEqual(read_auth_file(path), ["alice:s3:cr:et", "bob:x"])
        with open(path, "w") as out:
            out.write("alice\n")
        with self.assertRaisesRegex(ValueError, "line 1"):
            read_auth_file(path)

    def test_auth_file_saved_with_a_byte_order_mark(self):
        # As Windows Notepad saves UTF-8: the mark is not part of the user.
        path = os.path.join(self.tmpdir(), "users")
        with open(path, "w", encoding="utf-8-sig") as out:
            out.write("dave:pw\nzo\u00eb:p\u00e4ss\n")
        self.assertEqual(read_auth_file(path), ["dave:pw", "zo\u00eb:p\u00e4ss"])

    def tmpdir(self):
        import tempfile

        directory = tempfile.mkdtemp(prefix="thor-ops-")
        self.addCleanup(__import__("shutil").rmtree, directory, True)
        return directory


class TlsTest(OpsTestCase):
    def setUp(self):
        OpsTestCase.setUp(self)
        self.certfile, self.keyfile = make_cert("localhost")

    def tls_origin(self, require_client=None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        if require_client is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(require_client)
        return self.origin("tls", tls_context=context)

    def test_https_listening_side_with_alpn(self):
        # (HTTP/2 over TLS, ALPN h2: tests/test_proxy_h2.py.)
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)],
                           tls_context=tls_server_context(self.certfile, self.keyfile))
        client = ssl.create_default_context(cafile=self.certfile)
        client.set_alpn_protocols(["http/1.1"])

        def go():
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
                with client.wrap_socket(raw, server_hostname="localhost") as tls:
                    alpn = tls.selected_alpn_protocol()
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        chunk = tls.recv(65536)
                        if not chunk:
                            return alpn, data
                        data += chunk

        alpn, data = self.in_thread(go)
        self.assertEqual(alpn, "http/1.1")
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [b"https"])
        self.assertEqual(self.seen_fields("forwarded"),
                         [b"for=127.0.0.1;proto=https;host=localhost"])

    def test_http2_is_offered_unless_turned_off(self):
        # issue 14: ALPN h2 (and http/1.1) by default; with http2 False
        # (--no-http2) only http/1.1, whatever the context offered, and
        # the cleartext preface is an HTTP/1.1 request (505).
        from thor.tls import server_context

        origin = self.origin()

        def alpn(proxy, offer):
            client = ssl.create_default_context(cafile=self.certfile)
            client.set_alpn_protocols(offer)

            def go():
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
                    with client.wrap_socket(raw, server_hostname="localhost") as tls:
                        return tls.selected_alpn_protocol()

            return self.in_thread(go)

        both = self.proxy(upstreams=[self.url(origin)],
                          tls_context=tls_server_context(self.certfile, self.keyfile))
        self.assertEqual(alpn(both, ["h2", "http/1.1"]), "h2")
        self.assertEqual(alpn(both, ["http/1.1"]), "http/1.1")
        off = type("Http1Proxy", (HttpProxy,), {"http2": False})
        http1 = self.proxy(off, upstreams=[self.url(origin)],
                           tls_context=server_context(self.certfile, self.keyfile))
        self.assertEqual(alpn(http1, ["h2", "http/1.1"]), "http/1.1")
        cleartext = self.proxy(off, upstreams=[self.url(origin)])
        answer = self.raw(cleartext.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                          b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        self.assertTrue(answer.startswith(b"HTTP/1.1 505 "), answer)
        self.assertEqual(self.seen, [])

    def test_private_ca_for_https_upstreams(self):
        origin = self.tls_origin()
        proxy = self.proxy(upstreams=["https://localhost:%d" % origin.port])
        proxy.client.tls_context = tls_upstream_context(cafile=self.certfile)
        status, _, body = self.request(proxy.port, "GET", "/")
        self.assertEqual((status, body), (200, b"ok:"))

    def test_a_tls_failure_is_generic_for_the_client_and_detailed_in_the_log(self):
        origin = self.tls_origin()
        proxy = self.proxy(upstreams=["https://localhost:%d" % origin.port])
        proxy.client.tls_context = tls_upstream_context()  # the system's CAs only
        with self.assertLogs("thor.http.proxy", "WARNING") as logs:
            status, _, body = self.request(proxy.port, "GET", "/")
        self.assertEqual(status, 502)
        self.assertEqual(body, b"502 Bad Gateway: TLS with the upstream failed\n")
        self.assertIn("CERTIFICATE_VERIFY_FAILED", "\n".join(logs.output))

    def test_insecure_upstream_skips_the_check(self):
        origin = self.tls_origin()
        proxy = self.proxy(upstreams=["https://localhost:%d" % origin.port])
        proxy.client.tls_context = tls_upstream_context(insecure=True)
        status, _, _ = self.request(proxy.port, "GET", "/")
        self.assertEqual(status, 200)

    def test_client_certificate_for_upstreams(self):
        client_cert, client_key = make_cert("wrong.example")
        origin = self.tls_origin(require_client=client_cert)
        proxy = self.proxy(upstreams=["https://localhost:%d" % origin.port])
        proxy.client.tls_context = tls_upstream_context(cafile=self.certfile)
        with self.assertLogs("thor.http.proxy", "WARNING"):
            status, _, _ = self.request(proxy.port, "GET", "/")
        self.assertEqual(status, 502)
        self.assertEqual(self.seen, [])
        proxy.client.close()
        proxy.client.tls_context = tls_upstream_context(self.certfile, client_cert, client_key)
        status, _, body = self.request(proxy.port, "GET", "/")
        self.assertEqual((status, body), (200, b"ok:"))


class ChainTest(OpsTestCase):
    def connect_through(self, port, target_port, extra=b""):
        """CONNECT to ``target_port`` through ``port``, then a GET inside the
        tunnel: (CONNECT answer head, what came back in the tunnel)."""

        def go():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n%s\r\n"
                             % (target_port, extra))
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return head, b""
                    head += chunk
                if not head.startswith(b"HTTP/1.1 200 "):
                    return head, b""
                sock.sendall(b"GET /in HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                rest = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return head, rest
                    rest += chunk

        return self.in_thread(go)

    def test_connect_tunnels_follow_the_upstream_proxy(self):
        target = self.origin()
        upstream = self.proxy(connect_ports=[target.port], auth=["bob:pw"])
        arrived = []
        upstream.on("exchange", arrived.append)
        proxy = self.proxy(connect_ports=[target.port])
        proxy.client.proxy = "http://bob:pw@127.0.0.1:%d" % upstream.port
        head, rest = self.connect_through(proxy.port, target.port)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertTrue(rest.endswith(b"ok:"), rest)
        self.assertEqual([pex.method for pex in arrived], [b"CONNECT"])
        # Wrong credentials there: the upstream proxy's 407 is a 502 here,
        # its detail in the log.
        proxy.client.proxy = "http://bob:nope@127.0.0.1:%d" % upstream.port
        with self.assertLogs("thor.http.proxy", "WARNING") as logs:
            head, _ = self.connect_through(proxy.port, target.port)
        self.assertTrue(head.startswith(b"HTTP/1.1 502 "), head)
        self.assertIn("407", "\n".join(logs.output))

    def test_requests_follow_the_upstream_proxy(self):
        if not hasattr(HttpClient, "proxy"):
            self.skipTest("HttpClient has no proxy setting yet")
        origin = self.origin()
        upstream = self.proxy()
        arrived = []
        upstream.on("exchange", arrived.append)
        proxy = self.proxy()
        proxy.client.proxy = "http://127.0.0.1:%d" % upstream.port
        status, _, body = self.request(proxy.port, "GET", self.url(origin, "/chained"))
        self.assertEqual((status, body), (200, b"ok:"))
        self.assertEqual([pex.uri for pex in arrived], [self.url(origin, "/chained").encode()])
        self.assertEqual(self.seen_fields("via"),
                         [b"1.1 " + proxy.via.encode(), b"1.1 " + upstream.via.encode()])

    def test_a_forward_proxy_chained_to_itself_answers_508(self):
        if not hasattr(HttpClient, "proxy"):
            self.skipTest("HttpClient has no proxy setting yet")
        origin = self.origin()
        proxy = self.proxy()
        proxy.client.proxy = "http://127.0.0.1:%d" % proxy.port
        arrived = []
        proxy.on("exchange", arrived.append)
        status, _, _ = self.request(proxy.port, "GET", self.url(origin))
        self.assertEqual(status, 508)
        self.assertEqual(len(arrived), 2)
        self.assertEqual(self.seen, [])

    def test_a_connect_naming_this_proxy_in_via_is_a_loop(self):
        target = self.origin()
        proxy = self.proxy(connect_ports=[target.port])
        head, _ = self.connect_through(proxy.port, target.port,
                                       b"Via: 1.1 other, 1.1 %s\r\n" % proxy.via.encode())
        self.assertTrue(head.startswith(b"HTTP/1.1 508 "), head)
        self.assertEqual(self.seen, [])

    def test_a_connect_chained_to_itself_stops_at_the_next_hop(self):
        # Without Via on the CONNECT it sends, a proxy chained to itself
        # opens connections to itself without end.
        slow = type("Slow", (HttpProxy,), {"connect_timeout": 1})
        target = self.origin()
        proxy = self.proxy(slow, connect_ports=[target.port])
        proxy.client.proxy = "http://127.0.0.1:%d" % proxy.port
        arrived = []
        proxy.on("exchange", arrived.append)
        with self.assertLogs("thor.http.proxy", "WARNING"):
            head, _ = self.connect_through(proxy.port, target.port,
                                           b"Via: 1.0 client-side\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 502 "), head)
        self.assertEqual([pex.status for pex in arrived], [502, 508])
        # The received Via, then this proxy's.
        self.assertEqual(self.header(arrived[1].server_exchange.req_hdrs, "via"),
                         [b"1.0 client-side, 1.1 " + proxy.via.encode()])

    def test_an_https_request_chained_to_itself_stops(self):
        # HttpClient's tunnel CONNECT carries no Via; the proxy's chained
        # CONNECT does, so the loop ends one hop later.
        slow = type("Slow", (HttpProxy,), {"connect_timeout": 1})
        proxy = self.proxy(slow)
        proxy.client.proxy = "http://127.0.0.1:%d" % proxy.port
        arrived = []
        proxy.on("exchange", arrived.append)
        with self.assertLogs("thor.http.proxy", "WARNING"):
            status, _, _ = self.request(proxy.port, "GET", "https://127.0.0.1/")
        self.assertEqual(status, 502)
        self.assertLessEqual(len(arrived), 3)
        self.assertEqual(arrived[-1].status, 508)

    def test_a_connect_target_that_is_no_host_name_is_400(self):
        upstream = socket.socket()  # an upstream proxy that never answers
        upstream.bind(("127.0.0.1", 0))
        upstream.listen(5)
        self.addCleanup(upstream.close)
        slow = type("Slow", (HttpProxy,), {"connect_timeout": 0.3})
        for chained in (True, False):
            proxy = self.proxy(slow)
            if chained:
                proxy.client.proxy = "http://127.0.0.1:%d" % upstream.getsockname()[1]
            for target in ("a..b", "x" * 64 + ".example", ".example", "a b", "é.example"):
                answer = self.raw(proxy.port, b"CONNECT %s:443 HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n" % target.encode("utf-8"))
                self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), (chained, target, answer))
        # A name of 63-character labels, a final dot and an IPv6 literal are
        # fine (tried: no answer from the upstream proxy in time, 504).
        proxy.client.proxy = "http://127.0.0.1:%d" % upstream.getsockname()[1]
        with self.assertLogs("thor.http.proxy", "WARNING"):
            for target in (b"x" * 63 + b".example.", b"[::1]"):
                answer = self.raw(proxy.port, b"CONNECT %s:443 HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n" % target)
                self.assertTrue(answer.startswith(b"HTTP/1.1 504 "), (target, answer))


class CommandLineOpsTest(OpsTestCase):
    run_proxy = tp.CommandLineTest.run_proxy
    stderr_matches = tp.CommandLineTest.stderr_matches
    stderr_rest = tp.CommandLineTest.stderr_rest
    listening_ports = tp.CommandLineTest.listening_ports

    def setUp(self):
        OpsTestCase.setUp(self)
        self.stderr_seen = {}

    def cli_fails(self, *args):
        done = subprocess.run([sys.executable, "-m", "thor.http.proxy"] + list(args),
                              stderr=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
                              timeout=20, env=dict(os.environ, PYTHONPATH=ROOT))
        self.assertEqual(done.returncode, 2, done.stderr)
        return done.stderr

    def test_bad_flags_are_refused_before_starting(self):
        self.assertIn(b"--forwarded", self.cli_fails("--forwarded", "x-real-ip"))
        self.assertIn(b"--allow", self.cli_fails("--allow", "10.0.0.0/40"))
        self.assertIn(b"--tls-cert", self.cli_fails("--tls-cert", "/nonexistent.pem"))
        self.assertIn(b"--tls-key needs", self.cli_fails("--tls-key", self.keyfile_path()))
        self.assertIn(b"--auth", self.cli_fails("--auth", "alice"))
        self.assertIn(b"--via-proxy", self.cli_fails("--via-proxy", "ftp://x"))

    def keyfile_path(self):
        return make_cert("localhost")[1]

    def test_reverse_proxy_with_tls_auth_and_forwarding(self):
        certfile, keyfile = make_cert("localhost")
        origin = self.origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(origin),
                              "--tls-cert", certfile, "--tls-key", keyfile,
                              "--auth", "alice:s3cret", "--forwarded", "x-forwarded-for,forwarded",
                              "--pseudonym", "edge-7")
        port, = self.listening_ports(proc)
        client = ssl.create_default_context(cafile=certfile)
        status, _, _ = self.request(port, "GET", "/", [("X-Forwarded-For", "6.6.6.6")],
                                    tls=client)
        self.assertEqual(status, 401)
        status, headers, body = self.request(port, "GET", "/", [
            ("X-Forwarded-For", "6.6.6.6"), ("Authorization", basic("alice", "s3cret")),
        ], tls=client)
        self.assertEqual((status, body), (200, b"ok:"))
        self.assertIn(("Via", "1.1 edge-7"), headers)
        self.assertEqual(self.seen_fields("x-forwarded-for"), [b"127.0.0.1"])
        self.assertEqual(self.seen_fields("forwarded"),
                         [b'for=127.0.0.1;proto=https;host="127.0.0.1:%d"' % port])
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [])
        self.assertEqual(self.seen_fields("authorization"), [])

    def test_chained_to_itself_from_the_command_line(self):
        port = free_port()
        proc = self.run_proxy("--listen", "127.0.0.1:%d" % port,
                              "--upstream", "http://127.0.0.1:%d" % port)
        self.listening_ports(proc)
        status, _, body = self.request(port, "GET", "/")
        self.assertEqual(status, 508)

    def test_warnings_for_an_open_or_unreachable_forward_proxy(self):
        proc = self.run_proxy("--listen", "0.0.0.0:0")
        self.stderr_matches(proc, rb"WARNING: a forward proxy listening on 0\.0\.0\.0, beyond "
                            rb"loopback, without --allow")
        proc.kill()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--allow", "0.0.0.0/0")
        self.stderr_matches(proc, rb"WARNING: an open forward proxy: any client in 0\.0\.0\.0/0")
        proc.kill()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", "https://127.0.0.1:1",
                              "--insecure-upstream")
        self.stderr_matches(proc, rb"WARNING: --insecure-upstream: .*NOT checked")

    def test_allow_auth_file_and_connect_port_from_the_command_line(self):
        target = self.origin()
        path = os.path.join(AccessTest.tmpdir(self), "users")
        with open(path, "w") as out:
            out.write("alice:s3cret\n")
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--allow", "127.0.0.1/32",
                              "--auth-file", path, "--connect-port", str(target.port))
        port, = self.listening_ports(proc)
        status, headers, _ = self.request(port, "GET", self.url(target))
        self.assertEqual(status, 407)
        self.assertIn("Proxy-Authenticate", dict(headers))
        auth = [("Proxy-Authorization", basic("alice", "s3cret"))]
        status, _, _ = self.request(port, "GET", self.url(target), auth)
        self.assertEqual(status, 200)
        self.assertEqual(self.seen_fields("proxy-authorization"), [])
        # --connect-port adds to 443: a CONNECT to 443 is tried (and
        # refused by nothing listening there: 502), another port is 403.
        status, _, body = self.request(port, "CONNECT", "127.0.0.1:%d" % refusing_port(self),
                                       auth)
        self.assertEqual(status, 403)
        self.assertIn(b"--connect-port", body)
        status, _, body = self.request(port, "CONNECT", "127.0.0.1:443", auth)
        self.assertIn(status, (502, 504))
        self.assertNotIn(b"Errno", body)

    def test_an_auth_file_password_ending_in_whitespace_is_kept_and_warned_of(self):
        origin = self.origin()
        path = os.path.join(AccessTest.tmpdir(self), "users")
        with open(path, "w") as out:
            out.write("bob:s3cret \nalice:fine\n")
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--auth-file", path)
        self.stderr_matches(proc, rb"WARNING: --auth-file: the password of bob ends in "
                            rb"white space")
        port, = self.listening_ports(proc)
        self.assertNotIn(b"s3cret", self.stderr_seen[proc])
        self.assertNotIn(b"alice", self.stderr_seen[proc])
        auth = [("Proxy-Authorization", basic("bob", "s3cret "))]
        status, _, _ = self.request(port, "GET", self.url(origin), auth)
        self.assertEqual(status, 200)

    def test_via_proxy(self):
        if not hasattr(HttpClient, "proxy"):
            self.skipTest("HttpClient has no proxy setting yet")
        origin = self.origin()
        upstream_proxy = self.proxy()
        proc = self.run_proxy("--listen", "127.0.0.1:0",
                              "--via-proxy", "http://127.0.0.1:%d" % upstream_proxy.port)
        port, = self.listening_ports(proc)
        arrived = []
        upstream_proxy.on("exchange", arrived.append)
        status, _, body = self.request(port, "GET", self.url(origin, "/chained"))
        self.assertEqual((status, body), (200, b"ok:"))
        self.assertEqual(len(arrived), 1)
        self.assertEqual(len(self.seen_fields("via")), 2)

    def test_curl_through_an_authenticating_forward_proxy(self):
        if not CURL:
            self.skipTest("curl is not installed")
        origin = self.origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--auth", "alice:s3cret")
        port, = self.listening_ports(proc)
        done = self.curl("-x", "http://127.0.0.1:%d" % port, "-U", "alice:wrong",
                         "-o", "/dev/null", "-w", "%{http_code}", self.url(origin))
        self.assertEqual(done.stdout, b"407")
        done = self.curl("-x", "http://127.0.0.1:%d" % port, "-U", "alice:s3cret",
                         self.url(origin))
        self.assertEqual((done.returncode, done.stdout), (0, b"ok:"), done.stderr)


def refusing_port(test):
    return tp.refusing_port(test)


if __name__ == "__main__":
    unittest.main()
