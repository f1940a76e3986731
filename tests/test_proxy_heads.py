"""thor.http.proxy's remembered heads (issue 12): the request and response
fields it passes on are worked out once per distinct head and looked up
after that. Each test sends the same head more than once and checks that
the second answer is what working it out again would give: what depends
on the method, on who the client is, or on a hook's changes is never
taken from an earlier request. End to end on loopback: thor origins, the
proxy, http.client in a thread and thor's HttpClient."""

import http.client
import unittest
from unittest import mock

from thor.http import proxy as proxy_module
from thor.http.proxy import HttpProxy

from tests import test_proxy_ops as ops


class HeadCacheTest(ops.OpsTestCase):
    def request_from(self, source, port, method, headers):
        """One request from the loopback address ``source`` (a client
        other than 127.0.0.1): (status, body)."""

        def go():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                              source_address=(source, 0))
            conn.putrequest(method, "/", skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", "app.example")
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            out = response.status, response.read()
            conn.close()
            return out

        return self.in_thread(go)

    def test_a_hook_changing_the_fields_in_place_changes_one_message_only(self):
        counts = {"request": 0, "response": 0}

        class Counting(HttpProxy):
            def request_hook(self, pex):
                counts["request"] += 1
                pex.headers.append((b"X-Request-Count", b"%d" % counts["request"]))

            def response_hook(self, pex, status, phrase, headers):
                counts["response"] += 1
                headers.append((b"X-Response-Count", b"%d" % counts["response"]))
                return status, phrase, headers

        origin = self.origin()
        proxy = self.proxy(Counting, upstreams=[self.url(origin)])
        client = proxy_module.HttpClient(self.loop)
        self.addCleanup(client.close)
        for count in (b"1", b"2", b"3"):
            result = self.fetch("http://127.0.0.1:%d/" % proxy.port, client=client)
            self.assertEqual(result["status"], b"200")
            self.assertEqual(self.header(result["headers"], "x-response-count"), [count])
            self.assertEqual(self.seen_fields("x-request-count"), [count])
            self.assertEqual(len(self.seen_fields("via")), 1)
        self.assertEqual(len(self.header(result["headers"], "via")), 1)

    def test_max_forwards_is_never_taken_from_another_method(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        fields = [("Max-Forwards", "0")]
        # End to end for GET: passed on as it came.
        status, _, _ = self.request(proxy.port, "GET", "/", fields)
        self.assertEqual(status, 200)
        self.assertEqual(self.seen_fields("max-forwards"), [b"0"])
        # The same head on OPTIONS: the last hop, answered by the proxy.
        status, headers, _ = self.request(proxy.port, "OPTIONS", "/", fields)
        self.assertEqual(status, 200)
        self.assertIn("TRACE", dict(headers)["Allow"])
        self.assertEqual(len(self.seen), 1)
        status, _, _ = self.request(proxy.port, "GET", "/", fields)
        self.assertEqual((status, len(self.seen)), (200, 2))
        self.assertEqual(self.seen_fields("max-forwards"), [b"0"])

    def test_forwarding_fields_depend_on_the_client_not_on_the_head(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], trusted_proxies=["127.0.0.2"])
        forged = [("X-Forwarded-For", "203.0.113.7")]
        for source, expected in (
            ("127.0.0.1", [b"127.0.0.1"]),  # not trusted: its field goes
            ("127.0.0.2", [b"203.0.113.7, 127.0.0.2"]),  # trusted: appended to
            ("127.0.0.1", [b"127.0.0.1"]),
        ):
            status, _ = self.request_from(source, proxy.port, "GET", forged)
            self.assertEqual(status, 200)
            self.assertEqual(self.seen_fields("x-forwarded-for"), expected, source)
        # Without a forwarding field, each client is named all the same.
        for source in ("127.0.0.2", "127.0.0.1", "127.0.0.2"):
            self.request_from(source, proxy.port, "GET", [("X-Other", "1")])
            self.assertEqual(self.seen_fields("x-forwarded-for"), [source.encode()])
            self.assertEqual(self.seen_fields("forwarded"),
                             [b'for=%s;proto=http;host=app.example' % source.encode()])

    def test_the_remembered_heads_are_bounded(self):
        origin_count = {"n": 0}

        def varying(ex, body, trailers):
            origin_count["n"] += 1
            ex.response_start(200, "OK", [("X-N", str(origin_count["n"])),
                                          ("Content-Length", "0")])
            ex.response_done([])

        origin = self.origin(handler=varying)
        proxy = self.proxy(upstreams=[self.url(origin)])
        client = proxy_module.HttpClient(self.loop)
        self.addCleanup(client.close)
        with mock.patch.object(proxy_module, "_HEAD_CACHE", 4):
            for n in range(1, 11):
                result = self.fetch("http://127.0.0.1:%d/" % proxy.port, client=client,
                                    headers=[("X-Request", str(n))])
                self.assertEqual(self.header(result["headers"], "x-n"), [b"%d" % n])
                self.assertEqual(self.seen_fields("x-request"), [b"%d" % n])
                self.assertLessEqual(len(proxy._request_fields), 4)
                self.assertLessEqual(len(proxy._response_fields), 4)
        self.assertGreater(len(proxy._request_fields), 0)
        self.assertGreater(len(proxy._response_fields), 0)

    def test_a_response_that_is_framed_again_is_worked_out_each_time(self):
        # A Connection option's field is dropped: every time, not only the
        # first.
        def listed(ex, body, trailers):
            ex.response_start(200, "OK", [("Content-Length", "3"),
                                          ("Connection", "X-Hop"), ("X-Hop", "1")])
            ex.response_body(b"abc")
            ex.response_done([])

        origin = self.origin(handler=listed)
        proxy = self.proxy(upstreams=[self.url(origin)])
        for _ in range(3):
            status, headers, body = self.request(proxy.port, "GET", "/")
            self.assertEqual((status, body), (200, b"abc"))
            names = [name.lower() for name, _ in headers]
            self.assertNotIn("x-hop", names)
            self.assertEqual(dict(headers)["Content-Length"], "3")

    def test_fields_a_connection_field_names_stay_on_its_hop_every_time(self):
        # A head with Connection is remembered too (what it strips depends
        # on the head alone): the named field, Connection and Keep-Alive
        # are dropped from the second request as from the first.
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        fields = [("Connection", "keep-alive, X-Hop"), ("X-Hop", "secret"),
                  ("Keep-Alive", "timeout=5"), ("X-End", "1")]
        for _ in range(3):
            status, _, _ = self.request(proxy.port, "GET", "/", fields)
            self.assertEqual(status, 200)
            for name in ("x-hop", "connection", "keep-alive"):
                self.assertEqual(self.seen_fields(name), [], name)
            self.assertEqual(self.seen_fields("x-end"), [b"1"])
            self.assertEqual(len(self.seen_fields("x-forwarded-for")), 1)
        self.assertEqual(len(proxy._request_fields), 1)  # remembered, then looked up

    def test_an_upgrade_named_in_connection_is_never_taken_from_another_request(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        self.request(proxy.port, "GET", "/", [("Connection", "upgrade")])
        self.assertEqual(self.seen_fields("upgrade"), [])
        status, _, _ = self.request(proxy.port, "GET", "/", [
            ("Connection", "upgrade"), ("Upgrade", "websocket"),
        ])
        # Asked for an upgrade: passed on (the origin declines it).
        self.assertEqual(status, 200)
        self.assertEqual(self.seen_fields("upgrade"), [b"websocket"])
        self.request(proxy.port, "GET", "/", [("Connection", "upgrade")])
        self.assertEqual(self.seen_fields("upgrade"), [])

    def test_head_hooks_that_are_not_overridden_are_not_called(self):
        # The defaults do nothing: the proxy skips them (an override on a
        # subclass, however deep, is called).
        calls = []

        class Base(HttpProxy):
            def response_hook(self, pex, status, phrase, headers):
                calls.append("response")
                return status, phrase, headers

        class Derived(Base):
            pass

        origin = self.origin()
        with mock.patch.object(HttpProxy, "request_hook",
                               side_effect=AssertionError("called")) as request_hook:
            proxy = self.proxy(Derived, upstreams=[self.url(origin)])
            status, _, _ = self.request(proxy.port, "GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual(calls, ["response"])
        self.assertFalse(request_hook.called)
        self.assertEqual((proxy._hooks_request, proxy._hooks_response), (False, True))


if __name__ == "__main__":
    unittest.main()
