"""thor.http.parser and thor.http.error.

Every case goes through ``parse()``, which feeds the input whole, one byte
at a time, and split in two at every offset, and demands the same delegate
calls each way (body chunks merged), the same pause state and the same
leftover bytes.
"""

import time
import unittest
from unittest import mock

from thor.http import error
from thor.http.parser import (
    HttpParser, NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE,
)


class Recorder:
    """A delegate that writes down what the parser tells it."""

    def __init__(self):
        self.events = []
        self.parser = None

    def _attrs(self):
        p = self.parser
        return {
            "version": p.version, "close": p.close, "body": p.body,
            "content_length": p.content_length,
            "expect_continue": p.expect_continue, "upgrade": p.upgrade,
        }

    def on_request_head(self, method, target, headers):
        self.events.append(("head", method, target, headers, self._attrs()))

    def on_response_nonfinal(self, status, phrase, headers):
        self.events.append(("nonfinal", status, phrase, headers))

    def on_response_head(self, status, phrase, headers):
        self.events.append(("response", status, phrase, headers, self._attrs()))

    def on_body(self, chunk):
        assert type(chunk) is bytes and chunk, chunk
        if self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + chunk)
        else:
            self.events.append(("body", chunk))

    def on_message_done(self, trailers):
        self.events.append(("done", trailers))

    def on_error(self, err):
        assert isinstance(err, error.HttpError)
        self.events.append(("error", type(err).__name__, str(err)))


def splits(data):
    yield [data]
    if len(data) > 1:
        yield [data[i:i + 1] for i in range(len(data))]
        for i in range(1, len(data)):
            yield [data[:i], data[i:]]


def make_parser(is_request=True, delegate_class=Recorder, **limits):
    """A parser and its delegate (a ``delegate_class``), which can see it."""
    rec = delegate_class()
    parser = HttpParser(rec, is_request, **limits)
    rec.parser = parser
    return rec, parser


def run(data, is_request, expect=(), finish=False, pieces=None, **limits):
    rec, parser = make_parser(is_request, **limits)
    for method in expect:
        parser.expect_response(method)
    for piece in pieces if pieces is not None else [data]:
        parser.feed(piece)
    if finish:
        parser.finish()
    paused = parser.paused
    rest = parser.leftover() if paused else None
    return rec.events + [("end", paused, rest)]


class ParserCase(unittest.TestCase):
    maxDiff = None

    def parse(self, data, is_request=True, expect=(b"GET",), finish=False, **limits):
        if is_request:
            expect = ()
        first = None
        for pieces in splits(data):
            got = run(data, is_request, expect, finish, pieces, **limits)
            if first is None:
                first = got
            else:
                self.assertEqual(got, first, "split as %r" % [len(p) for p in pieces])
        return first[:-1] if first[-1] == ("end", False, None) else first

    def response(self, data, expect=(b"GET",), finish=False, **limits):
        return self.parse(data, False, expect, finish, **limits)

    def assertFails(self, events, cls, exact=False):
        """One error, the last event, of class ``cls`` (or a subclass,
        unless ``exact``)."""
        names = [e for e in events if e[0] == "error"]
        self.assertEqual(len(names), 1, events)
        got = getattr(error, names[0][1])
        if exact:
            self.assertIs(got, cls, events)
        else:
            self.assertTrue(issubclass(got, cls), events)
        self.assertEqual(events[-1][0], "error", events)

    def assertOk(self, events):
        self.assertFalse([e for e in events if e[0] == "error"], events)

    def request_fails(self, data, cls, **kw):
        events = self.parse(data, **kw)
        self.assertFails(events, cls)
        return events


def head(events):
    return [e for e in events if e[0] in ("head", "response")][0]


def body(events):
    return b"".join(e[1] for e in events if e[0] == "body")


def clear_caches():
    """Forget the lines the parser's fast path has checked."""
    from thor.http import parser as module
    for cache in (
        module._plain_lines, module._special_lines, module._request_lines,
        module._status_lines, module._request_heads, module._response_heads,
    ):
        cache.clear()


GET = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n"


# -- requests -------------------------------------------------------------------


class TestRequestBasics(ParserCase):
    def test_simple_get(self):
        events = self.parse(GET)
        self.assertEqual(events, [
            ("head", b"GET", b"/a?b=c", [(b"Host", b" example.com")], {
                "version": b"1.1", "close": False, "body": NO_BODY,
                "content_length": None, "expect_continue": False, "upgrade": False,
            }),
            ("done", []),
        ])

    def test_headers_as_received(self):
        data = (
            b"GET / HTTP/1.1\r\nhOsT:example.com\r\nX-A:   padded  \t \r\n"
            b"X-Empty:\r\nX-Tab:\tv\tw\r\nX-Obs: caf\xe9\r\nX-A: again\r\n\r\n"
        )
        events = self.parse(data)
        self.assertEqual(head(events)[3], [
            (b"hOsT", b"example.com"), (b"X-A", b"   padded"), (b"X-Empty", b""),
            (b"X-Tab", b"\tv\tw"), (b"X-Obs", b" caf\xe9"), (b"X-A", b" again"),
        ])

    def test_http10(self):
        events = self.parse(b"GET / HTTP/1.0\r\n\r\n")
        attrs = head(events)[4]
        self.assertEqual(attrs["version"], b"1.0")
        self.assertTrue(attrs["close"])
        events = self.parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        self.assertFalse(head(events)[4]["close"])
        events = self.parse(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
        self.assertTrue(head(events)[4]["close"])

    def test_connection_close(self):
        events = self.parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n")
        self.assertTrue(head(events)[4]["close"])
        events = self.parse(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: close\r\n\r\n"
        )
        self.assertTrue(head(events)[4]["close"])

    def test_expect_continue(self):
        data = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok"
        events = self.parse(data)
        self.assertTrue(head(events)[4]["expect_continue"])
        self.assertEqual(body(events), b"ok")
        # RFC 9110 10.1.1: ignored in HTTP/1.0
        events = self.parse(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")
        self.assertFalse(head(events)[4]["expect_continue"])

    def test_content_length_body(self):
        data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
        events = self.parse(data)
        self.assertEqual(head(events)[4]["body"], LENGTH)
        self.assertEqual(head(events)[4]["content_length"], 11)
        self.assertEqual(events[1:], [("body", b"hello world"), ("done", [])])

    def test_content_length_zero(self):
        events = self.parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(head(events)[4]["content_length"], 0)
        self.assertEqual(events[1:], [("done", [])])

    def test_content_length_leading_zeros(self):
        events = self.parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc")
        self.assertEqual(body(events), b"abc")

    def test_chunked_body(self):
        data = (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=val;flag\r\n \r\nA \t; q=\"a;\\\"b\"\r\n0123456789\r\n"
            b"0\r\n\r\n"
        )
        events = self.parse(data)
        self.assertEqual(head(events)[4]["body"], CHUNKED)
        self.assertEqual(body(events), b"hello 0123456789")
        self.assertEqual(events[-1], ("done", []))

    def test_trailers(self):
        data = (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Sum: 123 \r\nContent-Length: 5\r\nhost: evil\r\n"
            b"X-Folded: a\r\n b\r\nContent-Type: text/evil\r\n\r\n"
        )
        events = self.parse(data)
        self.assertEqual(events[-1], ("done", [(b"X-Sum", b" 123"), (b"X-Folded", b" a b")]))

    def test_pipelined_three(self):
        data = (
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            b"PUT /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        )
        events = self.parse(data)
        kinds = [(e[0], e[2] if e[0] == "head" else e[1]) for e in events]
        self.assertEqual(kinds, [
            ("head", b"/1"), ("done", []), ("head", b"/2"), ("body", b"abc"), ("done", []),
            ("head", b"/3"), ("body", b"de"), ("done", []),
        ])

    def test_many_pipelined_no_recursion(self):
        data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 5000
        rec, parser = make_parser()
        parser.feed(data)
        self.assertEqual(len(rec.events), 10000)

    def test_leading_empty_lines(self):
        events = self.parse(b"\r\n" * 10 + GET)
        self.assertOk(events)
        self.assertEqual(len(events), 2)
        events = self.parse(GET + b"\r\n\r\n" + GET)
        self.assertEqual([e[0] for e in events], ["head", "done", "head", "done"])
        self.request_fails(b"\r\n" * 11 + GET, error.StartLineError)

    def test_leading_bare_lf(self):
        self.request_fails(b"\n" + GET, error.StartLineError)
        self.assertOk(self.parse(b"\n\r\n" + GET, lenient_bare_lf=True))

    def test_obs_fold(self):
        data = b"GET / HTTP/1.1\r\nHost: a\r\nX-F: one\r\n  two \r\n\tthree\r\n \r\nX-G: g\r\n\r\n"
        events = self.parse(data)
        self.assertEqual(head(events)[3], [
            (b"Host", b" a"), (b"X-F", b" one two three"), (b"X-G", b" g"),
        ])
        data = (b"GET / HTTP/1.1\r\nHost: a\r\nX-E:\r\n \r\n\t\r\n x \r\n \r\n y\r\n"
                b"X-F: f \r\n \r\nX-G: g\r\n\r\n")
        events = self.parse(data)
        self.assertEqual(head(events)[3], [
            (b"Host", b" a"), (b"X-E", b" x y"), (b"X-F", b" f"), (b"X-G", b" g"),
        ])

    def test_obs_fold_host_counts_once(self):
        events = self.parse(b"GET / HTTP/1.1\r\nHost:\r\n example.com\r\n\r\n")
        self.assertEqual(head(events)[3], [(b"Host", b" example.com")])

    def test_methods_and_forms(self):
        for line in (
            b"OPTIONS * HTTP/1.1", b"CONNECT example.com:443 HTTP/1.1",
            b"CONNECT [::1]:8080 HTTP/1.1", b"GET http://example.com/x HTTP/1.1",
            b"GET https://example.com HTTP/1.1", b"M-SEARCH /x HTTP/1.1",
            b"get /lower-case-is-another-method HTTP/1.1", b"GET //double HTTP/1.1",
        ):
            with self.subTest(line=line):
                events = run(line + b"\r\nHost: a\r\n\r\n", True)
                self.assertOk(events)
                self.assertEqual(events[0][0], "head")

    def test_request_version_exactly_10_or_11(self):
        # RFC 9112 2.3 / the issue: a request is HTTP/1.0 or HTTP/1.1; a
        # later minor version is refused with 505 rather than guessed at.
        for line in (b"GET / HTTP/1.2", b"GET / HTTP/1.9"):
            with self.subTest(line=line):
                self.request_fails(line + b"\r\nHost: a\r\n\r\n", error.HttpVersionError)

    def test_long_request_line_within_limit(self):
        target = b"/" + b"a" * 100
        line = b"GET " + target + b" HTTP/1.1"
        events = self.parse(line + b"\r\nHost: a\r\n\r\n", max_start_line=len(line))
        self.assertEqual(head(events)[2], target)


class TestRequestLineErrors(ParserCase):
    def check(self, line, cls=error.StartLineError, **kw):
        with self.subTest(line=line):
            self.request_fails(line + b"\r\nHost: a\r\n\r\n", cls, **kw)

    def test_bad_request_lines(self):
        for line in (
            b"GET  / HTTP/1.1", b"GET / HTTP/1.1 ", b" GET / HTTP/1.1", b"GET /",
            b"GET / HTTP/1.1 extra", b"GET\t/ HTTP/1.1", b"GET /\tx HTTP/1.1",
            b"G(T / HTTP/1.1", b"GET / HTTP/1.1x", b"GET / HTTP/11",
            b"GET / HTTP/1.", b"GET / HTTP/a.b", b"GET / HTTP/1.1/", b"GET / /1.1", b"",
            b"GET /caf\xe9 HTTP/1.1", b"GET /\x7f HTTP/1.1", b"GET /\x00 HTTP/1.1",
            b"GET /a\rb HTTP/1.1", b"/ HTTP/1.1",
        ):
            self.check(line)

    def test_target_forms(self):
        for line in (
            b"CONNECT / HTTP/1.1", b"CONNECT example.com HTTP/1.1",
            b"CONNECT example.com: HTTP/1.1", b"CONNECT :443 HTTP/1.1",
            b"CONNECT http://example.com:443 HTTP/1.1", b"CONNECT a@b:443 HTTP/1.1",
            b"GET * HTTP/1.1", b"GET example.com:80 HTTP/1.1", b"GET http:/x HTTP/1.1",
            b"GET http:// HTTP/1.1", b"GET 1http://x/ HTTP/1.1", b"GET ://x HTTP/1.1",
            b"OPTIONS ** HTTP/1.1",
        ):
            self.check(line)

    def test_absolute_form_authority(self):
        # RFC 9112 3.2.2: the target's authority says where the request
        # goes, so it must read one way only. RFC 9110 4.2.1: empty host in
        # an http(s) URI is invalid; 4.2.4: userinfo in one is an error
        # (http://good.example@evil.example/ goes to evil.example).
        for line in (
            b"GET http://user@evil/ HTTP/1.1", b"GET http://a:b@evil/ HTTP/1.1",
            b"GET https://good.example@evil.example HTTP/1.1", b"GET http://@a/ HTTP/1.1",
            b"GET http://?x HTTP/1.1", b"GET http://:80/ HTTP/1.1", b"GET http://#f HTTP/1.1",
            b"GET http://a\\b/ HTTP/1.1", b"GET http://a\\@b/ HTTP/1.1",
            b"GET http://a:8o/ HTTP/1.1", b"GET http://a:1:2/ HTTP/1.1",
            b"GET http://[::1/ HTTP/1.1", b"GET http://[::1]x/ HTTP/1.1",
            b"GET http://a]/ HTTP/1.1", b"GET http://%zz/ HTTP/1.1",
            b"GET http://a{b}/ HTTP/1.1", b"GET ftp://us\"er@a/ HTTP/1.1",
        ):
            self.check(line)

    def test_absolute_form_authority_ok(self):
        for target in (
            b"http://a.example:8080/x?y#z", b"HTTP://A.EXAMPLE", b"http://[::1]:80/",
            b"https://a.example?q", b"http://a.example:/", b"http://xn--caf-dma.example/",
            b"http://%41.example/", b"ftp://user:pw@a.example/f", b"foo://a/b",
        ):
            with self.subTest(target=target):
                events = self.parse(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                self.assertEqual(head(events)[2], target)

    def test_connect_port(self):
        # RFC 9110 9.3.6: a CONNECT with an empty or invalid port is rejected.
        for line in (b"CONNECT a:0 HTTP/1.1", b"CONNECT a:65536 HTTP/1.1",
                     b"CONNECT a:99999999999 HTTP/1.1", b"CONNECT a:000443 HTTP/1.1",
                     b"CONNECT a:b:443 HTTP/1.1", b"CONNECT [::1]443 HTTP/1.1",
                     b"CONNECT [::1:443 HTTP/1.1", b"CONNECT a]:443 HTTP/1.1"):
            self.check(line)
        for target in (b"a:65535", b"a:1", b"[::1]:443", b"a:0443"):
            with self.subTest(target=target):
                events = self.parse(b"CONNECT " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                self.assertEqual(head(events)[2], target)

    def test_version(self):
        self.check(b"GET / HTTP/2.0", error.HttpVersionError)
        self.check(b"GET / HTTP/0.9", error.HttpVersionError)
        self.assertEqual(error.HttpVersionError.server_status[0], b"505")

    def test_request_line_too_long(self):
        line = b"GET /" + b"a" * 200 + b" HTTP/1.1"
        self.check(line, error.UriTooLongError, max_start_line=len(line) - 1)
        # Reported as soon as the limit is passed, without waiting for CRLF.
        events = run(line, True, max_start_line=50)
        self.assertFails(events[:-1], error.UriTooLongError)

    def test_bare_lf_and_cr(self):
        self.request_fails(b"GET / HTTP/1.1\nHost: a\r\n\r\n", error.StartLineError)
        self.request_fails(b"GET / HTTP/1.1\rHost: a\r\n\r\n", error.StartLineError)
        events = self.parse(b"GET / HTTP/1.1\nHost: a\n\n", lenient_bare_lf=True)
        self.assertEqual(head(events)[3], [(b"Host", b" a")])
        self.request_fails(b"GET / HTTP/1.1\rHost: a\n\n", error.StartLineError,
                           lenient_bare_lf=True)

    def test_bare_lf_head_fails_without_waiting(self):
        events = run(b"GET / HTTP/1.1\nHost: a\n", True)
        self.assertFails(events[:-1], error.StartLineError)
        events = run(b"GET / HTTP/1.1\r\nHost: a\n", True)
        self.assertFails(events[:-1], error.BadFieldError)


class TestFieldErrors(ParserCase):
    def check(self, fields, cls, start=b"GET / HTTP/1.1\r\nHost: a\r\n", **kw):
        with self.subTest(fields=fields):
            return self.request_fails(start + fields + b"\r\n", cls, **kw)

    def test_space_before_colon(self):
        self.check(b"X-A : b\r\n", error.HeaderSpaceError)
        self.check(b"X-A\t: b\r\n", error.HeaderSpaceError)
        self.request_fails(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", error.HeaderSpaceError)

    def test_space_after_start_line(self):
        self.request_fails(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", error.TopLineSpaceError)
        self.request_fails(b"GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", error.TopLineSpaceError)

    def test_bad_fields(self):
        for fields in (
            b"NoColon\r\n", b": empty-name\r\n", b"X(y): z\r\n", b"X y: z\r\n",
            b"X-A: a\x00b\r\n", b"X-A: a\x01b\r\n", b"X-A: a\x7fb\r\n", b"X-A: a\rb\r\n",
            b"X-A: a\x1b\r\n", b"X\xe9: a\r\n", b"X-A: a\nX-B: b\r\n", b"X-A: a\r\r\n",
            b"Host\r\n",
        ):
            self.check(fields, error.BadFieldError)

    def test_first_error_in_byte_order_wins(self):
        # The bad name comes first; the NUL later, the size limit later still.
        self.check(b"X y: z\r\nX-A: \x00\r\n", error.BadFieldError)
        self.check(b"X : z\r\nX-A: \x00\r\n", error.HeaderSpaceError)
        self.check(b"X : z\r\nX-A: a\nb", error.HeaderSpaceError)
        self.check(b"X : z\r\n" + b"X-B: " + b"b" * 200 + b"\r\n", error.HeaderSpaceError,
                   max_field_section=100)
        self.request_fails(b"GET\t/ HTTP/1.1\r\nX : z\r\n\r\n", error.StartLineError)

    def test_too_many_fields(self):
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(9))
        self.assertOk(self.parse(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n",
                                 max_fields=10))
        self.check(fields + b"X-9: v\r\n", error.TooManyFieldsError, max_fields=10)

    def test_folded_lines_are_not_fields(self):
        fields = b"".join(b"X-%d: v\r\n w\r\n" % i for i in range(9))
        self.assertOk(self.parse(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n",
                                 max_fields=10))

    def test_field_section_limit(self):
        start = b"GET / HTTP/1.1\r\n"
        fields = b"Host: a\r\nX-A: " + b"a" * 50 + b"\r\n"
        data = start + fields + b"\r\n"
        self.assertOk(self.parse(data, max_field_section=len(fields)))
        self.request_fails(data, error.FieldSectionTooLargeError,
                           max_field_section=len(fields) - 1)
        self.request_fails(start + b"Host: a\r\nX-A: " + b"a" * 100,
                           error.FieldSectionTooLargeError, max_field_section=50)

    def test_field_section_limit_no_fields(self):
        self.assertOk(self.parse(b"GET / HTTP/1.0\r\n\r\n", max_field_section=0))


class TestHost(ParserCase):
    def test_host_required(self):
        self.request_fails(b"GET / HTTP/1.1\r\n\r\n", error.HostRequiredError)
        self.request_fails(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
                           error.HostRequiredError)
        self.request_fails(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
                           error.HostRequiredError)
        self.assertOk(self.parse(b"GET / HTTP/1.0\r\n\r\n"))

    def test_host_values(self):
        for host in (b"", b"a.example:8080", b"[::1]:80", b"xn--caf-dma.example", b"%41"):
            with self.subTest(host=host):
                self.assertOk(self.parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"))
        for host in (b"a b", b"a/b", b"a?b", b"a#b", b"user@a", b"a\\b", b"caf\xe9"):
            with self.subTest(host=host):
                self.request_fails(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
                                   error.HostRequiredError)


    def test_host_syntax(self):
        # RFC 9112 3.2: a Host field with an invalid value gets a 400; the
        # value is uri-host [":" port] (RFC 3986 3.2.2, 3.2.3).
        for host in (b"a:b:c", b"a:8o", b"[::1", b"[::1]x", b"[::1]:8o", b"a]", b"a[b]",
                     b"[]", b"%4", b"%zz.example", b"a:1:2", b":::"):
            with self.subTest(host=host):
                self.request_fails(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
                                   error.HostRequiredError)
        for host in (b"a:", b"[::1]", b"[v1.x]:80", b"192.0.2.1:65535", b"a_b~c!$&'()*+,;=",
                     b"%41%42.example"):
            with self.subTest(host=host):
                self.assertOk(self.parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"))


class TestFraming(ParserCase):
    def post(self, fields, rest=b""):
        return b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n" + rest

    def test_malformed_content_length(self):
        for value in (
            b"+5", b"-1", b"0x5", b"5 5", b"", b"5_0", b"1e3", b"5,", b",5", b"five",
            b"\xb2", b"1" * 19, b"5;", b"5\t,\t",
        ):
            with self.subTest(value=value):
                self.request_fails(self.post(b"Content-Length: " + value + b"\r\n"),
                                   error.MalformedCLError)

    def test_content_length_limits(self):
        events = run(self.post(b"Content-Length: " + b"9" * 18 + b"\r\n", b"ab"), True)
        self.assertEqual(events[0][4]["content_length"], 10 ** 18 - 1)

    def test_repeated_content_length(self):
        events = self.parse(self.post(b"Content-Length: 3, 3\r\n", b"abc"))
        self.assertEqual(body(events), b"abc")
        events = self.parse(self.post(b"Content-Length: 3\r\nContent-Length: 3\r\n", b"abc"))
        self.assertEqual(body(events), b"abc")

    def test_no_framing_no_body(self):
        events = self.parse(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(head(events)[4]["body"], NO_BODY)
        self.assertEqual(events[-1], ("done", []))

    def test_transfer_codings(self):
        ok = (b"chunked", b" chunked", b"chunked ", b"CHUNKED", b"Chunked")
        for value in ok:
            with self.subTest(value=value):
                events = self.parse(self.post(b"Transfer-Encoding:" + value + b"\r\n",
                                              b"0\r\n\r\n"))
                self.assertEqual(head(events)[4]["body"], CHUNKED)
        cases = [
            (b"Transfer-Encoding: gzip, chunked\r\n", error.TransferCodeError),
            (b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
             error.TransferCodeError),
            (b"Transfer-Encoding: chunked, gzip\r\n", error.BadTransferCodeError),
            (b"Transfer-Encoding: chunked, chunked\r\n", error.BadTransferCodeError),
            (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
             error.BadTransferCodeError),
            (b"Transfer-Encoding: gzip\r\n", error.BadTransferCodeError),
            (b"Transfer-Encoding: \r\n", error.BadTransferCodeError),
            (b"Transfer-Encoding: ,\r\n", error.BadTransferCodeError),
            (b"Transfer-Encoding: chunked;q=1\r\n", error.BadTransferCodeError),
            (b"Transfer-Encoding: \"chunked\"\r\n", error.BadTransferCodeError),
        ]
        for fields, cls in cases:
            with self.subTest(fields=fields):
                self.request_fails(self.post(fields, b"0\r\n\r\n"), cls)
        self.assertEqual(error.TransferCodeError.server_status[0], b"501")

    def test_transfer_encoding_in_http10(self):
        self.request_fails(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            error.BadTransferCodeError,
        )


# -- request smuggling: every class by name ------------------------------------


SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"


class TestSmuggling(ParserCase):
    def assertRejected(self, data, cls):
        events = self.parse(data)
        self.assertFails(events, cls)
        # Nothing of the message, let alone of the smuggled one, got through.
        self.assertEqual([e[0] for e in events], ["error"])

    def test_cl_te(self):
        # The front end frames by Content-Length, we would by chunked.
        data = (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"
        )
        self.assertRejected(data, error.CLTEError)

    def test_te_cl(self):
        # The front end frames by chunked, we would by Content-Length.
        data = (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 4\r\n\r\n5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"
        )
        self.assertRejected(data, error.CLTEError)

    def test_te_cl_obfuscated_te(self):
        for te in (b"Transfer-Encoding: xchunked", b"Transfer-Encoding: chunked, identity",
                   b"Transfer-Encoding: identity"):
            with self.subTest(te=te):
                data = b"POST / HTTP/1.1\r\nHost: a\r\n" + te + b"\r\nContent-Length: 3\r\n\r\nabc"
                self.assertRejected(data, error.CLTEError)

    def test_te_te(self):
        # Two parsers disagreeing on whether Transfer-Encoding says chunked.
        cases = [
            (b"Transfer-Encoding: xchunked", error.BadTransferCodeError),
            (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x", error.BadTransferCodeError),
            (b"Transfer-Encoding: chunked, x", error.BadTransferCodeError),
            (b"Transfer-Encoding : chunked", error.HeaderSpaceError),
            (b"Transfer-Encoding\t: chunked", error.HeaderSpaceError),
            (b" Transfer-Encoding: chunked", error.BadFieldError),
            (b"Transfer-Encoding: \x0bchunked", error.BadFieldError),
            (b"Transfer-Encoding: chunked\x00", error.BadFieldError),
            (b"Transfer-Encoding: chu\rnked", error.BadFieldError),
            (b"Transfer-Encoding\x00: chunked", error.BadFieldError),
            (b"Transfer-Encoding: chunked\nX: y", error.BadFieldError),
            (b"Transfer-Encoding:\r\n\tchunked\r\nTransfer-Encoding: x",
             error.BadTransferCodeError),
            (b"Transfer-Encoding: chunked\r\nTransfer-encoding: chunked",
             error.BadTransferCodeError),
            (b"Transfer-Encoding: \"chunked\"", error.BadTransferCodeError),
        ]
        for te, cls in cases:
            with self.subTest(te=te):
                if te.startswith(b" "):
                    data = b"POST / HTTP/1.1\r\n" + te + b"\r\nHost: a\r\n\r\n0\r\n\r\n"
                    cls = error.TopLineSpaceError
                else:
                    data = b"POST / HTTP/1.1\r\nHost: a\r\n" + te + b"\r\n\r\n0\r\n\r\n"
                self.assertRejected(data, cls)

    def test_te_te_harmless_variants_agree(self):
        # Whitespace around the value and case are not obfuscation (OWS, RFC 9110 5.5).
        for te in (b"Transfer-Encoding:chunked", b"Transfer-Encoding:\t chunked \t",
                   b"transfer-encoding: Chunked"):
            with self.subTest(te=te):
                data = (b"POST / HTTP/1.1\r\nHost: a\r\n" + te + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                        + SMUGGLED)
                events = self.parse(data)
                self.assertEqual(body(events), b"abc")
                self.assertEqual([e[2] for e in events if e[0] == "head"], [b"/", b"/admin"])

    def test_cl_cl(self):
        for fields in (b"Content-Length: 3\r\nContent-Length: 40",
                       b"Content-Length: 3, 40", b"Content-Length: 3\r\nContent-Length: 3, 4",
                       b"Content-Length: 3\r\nContent-Length: 03"):
            with self.subTest(fields=fields):
                data = b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n\r\nabc" + SMUGGLED
                self.assertRejected(data, error.DuplicateCLError)

    def test_cl_cl_malformed(self):
        for fields in (b"Content-Length: 3 4", b"Content-Length: 3\r\nContent-Length: +3",
                       b"Content-Length: 0x3"):
            with self.subTest(fields=fields):
                data = b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n\r\nabc"
                self.assertRejected(data, error.MalformedCLError)

    def test_chunk_size_tricks(self):
        # Sizes other parsers might read differently: sign, prefix, overflow.
        for size in (b"+3", b"-3", b"0x3", b"3 ", b" 3", b"3_0", b"1" + b"0" * 16,
                     b"\xef\xbc\x93", b""):
            with self.subTest(size=size):
                data = (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + size + b"\r\nabc\r\n0\r\n\r\n")
                events = self.parse(data)
                self.assertFails(events, error.ChunkError)
                self.assertEqual(events[0][0], "head")


# -- chunked --------------------------------------------------------------------


class TestChunked(ParserCase):
    HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

    def chunked(self, rest, **kw):
        return self.parse(self.HEAD + rest, **kw)

    def test_sizes(self):
        events = self.chunked(b"a\r\n0123456789\r\nA\r\n0123456789\r\n0003\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(body(events), b"01234567890123456789abc")
        self.assertEqual(events[-1], ("done", []))

    def test_sixteen_digits(self):
        events = self.chunked(b"000000000000000F\r\n" + b"x" * 15 + b"\r\n0\r\n\r\n")
        self.assertEqual(body(events), b"x" * 15)
        events = self.parse(self.HEAD + b"FFFFFFFFFFFFFFFF\r\nabc", finish=True)
        self.assertEqual(body(events), b"abc")
        self.assertFails(events, error.IncompleteBodyError)
        events = self.chunked(b"00000000000000000\r\n\r\n")
        self.assertFails(events, error.ChunkError)

    def test_extensions(self):
        for ext in (b";a", b";a=b", b" ;a", b"\t; a = b", b';a="q;\\"x"', b";a;b=c;d=\"\"",
                    b';a="\xe9"'):
            with self.subTest(ext=ext):
                events = self.chunked(b"3" + ext + b"\r\nabc\r\n0" + ext + b"\r\n\r\n")
                self.assertEqual(body(events), b"abc")
                self.assertEqual(events[-1], ("done", []))

    def test_bad_extensions(self):
        for ext in (b";", b"; ", b";a=", b";=b", b";a=b c", b';a="x', b";a b", b";a=\x01",
                    b";a\x00", b";(a)", b';a="\x00"', b"g"):
            with self.subTest(ext=ext):
                events = self.chunked(b"3" + ext + b"\r\nabc\r\n0\r\n\r\n")
                self.assertFails(events, error.ChunkError)

    def test_extension_limit(self):
        ext = b";a=" + b"b" * 30
        self.assertOk(self.chunked(b"3" + ext + b"\r\nabc\r\n0\r\n\r\n", max_chunk_ext=len(ext)))
        events = self.chunked(b"3" + ext + b"\r\nabc\r\n0\r\n\r\n", max_chunk_ext=len(ext) - 1)
        self.assertFails(events, error.ChunkExtTooLargeError)
        events = self.chunked(b"3;a=" + b"b" * 100, max_chunk_ext=20)
        self.assertFails(events, error.ChunkExtTooLargeError)
        events = self.chunked(b"3" * 100, max_chunk_ext=20)
        self.assertFails(events, error.ChunkError)

    def test_data_not_followed_by_crlf(self):
        for rest in (b"3\r\nabcd\r\n0\r\n\r\n", b"3\r\nabc\n0\r\n\r\n", b"3\r\nabc\r0\r\n\r\n",
                     b"3\r\nabc0\r\n\r\n"):
            with self.subTest(rest=rest):
                self.assertFails(self.chunked(rest), error.ChunkError)

    def test_size_line_endings(self):
        for rest in (b"3\nabc\r\n0\r\n\r\n", b"3\rabc\r\n0\r\n\r\n", b"\r\n3\r\nabc\r\n",
                     b"3\r\r\nabc\r\n", b"0\n\r\n"):
            with self.subTest(rest=rest):
                self.assertFails(self.chunked(rest), error.ChunkError)
        # lenient_bare_lf covers the head only.
        events = self.chunked(b"3\nabc\r\n0\r\n\r\n", lenient_bare_lf=True)
        self.assertFails(events, error.ChunkError)

    def test_trailer_errors(self):
        cases = [
            (b"X : y\r\n\r\n", error.HeaderSpaceError),
            (b" X: y\r\n\r\n", error.BadFieldError),
            (b"X: \x00\r\n\r\n", error.BadFieldError),
            (b"X\r\n\r\n", error.BadFieldError),
            (b"X: y\n\r\n", error.BadFieldError),
            (b"X: y\r\n\n", error.BadFieldError),
        ]
        for trailers, cls in cases:
            with self.subTest(trailers=trailers):
                self.assertFails(self.chunked(b"0\r\n" + trailers), cls)

    def test_trailer_limits(self):
        trailers = b"X-A: " + b"a" * 40 + b"\r\nX-B: b\r\n"
        events = self.chunked(b"0\r\n" + trailers + b"\r\n", max_trailer_section=len(trailers))
        self.assertEqual(events[-1], ("done", [(b"X-A", b" " + b"a" * 40), (b"X-B", b" b")]))
        events = self.chunked(b"0\r\n" + trailers + b"\r\n",
                              max_trailer_section=len(trailers) - 1)
        self.assertFails(events, error.TrailerTooLargeError)
        events = self.chunked(b"0\r\nX: " + b"y" * 100, max_trailer_section=50)
        self.assertFails(events, error.TrailerTooLargeError)
        events = self.chunked(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", max_fields=2)
        self.assertFails(events, error.TooManyFieldsError)

    def test_lenient_trailers(self):
        events = self.chunked(b"0\r\nX: y\n\n", lenient_bare_lf=True)
        self.assertEqual(events[-1], ("done", [(b"X", b" y")]))
        events = self.chunked(b"0\r\n\n", lenient_bare_lf=True)
        self.assertEqual(events[-1], ("done", []))


# -- responses ------------------------------------------------------------------


class TestResponses(ParserCase):
    def test_simple(self):
        events = self.response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello")
        self.assertEqual(events, [
            ("response", b"200", b"OK", [(b"Content-Length", b" 5"), (b"X", b" y")], {
                "version": b"1.1", "close": False, "body": LENGTH, "content_length": 5,
                "expect_continue": False, "upgrade": False,
            }),
            ("body", b"hello"), ("done", []),
        ])

    def test_status_lines(self):
        for line, status, phrase in (
            (b"HTTP/1.1 200", b"200", b""), (b"HTTP/1.1 200 ", b"200", b""),
            (b"HTTP/1.1 404 Not  Found ", b"404", b"Not  Found "),
            (b"HTTP/1.1 200 \tOK\xff", b"200", b"\tOK\xff"), (b"HTTP/1.0 599 x", b"599", b"x"),
            (b"HTTP/1.1 100 Continue", b"100", b"Continue"),
        ):
            with self.subTest(line=line):
                events = run(line + b"\r\nContent-Length: 0\r\n\r\n", False, (b"GET",))
                self.assertOk(events)
                self.assertEqual(events[0][1:3], (status, phrase))

    def test_bad_status_lines(self):
        for line in (
            b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 099 X", b"HTTP/1.1 600 X",
            b"HTTP/1.1  200 OK", b"HTTP/1.1 2x0 OK", b"HTTP/2 200 OK", b"HTTP/1.1",
            b"HTTP/1.1 200\tOK", b"HTTP/1.1 200 O\x00K", b"HTTP/1.1 200 O\x7fK", b"ICY 200 OK",
            b" HTTP/1.1 200 OK", b"HTTP/1.1/ 200 OK", b"H(TTP/1.1 200 OK",
        ):
            with self.subTest(line=line):
                events = self.response(line + b"\r\nContent-Length: 0\r\n\r\n")
                self.assertFails(events, error.StartLineError)
        events = self.response(b"HTTP/2.0 200 OK\r\n\r\n")
        self.assertFails(events, error.HttpVersionError)

    def test_empty_lines_before_response_rejected(self):
        events = self.response(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertFails(events, error.StartLineError)

    def test_status_line_too_long(self):
        events = self.response(b"HTTP/1.1 200 " + b"x" * 100 + b"\r\n\r\n", max_start_line=50)
        self.assertFails(events, error.StartLineTooLongError)
        self.assertIsNone(error.StartLineTooLongError.server_status)

    def test_nonfinal(self):
        data = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        events = self.response(data)
        self.assertEqual([e[0] for e in events], ["nonfinal", "nonfinal", "response", "body", "done"])
        self.assertEqual(events[1], ("nonfinal", b"103", b"Early Hints", [(b"Link", b" </s>")]))

    def test_no_body_statuses(self):
        for status in (b"204", b"304"):
            with self.subTest(status=status):
                data = (b"HTTP/1.1 " + status + b" X\r\nContent-Length: 10\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
                events = self.response(data)
                self.assertEqual(head(events)[4]["body"], NO_BODY)
                self.assertEqual(events[-1], ("done", []))

    def test_head_response(self):
        data = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        events = self.response(data, expect=(b"HEAD", b"GET"))
        self.assertEqual([e[0] for e in events], ["response", "done", "response", "body", "done"])
        self.assertEqual(events[0][4]["body"], NO_BODY)

    def test_close_delimited(self):
        events = self.response(b"HTTP/1.1 200 OK\r\n\r\nabc", finish=True)
        attrs = head(events)[4]
        self.assertEqual((attrs["body"], attrs["close"]), (UNTIL_CLOSE, True))
        self.assertEqual(events[1:], [("body", b"abc"), ("done", [])])
        events = self.response(b"HTTP/1.0 200 OK\r\n\r\n", finish=True)
        self.assertEqual(events[1:], [("done", [])])
        events = self.response(b"HTTP/1.0 200 OK\r\n\r\nabc")
        self.assertEqual(events[1:], [("body", b"abc")])

    def test_chunked_response(self):
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\n\r\n"
        events = self.response(data)
        self.assertEqual(head(events)[4]["body"], CHUNKED)
        self.assertFalse(head(events)[4]["close"])
        self.assertEqual(events[-2:], [("body", b"abc"), ("done", [(b"X", b" y")])])

    def test_te_wins_over_cl_and_closes(self):
        data = (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n")
        events = self.response(data)
        attrs = head(events)[4]
        self.assertEqual((attrs["body"], attrs["close"], attrs["content_length"]),
                         (CHUNKED, True, None))
        self.assertEqual(body(events), b"abc")

    def test_te_not_chunked_reads_to_close(self):
        for te in (b"gzip", b"chunked, gzip", b"xchunked"):
            with self.subTest(te=te):
                data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\nzzz"
                events = self.response(data, finish=True)
                self.assertEqual(head(events)[4]["body"], UNTIL_CLOSE)
                self.assertEqual(events[1:], [("body", b"zzz"), ("done", [])])

    def test_te_in_http10_response_reads_to_close(self):
        data = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        events = self.response(data, finish=True)
        self.assertEqual(head(events)[4]["body"], UNTIL_CLOSE)
        self.assertEqual(body(events), b"0\r\n\r\n")

    def test_response_transfer_coding_errors(self):
        for te, cls in ((b"chunked, chunked", error.BadTransferCodeError),
                        (b"", error.BadTransferCodeError)):
            with self.subTest(te=te):
                data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
                self.assertFails(self.response(data), cls)

    def test_response_content_length_errors(self):
        self.assertFails(self.response(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"),
                         error.DuplicateCLError)
        self.assertFails(self.response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
                         error.MalformedCLError)

    def test_keep_alive(self):
        events = self.response(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
        self.assertFalse(head(events)[4]["close"])
        events = self.response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(head(events)[4]["close"])
        events = self.response(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(head(events)[4]["close"])

    def test_pipelined_responses(self):
        data = (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")
        events = self.response(data, expect=(b"GET", b"GET", b"GET"))
        self.assertEqual([e[0] for e in events],
                         ["response", "body", "done", "response", "body", "done", "response", "done"])

    def test_extra_data(self):
        events = self.response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab")
        self.assertEqual([e[0] for e in events], ["response", "body", "done", "error"])
        self.assertFails(events, error.ExtraDataError)
        events = self.response(b"HTTP/1.1 200 OK\r\n\r\n", expect=())
        self.assertFails(events, error.ExtraDataError)
        self.assertEqual(len(events), 1)

    def test_expect_response_from_inside_done(self):
        class Next(Recorder):
            def on_message_done(self, trailers):
                Recorder.on_message_done(self, trailers)
                if len(self.events) < 4:
                    self.parser.expect_response(b"GET")
        rec, parser = make_parser(False, Next)
        parser.expect_response(b"GET")
        parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n" * 2)
        self.assertEqual([e[0] for e in rec.events], ["response", "done", "response", "done"])


class TestProtocolSwitch(ParserCase):
    def test_connect_request(self):
        data = b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01tls"
        events = self.parse(data)
        self.assertEqual(events[1:], [("done", []), ("end", True, b"\x16\x03\x01tls")])

    def test_connect_request_has_no_content(self):
        # RFC 9110 9.3.6: a CONNECT request has no content; the bytes after
        # its head are for the tunnel. Framing fields saying otherwise would
        # let a front end and thor read those bytes two ways.
        rest = b"\r\n\r\nhello" + SMUGGLED
        for fields, cls in (
            (b"Content-Length: 5", error.MalformedCLError),
            (b"Transfer-Encoding: chunked", error.BadTransferCodeError),
            (b"Content-Length: 0\r\nContent-Length: 5", error.DuplicateCLError),
        ):
            with self.subTest(fields=fields):
                events = self.parse(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n" + fields + rest)
                self.assertFails(events, cls)
                self.assertEqual(len(events), 1)
        events = self.parse(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 0\r\n"
                            b"\r\n\x16\x03")
        self.assertEqual(events[1:], [("done", []), ("end", True, b"\x16\x03")])

    def test_upgrade_request(self):
        data = (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                b"\x81\x05hello")
        events = self.parse(data)
        self.assertTrue(head(events)[4]["upgrade"])
        self.assertEqual(events[-1], ("end", True, b"\x81\x05hello"))

    def test_upgrade_needs_connection_token(self):
        data = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n" + GET
        events = self.parse(data)
        self.assertFalse(head(events)[4]["upgrade"])
        self.assertEqual([e[0] for e in events], ["head", "done", "head", "done"])
        data = b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        self.assertFalse(head(self.parse(data))[4]["upgrade"])

    def test_upgrade_declined_resume(self):
        data = (b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" + GET)
        rec, parser = make_parser()
        parser.feed(data)
        self.assertTrue(parser.paused)
        self.assertEqual(len(rec.events), 2)
        parser.resume()
        self.assertEqual([e[0] for e in rec.events], ["head", "done", "head", "done"])
        self.assertFalse(parser.paused)

    def test_upgrade_request_with_body(self):
        data = (b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n"
                b"Content-Length: 3\r\n\r\nabcNEW")
        events = self.parse(data)
        self.assertEqual(events[1:], [("body", b"abc"), ("done", []), ("end", True, b"NEW")])

    def test_101_response(self):
        data = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
                b"\x81\x00")
        events = self.response(data)
        self.assertEqual(events[0][0], "response")
        self.assertEqual(events[1:], [("done", []), ("end", True, b"\x81\x00")])

    def test_connect_response(self):
        data = b"HTTP/1.1 200 Connection established\r\nContent-Length: 5\r\n\r\n\x16\x03"
        events = self.response(data, expect=(b"CONNECT",))
        self.assertEqual(events[1:], [("done", []), ("end", True, b"\x16\x03")])
        data = b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno"
        events = self.response(data, expect=(b"CONNECT",))
        self.assertEqual(events[1:], [("body", b"no"), ("done", [])])


class TestEndOfInput(ParserCase):
    def test_idle(self):
        self.assertEqual(self.parse(b"", finish=True), [])
        self.assertEqual(self.parse(GET, finish=True), self.parse(GET))
        self.assertEqual(len(self.parse(GET + b"\r\n", finish=True)), 2)

    def test_incomplete_head(self):
        for data in (b"G", b"GET / HTTP/1.1\r\nHost: a\r\n", b"GET / HTTP/1.1\r\n\r", b"\r"):
            with self.subTest(data=data):
                events = self.parse(data, finish=True)
                self.assertFails(events, error.IncompleteHeadError)
        events = self.response(b"HTTP/1.1 200 OK\r\n", finish=True)
        self.assertFails(events, error.IncompleteHeadError)

    def test_incomplete_body(self):
        for data in (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc",
            TestChunked.HEAD + b"5\r\nabc", TestChunked.HEAD + b"3\r\nabc",
            TestChunked.HEAD + b"3\r\nabc\r\n", TestChunked.HEAD + b"0\r\n",
            TestChunked.HEAD + b"0\r\nX: y\r\n", TestChunked.HEAD + b"3;x",
        ):
            with self.subTest(data=data):
                events = self.parse(data, finish=True)
                self.assertFails(events, error.IncompleteBodyError)

    def test_nothing_after_finish(self):
        rec, parser = make_parser()
        parser.finish()
        parser.feed(GET)
        parser.finish()
        self.assertEqual(rec.events, [])


class TestPauseResume(unittest.TestCase):
    def test_server_style_one_request_at_a_time(self):
        class Server(Recorder):
            def on_message_done(self, trailers):
                Recorder.on_message_done(self, trailers)
                self.parser.pause()
        rec, parser = make_parser(True, Server)
        parser.feed(GET * 3)
        self.assertEqual(len(rec.events), 2)
        self.assertTrue(parser.paused)
        self.assertEqual(parser.buffered, len(GET) * 2)
        self.assertFalse(parser.idle)
        parser.resume()
        self.assertEqual(len(rec.events), 4)
        parser.resume()
        self.assertEqual(len(rec.events), 6)
        self.assertTrue(parser.idle)
        self.assertEqual(parser.buffered, 0)

    def test_pause_in_head_then_feed_buffers(self):
        class Pauser(Recorder):
            def on_request_head(self, *args):
                Recorder.on_request_head(self, *args)
                self.parser.pause()
        rec, parser = make_parser(True, Pauser)
        parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc")
        self.assertEqual([e[0] for e in rec.events], ["head"])
        parser.feed(b"def")
        self.assertEqual(parser.buffered, 6)
        parser.resume()
        self.assertEqual(rec.events[1:], [("body", b"abcdef"), ("done", [])])

    def test_pause_in_body(self):
        class Pauser(Recorder):
            def on_body(self, chunk):
                Recorder.on_body(self, chunk)
                self.parser.pause()
        rec, parser = make_parser(True, Pauser)
        data = TestChunked.HEAD + b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
        parser.feed(data)
        self.assertEqual(rec.events[1:], [("body", b"abc")])
        parser.resume()
        self.assertEqual(rec.events[1:], [("body", b"abcdef")])
        parser.resume()
        self.assertEqual(rec.events[-1], ("done", []))

    def test_pause_in_head_or_body_holds_done(self):
        # A message that is whole in one read: pausing in its head or body
        # call holds back on_message_done until resume().
        class Pauser(Recorder):
            def on_request_head(self, *args):
                Recorder.on_request_head(self, *args)
                self.parser.pause()

            def on_response_head(self, *args):
                Recorder.on_response_head(self, *args)
                self.parser.pause()

            def on_body(self, chunk):
                Recorder.on_body(self, chunk)
                self.parser.pause()
        messages = [
            (True, GET, ["head"]),
            (True, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab",
             ["head"]),
            (False, b"HTTP/1.1 204 No Content\r\n\r\n", ["response"]),
            (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab", ["response"]),
        ]
        for is_request, data, first in messages:
            rec, parser = make_parser(is_request, Pauser)
            parser.expect_response(b"GET")
            parser.feed(data)
            self.assertEqual([e[0] for e in rec.events], first)
            while parser.paused:
                self.assertNotEqual(rec.events[-1][0], "done")
                parser.resume()
            self.assertEqual(rec.events[-1], ("done", []))
            self.assertEqual(len(rec.events), 3 if b"ab" in data else 2)

    def test_resume_and_feed_from_inside_callback(self):
        class Busy(Recorder):
            def on_request_head(self, *args):
                Recorder.on_request_head(self, *args)
                self.parser.pause()
                self.parser.resume()
                self.parser.feed(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n" if len(self.events) == 1 else b"")
        rec, parser = make_parser(True, Busy)
        parser.feed(GET)
        self.assertEqual([e[0] for e in rec.events], ["head", "done", "head", "done"])

    def test_feed_from_inside_callback_while_paused(self):
        class Busy(Recorder):
            def on_message_done(self, trailers):
                Recorder.on_message_done(self, trailers)
                self.parser.pause()
                self.parser.feed(GET)
        rec, parser = make_parser(True, Busy)
        parser.feed(GET)
        self.assertEqual(parser.buffered, len(GET))
        parser.resume()
        self.assertEqual(len(rec.events), 4)

    def test_finish_while_paused(self):
        class Pauser(Recorder):
            def on_request_head(self, *args):
                Recorder.on_request_head(self, *args)
                self.parser.pause()
        rec, parser = make_parser(True, Pauser)
        parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc")
        parser.finish()
        self.assertEqual(len(rec.events), 1)
        parser.resume()
        self.assertEqual(rec.events[1][0], "body")
        self.assertEqual(rec.events[-1][:2], ("error", "IncompleteBodyError"))

    def test_leftover_after_switch_includes_later_input(self):
        rec, parser = make_parser()
        parser.feed(b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\nab")
        parser.feed(b"cd")
        self.assertEqual(parser.leftover(), b"abcd")
        self.assertEqual(parser.leftover(), b"")

    def test_errors_are_sticky(self):
        rec, parser = make_parser()
        parser.feed(b"BAD\r\n\r\n")
        parser.feed(GET)
        parser.finish()
        parser.resume()
        self.assertEqual([e[:2] for e in rec.events], [("error", "StartLineError")])
        self.assertEqual(parser.buffered, 0)

    def test_delegate_exceptions_propagate(self):
        class Boom(Recorder):
            def on_request_head(self, *args):
                raise error.BadHeaderError("application bug")
        rec, parser = make_parser(True, Boom)
        with self.assertRaises(error.BadHeaderError):
            parser.feed(GET)
        self.assertEqual(rec.events, [])

    def test_bytearray_and_memoryview_input(self):
        rec, parser = make_parser()
        parser.feed(bytearray(GET[:10]))
        parser.feed(memoryview(GET[10:]))
        self.assertEqual([e[0] for e in rec.events], ["head", "done"])
        self.assertIs(type(rec.events[0][3][0][1]), bytes)
        # The parser keeps a copy: the owner may reuse its buffer at once.
        rec, parser = make_parser()
        for whole in GET, GET[:30]:
            data = bytearray(whole)
            parser.feed(data)
            data[:] = b"X" * len(data)
        parser.feed(GET[30:])
        self.assertEqual([e[0] for e in rec.events], ["head", "done"] * 2)
        self.assertEqual(rec.events[0], rec.events[2])


class TestBoundedMemory(unittest.TestCase):
    def flood(self, prefix, cls, piece=b"x" * 1000, **kw):
        rec, parser = make_parser(**kw)
        parser.feed(prefix)
        sent = len(prefix)
        while not [e for e in rec.events if e[0] == "error"] and sent < 10 ** 7:
            parser.feed(piece)
            sent += len(piece)
            self.assertLess(parser.buffered, 80000)
        self.assertEqual(rec.events[-1][1], cls.__name__)
        self.assertEqual(parser.buffered, 0)
        return sent

    def test_endless_request_line(self):
        self.flood(b"GET /", error.UriTooLongError)

    def test_endless_field(self):
        self.flood(b"GET / HTTP/1.1\r\nX: ", error.FieldSectionTooLargeError)

    def test_endless_fields(self):
        self.flood(b"GET / HTTP/1.1\r\n", error.TooManyFieldsError, piece=b"X: y\r\n" * 100)

    def test_endless_chunk_extension(self):
        self.flood(TestChunked.HEAD + b"1;a=", error.ChunkExtTooLargeError)

    def test_endless_trailers(self):
        self.flood(TestChunked.HEAD + b"0\r\n", error.TrailerTooLargeError,
                   piece=b"X: y\r\n" * 10, max_fields=10 ** 6)

    def test_byte_at_a_time_is_linear(self):
        # A head near the limit, one byte per feed: must not rescan the buffer.
        data = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: " + b"a" * 60000 + b"\r\n\r\n"
        rec, parser = make_parser()
        started = time.monotonic()
        for i in range(len(data)):
            parser.feed(data[i:i + 1])
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual([e[0] for e in rec.events], ["head", "done"])

    def test_lenient_pipelining_is_linear(self):
        # With lenient_bare_lf, finding the end of each head must not scan
        # the rest of the buffer (CRLF input has no LF LF at all).
        for data in (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 20000,
            (TestChunked.HEAD + b"1\r\nx\r\n0\r\nX: y\r\n\r\n") * 20000,
        ):
            rec, parser = make_parser(lenient_bare_lf=True)
            started = time.monotonic()
            parser.feed(data)
            self.assertLess(time.monotonic() - started, 2)
            self.assertEqual(rec.events[-1][0], "done")

    def test_obs_fold_is_linear(self):
        # Many continuation lines of one field are joined once, not copied
        # again for each line.
        data = b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n" + b" b\r\n" * 250000 + b"\r\n"
        rec, parser = make_parser(max_field_section=len(data))
        started = time.monotonic()
        parser.feed(data)
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertEqual(head(rec.events)[3][1], (b"X", b" a" + b" b" * 250000))

    def test_resume_per_message_is_linear(self):
        # A server resumes once per pipelined request: the parser must not
        # copy the rest of a large read each time.
        class Server(Recorder):
            def on_message_done(self, trailers):
                self.events.append(("done", trailers))
                self.parser.pause()
        rec, parser = make_parser(True, Server)
        count = 100000
        started = time.monotonic()
        parser.feed(GET * count)
        while parser.paused:
            parser.resume()
        self.assertLess(time.monotonic() - started, 3)
        self.assertEqual(len(rec.events), 2 * count)

    def test_body_not_buffered(self):
        rec, parser = make_parser()
        parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n")
        for _ in range(100):
            parser.feed(b"x" * 10000)
            self.assertEqual(parser.buffered, 0)
        self.assertEqual(len(body(rec.events)), 10 ** 6)


class TestFastPath(ParserCase):
    """The fast path for a common head that arrives whole (_quick_head),
    beside the general one it must agree with. ``parse()`` already feeds
    each case whole (fast path) and a byte at a time (general path) and
    demands the same; these tests make sure the fast path really is taken
    where it should be, and try its own branches: its caches of checked
    lines, cold and warm, and everything it hands back."""

    COMMON = [
        (True, b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n"
               b"Accept: */*\r\nConnection: keep-alive\r\n\r\n"),
        (True, b"GET / HTTP/1.0\r\n\r\n"),
        (True, b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
        (True, b"HEAD /x HTTP/1.1\r\nhost: a:80\r\nConnection: close\r\n\r\n"),
        (True, b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
        (True, b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"),
        (True, b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
               b"Content-Length: 2\r\n\r\nok"),
        (True, b"POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"2\r\nok\r\n0\r\n\r\n"),
        (True, b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\n\r\nrest"),
        (True, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"),
        (True, b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Empty:\r\nX-Tab:\tv\t\r\n"
               b"X-Obs: caf\xe9\r\n\r\n"),
        # A forward proxy's absolute-form (any Host: RFC 9112 3.2.2), asterisk-form.
        (True, b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET http://b.example:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n"),
        (True, b"POST http://a/f HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"),
        (True, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: t\r\n\r\nabc"),
        (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Length: 9\r\n\r\n0\r\n\r\n"),
        (False, b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
        (False, b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
        (False, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close"),
        (False, b"HTTP/1.1 200\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n"),
        (False, b"HTTP/1.2 404 Not\tFound\r\nUpgrade: x\r\nConnection: upgrade\r\n"
                b"Content-Length: 0\r\n\r\n"),
    ]

    # Whole heads the fast path leaves to the general one.
    UNUSUAL = [
        (True, b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"),       # obs-fold
        (True, b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),            # two Host
        (True, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: a\r\nConnection: close\r\n\r\n"),
        (True, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
               b"Content-Length: 1\r\n\r\nx"),
        (True, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
        (True, b"GET https://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"),       # userinfo
        (True, b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"),           # no host
        (True, b"GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),                  # * not OPTIONS
        (True, b"GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET urn:x:y HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"PURGE / HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET / HTTP/1.1\r\n\r\n"),                                  # no Host
        (True, b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),                     # bad Host
        (True, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"),
        (True, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        (True, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Length: 1\r\n\r\n"),
        (True, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        (True, b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        (True, b"GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n"),
        (True, b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n"),
        (True, b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n"),
        (True, b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n"),
        (True, b"GET /\t HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        (True, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        (False, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (False, b"HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nzz"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz"),
        (False, b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz"),
        (False, b"HTTP/1.1 20 OK\r\n\r\n"),
        (False, b"HTTP/1.1 200 O\x01K\r\n\r\n"),
    ]

    def setUp(self):
        clear_caches()

    def general_heads(self, data, is_request, expect=(b"GET", b"GET"), **limits):
        """How often the general path read a head, ``data`` fed whole."""
        calls = []
        original = HttpParser._read_block

        def read_block(parser, buf, start, end, trailer):
            if not trailer:
                calls.append(start)
            return original(parser, buf, start, end, trailer)

        with mock.patch.object(HttpParser, "_read_block", read_block):
            run(data, is_request, () if is_request else expect, True, [data], **limits)
        return len(calls)

    def test_common_heads_take_it(self):
        for is_request, data in self.COMMON:
            for _ in "cold", "warm":
                self.assertEqual(self.general_heads(data, is_request), 0, data)
            self.assertOk(self.parse(data, is_request, finish=True))

    def test_unusual_heads_leave_it(self):
        for is_request, data in self.UNUSUAL:
            self.assertGreater(self.general_heads(data, is_request), 0, data)
            self.parse(data, is_request, finish=True)  # the same however split
        # Lenient mode and a head that came in pieces are the general path's.
        data = self.COMMON[0][1]
        self.assertEqual(self.general_heads(data, True, lenient_bare_lf=True), 1)
        calls = []
        original = HttpParser._read_block
        with mock.patch.object(
            HttpParser, "_read_block",
            lambda *args: calls.append(1) or original(*args),
        ):
            run(data, True, pieces=[data[:10], data[10:]])
        self.assertEqual(len(calls), 2)

    def test_cold_and_warm_agree(self):
        for is_request, data in self.COMMON + self.UNUSUAL:
            clear_caches()
            cold = run(data, is_request, (b"GET", b"GET"), True, [data])
            warm = run(data, is_request, (b"GET", b"GET"), True, [data])
            bytewise = run(data, is_request, (b"GET", b"GET"), True, list(map(bytes, zip(data))))
            self.assertEqual(cold, warm, data)
            self.assertEqual(cold, bytewise, data)

    def test_known_line_with_one_bad_byte(self):
        # Every line below is known (cached) once the first request has been
        # read; each copy of it with one byte changed, inserted or removed is
        # a different line, and must meet every check again.
        lines = [
            b"Host: example.com", b"User-Agent: t/1", b"Connection: keep-alive",
            b"Content-Length: 12", b"Accept: */*",
        ]
        good = b"POST /a HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\nhello world!"
        self.assertOk(self.parse(good))
        for line in lines:
            for at in range(len(line) + 1):
                for bad in b"\x00", b"\r", b"\n", b"\x7f", b" ", b"\t", b",", b"\xff":
                    for changed in line[:at] + bad + line[at:], line[:at] + bad + line[at + 1:]:
                        data = good.replace(line, changed)
                        whole = run(data, True, pieces=[data])
                        self.assertEqual(
                            whole, run(data, True, pieces=list(map(bytes, zip(data)))),
                            data,
                        )
                        if bad in b"\x00\r\n\x7f" and at < len(line):
                            self.assertEqual(whole[-2][0], "error", data)
                removed = line[:at] + line[at + 1:]
                data = good.replace(line, removed)
                self.assertEqual(
                    run(data, True, pieces=[data]),
                    run(data, True, pieces=list(map(bytes, zip(data)))), data,
                )
        # The known request line and status line, likewise.
        self.assertFails(self.parse(good.replace(b"/a", b"/\x7fa")), error.StartLineError)
        self.assertFails(self.parse(good.replace(b"/a", b"/ a")), error.StartLineError)
        self.assertOk(self.response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        self.assertFails(
            self.response(b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n"),
            error.StartLineError,
        )

    def test_known_lines_still_meet_head_rules(self):
        # Lines known on their own, put together in ways the fast path
        # leaves to the general one: limits, repeats, folds.
        known = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\nX-B: c\r\n\r\n"
        self.assertOk(self.parse(known))
        self.assertFails(self.parse(known, max_fields=1), error.TooManyFieldsError)
        self.assertFails(self.parse(known, max_field_section=10),
                         error.FieldSectionTooLargeError)
        self.assertFails(self.parse(known, max_start_line=10), error.UriTooLongError)
        self.assertFails(
            self.parse(known.replace(b"X-A: b\r\n", b"Host: a\r\n")), error.HostRequiredError
        )
        self.assertFails(
            self.parse(known.replace(b"Host: a\r\n", b" Host: a\r\n")), error.TopLineSpaceError
        )
        folded = self.parse(known.replace(b"X-B: c\r\n", b"X-B: c\r\n X-A: b\r\n"))
        self.assertEqual(head(folded)[3][-1], (b"X-B", b" c X-A: b"))
        self.assertEqual(self.parse(known.replace(b"1.1", b"1.0"))[0][4]["version"], b"1.0")

    def test_empty_lines_count_per_request(self):
        # Up to 10 empty lines before each request, not in all.
        data = (b"\r\n" * 6 + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") * 3
        events = self.parse(data)
        self.assertEqual([e[0] for e in events], ["head", "done"] * 3)

    def test_remembered_head_answers_like_a_new_one(self):
        # A whole request head is remembered once accepted; a repeat must
        # give the same results, each time with a list of its own, and
        # must still meet a stricter parser's limits.
        from thor.http import parser as module
        clear_caches()
        data = (b"POST /f HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n"
                b"hello")
        first = run(data, True, pieces=[data])
        self.assertIn(data[:data.index(b"\r\n\r\n")], module._request_heads)
        second = run(data, True, pieces=[data])
        self.assertEqual(second, first)
        self.assertIsNot(head(second)[3], head(first)[3])
        self.assertFails(run(data, True, pieces=[data], max_fields=2)[:-1],
                         error.TooManyFieldsError)
        self.assertFails(run(data, True, pieces=[data], max_start_line=10)[:-1],
                         error.UriTooLongError)
        self.assertFails(run(data, True, pieces=[data], max_field_section=20)[:-1],
                         error.FieldSectionTooLargeError)
        for data in (
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: w\r\n\r\nrest",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ):
            clear_caches()
            cold = run(data, True, pieces=[data])
            self.assertEqual(run(data, True, pieces=[data]), cold)
            clear_caches()
            self.assertEqual(run(data, True, pieces=[bytes([b]) for b in data]), cold)

    def test_remembered_response_head_answers_like_a_new_one(self):
        # A response head is remembered for methods that do not change its
        # framing; a HEAD request's response to the same head has no body.
        from thor.http import parser as module
        for data in (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello",
            b"HTTP/1.0 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ):
            with self.subTest(data=data):
                clear_caches()
                cold = run(data, False, (b"GET",), True, pieces=[data])
                self.assertIn(data[:data.index(b"\r\n\r\n")], module._response_heads)
                warm = run(data, False, (b"GET",), True, pieces=[data])
                self.assertEqual(warm, cold)
                self.assertIsNot(head(warm)[3], head(cold)[3])
                self.assertEqual(
                    run(data, False, (b"GET",), True, pieces=[bytes([b]) for b in data]), cold
                )
                # The same head answering HEAD: no body, as a cold parse says.
                clear_caches()
                cold_head = run(data, False, (b"HEAD",), True, pieces=[data])
                run(data, False, (b"GET",), True, pieces=[data])
                self.assertEqual(run(data, False, (b"HEAD",), True, pieces=[data]), cold_head)
        data = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 0\r\n\r\n"
        clear_caches()
        run(data, False, (b"GET",), pieces=[data])
        self.assertFails(run(data, False, (b"GET",), pieces=[data], max_fields=2)[:-1],
                         error.TooManyFieldsError)

    def test_caches_are_bounded(self):
        from thor.http import parser as module
        caches = [
            (module._plain_lines, b"X-N: %d", module._LINES_MAX),
            (module._special_lines, b"Host: h%d", module._LINES_MAX),
            (module._request_lines, b"GET /%d HTTP/1.1", module._LINES_MAX),
        ]
        for cache, pattern, most in caches:
            for n in range(most + 10):
                line = pattern % n
                if cache is module._request_lines:
                    data = line + b"\r\nHost: a\r\n\r\n"
                elif cache is module._plain_lines:
                    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + line + b"\r\n\r\n"
                else:
                    data = b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n"
                events = run(data, True, pieces=[data])
                self.assertEqual(events[0][0], "head")
                self.assertLessEqual(len(cache), most)
            self.assertIn(line, cache)  # cleared when full, then filled again
        for n in range(module._STATUS_LINES_MAX + 10):
            data = b"HTTP/1.1 200 R%d\r\nContent-Length: 0\r\n\r\n" % n
            events = run(data, False, (b"GET",), pieces=[data])
            self.assertEqual(events[0][:3], ("response", b"200", b"R%d" % n))
            self.assertLessEqual(len(module._status_lines), module._STATUS_LINES_MAX)
        # Long lines are checked every time, never kept.
        line = b"Cookie: " + b"c" * module._LINE_CACHE_LEN
        data = b"GET / HTTP/1.1\r\nHost: a\r\n" + line + b"\r\n\r\n"
        for _ in range(2):
            events = run(data, True, pieces=[data])
            self.assertEqual(head(events)[3][-1], (b"Cookie", line[7:]))
        self.assertNotIn(line, module._plain_lines)

    def test_fuzz_against_general_path(self):
        # Heads made of lines the fast path knows, lines it does not, and
        # bad ones; fed whole (fast path, caches warm from earlier rounds)
        # and a byte at a time (general path), the results must match.
        import random
        rnd = random.Random(20250101)
        starts = [
            b"GET / HTTP/1.1", b"POST /p?q HTTP/1.1", b"HEAD /h HTTP/1.0",
            b"GET /x HTTP/1.2", b"get / HTTP/1.1", b"GET /\x01 HTTP/1.1",
        ]
        statuses = [
            b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content",
            b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 404", b"HTTP/1.1 200  OK",
            b"HTTP/1.1 099 X", b"HTTP/1.1 100 Continue",
        ]
        fields = [
            b"Host: a", b"Host: b.example:8080", b"Host:", b"Host: a@b", b"host: [::1]",
            b"Connection: close", b"Connection: keep-alive", b"Connection: upgrade, x",
            b"Content-Length: 3", b"Content-Length: 0", b"Content-Length: 3, 3",
            b"Content-Length: 3, 4", b"Content-Length: +3", b"Content-Length: 9999999999999999999",
            b"Transfer-Encoding: chunked", b"Transfer-Encoding: Chunked ", b"Transfer-Encoding: x",
            b"Transfer-Encoding: chunked;a=b", b"Transfer-Encoding: ,",
            b"Expect: 100-continue", b"Expect: x", b"Upgrade: websocket",
            b"Accept: */*", b"X-Empty:", b"X-Space:   ", b"X\tBad: 1", b"X Bad: 1",
            b" folded", b"\tfolded", b"NoColon", b": empty name", b"X-Ctl: a\x00b",
            b"X-Cr: a\rb", b"X-Lf: a\nb", b"X-Obs: \x80\xff", b"X-Tab:\t1\t",
        ]
        bodies = [b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n"]
        for _ in range(600):
            is_request = rnd.random() < 0.5
            start = rnd.choice(starts if is_request else statuses)
            lines = [rnd.choice(fields) for _ in range(rnd.randint(0, 6))]
            if is_request and rnd.random() < 0.7:
                lines.insert(rnd.randint(0, len(lines)), b"Host: a")
            data = b"\r\n".join([start] + lines) + b"\r\n\r\n" + rnd.choice(bodies)
            limits = {}
            if rnd.random() < 0.2:
                limits = {"max_fields": rnd.randint(0, 6),
                          "max_field_section": rnd.randint(0, 80)}
            expect = (rnd.choice([b"GET", b"HEAD", b"CONNECT"]), b"GET")
            finish = rnd.random() < 0.5
            whole = run(data, is_request, () if is_request else expect, finish,
                        [data], **limits)
            bytewise = run(data, is_request, () if is_request else expect, finish,
                           list(map(bytes, zip(data))), **limits)
            self.assertEqual(whole, bytewise, (data, limits, expect))


class TestCachedHeads(unittest.TestCase):
    """The head caches are shared by every parser; what a parser reports
    must not depend on what others have cached."""

    def test_limit_lowered_after_init_applies_to_a_cached_head(self):
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(20))
        response = b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 0\r\n\r\n"
        for max_fields in (None, 10):  # the first (default limits) caches it
            rec, parser = make_parser(False)
            if max_fields is not None:
                parser.max_fields = max_fields
            parser.expect_response(b"GET")
            parser.feed(response)
        self.assertEqual([e[:2] for e in rec.events], [("error", "TooManyFieldsError")])

    def test_leftover_taken_inside_a_head_callback(self):
        # A delegate may take the rest of the input from inside the head
        # callback; the parser then has nothing more to deliver.
        class Taker(Recorder):
            def on_response_head(self, status, phrase, headers):
                Recorder.on_response_head(self, status, phrase, headers)
                self.events.append(("leftover", self.parser.leftover()))

        response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        for _ in range(2):  # uncached, then cached
            rec, parser = make_parser(False, Taker)
            parser.expect_response(b"GET")
            parser.feed(response)
            self.assertEqual([e[0] for e in rec.events], ["response", "leftover"])
            self.assertEqual(rec.events[1], ("leftover", b"hello"))


class TestSplitFuzz(unittest.TestCase):
    """Mutated messages (seeded, so repeatable): whatever the parser makes of
    them, it must make the same of them however the input is split."""

    REQUESTS = [
        b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-A: b\r\n c\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;a=\"b\"\r\nhello\r\n0\r\nX: y\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nzz",
    ]
    RESPONSES = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.0 200 OK\r\n\r\nabc",
    ]
    ALPHABET = b"\r\n \t:;=\"\\\x00\x7f\xff0aAz,/"

    def mutate(self, rnd, data):
        data = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            op = rnd.random()
            i = rnd.randrange(len(data) + 1)
            c = self.ALPHABET[rnd.randrange(len(self.ALPHABET))]
            if op < 0.4 and i < len(data):
                data[i] = c
            elif op < 0.7:
                data.insert(i, c)
            elif i < len(data):
                del data[i]
        return bytes(data)

    def test_fuzz(self):
        import random
        rnd = random.Random(20240601)
        for _ in range(150):
            is_request = rnd.random() < 0.6
            data = self.mutate(rnd, rnd.choice(self.REQUESTS if is_request else self.RESPONSES))
            limits = {"lenient_bare_lf": rnd.random() < 0.2}
            if rnd.random() < 0.3:
                limits.update(
                    max_start_line=rnd.randint(5, 40), max_field_section=rnd.randint(0, 60),
                    max_fields=rnd.randint(0, 4), max_chunk_ext=rnd.randint(0, 8),
                    max_trailer_section=rnd.randint(0, 10),
                )
            finish = rnd.random() < 0.5
            expect = () if is_request else (b"GET", b"GET")
            whole = run(data, is_request, expect, finish, [data], **limits)
            for pieces in splits(data):
                got = run(data, is_request, expect, finish, pieces, **limits)
                self.assertEqual(got, whole, (data, limits, [len(p) for p in pieces]))


class TestSpecificErrors(ParserCase):
    """The parser names each problem with Thor 0.17's class where it has
    one (a subclass of thor's broader class), however the input is split,
    with a detail that is text."""

    START = b"GET / HTTP/1.1\r\nHost: a\r\n"

    def fails(self, data, cls, **kw):
        events = self.parse(data, **kw)
        self.assertFails(events, cls, exact=True)
        detail = events[-1][2]
        self.assertIsInstance(detail, str)
        self.assertNotIn("b'", detail)
        self.assertNotIn('b"', detail)
        return detail

    def test_field_lines(self):
        for fields, cls in (
            (b"X-A: a\rb\r\n", error.BareCRError),
            (b"X-A: a\r\r\n", error.BareCRError),
            (b"X-A: a\nX-B: b\r\n", error.HeaderLineEndingError),
            (b"X-A: a\x00b\r\n", error.HeaderValueError),
            (b"X-A: a\x01b\r\n", error.HeaderValueError),
            (b"X-A: a\x7f\r\n", error.HeaderValueError),
            (b"X\x01A: b\r\n", error.HeaderNameError),
            (b"X-A\x00\r\n", error.HeaderNameError),
            (b"NoColon\r\n", error.HeaderNoColonError),
            (b": empty-name\r\n", error.HeaderNameError),
            (b"X(y): z\r\n", error.HeaderNameError),
            (b"X\xe9: z\r\n", error.HeaderNameError),
        ):
            with self.subTest(fields=fields):
                self.fails(self.START + fields + b"\r\n", cls)
                self.assertTrue(issubclass(cls, error.BadFieldError))
        # Likewise in a response.
        events = self.response(b"HTTP/1.1 200 OK\r\nFoo bar\r\nContent-Length: 0\r\n\r\n")
        self.assertFails(events, error.HeaderNoColonError, exact=True)

    def test_space_before_colon_detail_is_the_name(self):
        # REDbot reads the field name from the detail.
        detail = self.fails(self.START + b"Content-Length : 0\r\n\r\n", error.HeaderSpaceError)
        self.assertEqual(detail, "Whitespace between a field name and its colon "
                                 "(Content-Length )")

    def test_trailer_fold_without_a_field(self):
        head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        self.fails(head + b"0\r\n folded\r\n\r\n", error.ObsoleteFoldError)
        # A fold after a trailer field is unfolded, as in a head.
        events = self.parse(head + b"0\r\nX-T: a\r\n b\r\n\r\n")
        self.assertEqual(events[-1], ("done", [(b"X-T", b" a b")]))

    def test_chunk_terminator(self):
        head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for rest in (b"3\r\nabcX\r\n0\r\n\r\n", b"3\r\nabc\rX0\r\n\r\n",
                     b"3\r\nabc\n0\r\n\r\n"):
            with self.subTest(rest=rest):
                self.fails(head + rest, error.ChunkTerminatorError)
        self.assertTrue(issubclass(error.ChunkTerminatorError, error.ChunkError))
        # A bad size line stays a plain ChunkError.
        self.fails(head + b"zz\r\n", error.ChunkError)

    def test_request_lines(self):
        host = b"\r\nHost: a\r\n\r\n"
        for line in (b"G(T / HTTP/1.1", b"GET /caf\xe9 HTTP/1.1", b"GET /\tx HTTP/1.1",
                     b"GET /a\rb HTTP/1.1", b"GET /\x7f HTTP/1.1", b"GET /\x00 HTTP/1.1"):
            with self.subTest(line=line):
                self.fails(line + host, error.RequestLineError)
        for line in (b"GET  / HTTP/1.1", b"GET /", b"GET * HTTP/1.1"):
            with self.subTest(line=line):
                self.fails(line + host, error.StartLineError)
        self.fails(b"GET / HTTP/1.1\nHost: a\r\n\r\n", error.StartLineError)

    def test_other_protocol_names_are_version_errors(self):
        # Thor 0.17: "ICY/1.1 200 OK" is an HttpVersionError, exactly.
        for line in (b"ICY/1.1 200 OK", b"HTTP/2.5 200 OK", b"http/1.1 200 OK",
                     b"HTTPS/1.1 200 OK"):
            with self.subTest(line=line):
                events = self.response(line + b"\r\nContent-Length: 5\r\n\r\n12345")
                self.assertFails(events, error.HttpVersionError, exact=True)
        for line in (b"ICY 200 OK", b"ICY/1 200 OK", b"ICY/1.1x 200 OK"):
            with self.subTest(line=line):
                events = self.response(line + b"\r\nContent-Length: 0\r\n\r\n")
                self.assertFails(events, error.StartLineError, exact=True)
        for version in (b"FOO/1.1", b"HTTPS/1.1", b"http/1.1", b"HTTP/3.0"):
            with self.subTest(version=version):
                self.fails(b"GET / " + version + b"\r\nHost: a\r\n\r\n", error.HttpVersionError)

    def test_host(self):
        self.fails(b"GET / HTTP/1.1\r\n\r\n", error.HostRequiredError)
        self.fails(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", error.InvalidHostError)
        self.fails(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", error.InvalidHostError)
        self.assertTrue(issubclass(error.InvalidHostError, error.HostRequiredError))

    def test_transfer_encoding(self):
        start = b"POST / HTTP/1.1\r\nHost: a\r\n"
        self.fails(start + b"Transfer-Encoding: gzip\r\n\r\n", error.RequestTransferEncodingError)
        self.fails(start + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                   error.TransferEncodingCLError)
        self.assertIs(error.TransferEncodingCLError, error.CLTEError)

    def test_details_are_text(self):
        cases = [
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ch(unked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n",
            b"CONNECT a:0 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n X: \xff\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;\xff\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nx\xff\r\n",
        ]
        for data in cases:
            with self.subTest(data=data):
                events = self.parse(data)
                self.assertEqual(events[-1][0], "error")
                self.assertNotIn("b'", events[-1][2])
                self.assertNotIn('b"', events[-1][2])


class LengthRecorder(Recorder):
    """Checks head_length and transfer_length at every call against what the
    test fed, and writes them down (but at on_body, whose calls depend on
    how the input is split)."""

    def __init__(self):
        Recorder.__init__(self)
        self.fed = 0          # bytes fed so far (set by the test before each feed)
        self.msg_start = 0    # where the current message's head began
        self.problems = []

    def _consumed(self):
        return self.fed - self.parser.buffered

    def _check(self, what, head):
        p = self.parser
        consumed = self._consumed()
        if head:
            expected = (consumed - self.msg_start, 0)
        else:
            expected = (p.head_length, consumed - self.msg_start - p.head_length)
        got = (p.head_length, p.transfer_length)
        if got != expected:
            self.problems.append((what, got, expected))
        return got

    def on_request_head(self, method, target, headers):
        self.events.append(("lengths", "head", self._check("head", True)))

    def on_response_head(self, status, phrase, headers):
        self.events.append(("lengths", "response", self._check("response", True)))

    def on_response_nonfinal(self, status, phrase, headers):
        self.events.append(("lengths", "nonfinal", self._check("nonfinal", True)))
        self.msg_start = self._consumed()

    def on_body(self, chunk):
        self._check("body", False)

    def on_message_done(self, trailers):
        self.events.append(("lengths", "done", self._check("done", False)))
        self.msg_start = self._consumed()


class TestWireLengths(unittest.TestCase):
    """head_length and transfer_length: the head's wire bytes (start line
    through the empty line) and the bytes after it (the body with its
    chunked framing and trailers), right at every delegate call, for every
    framing, on the fast and the general path, however the input is split."""

    def lengths(self, data, is_request=False, expect=(b"GET",), finish=False, **limits):
        first = None
        for pieces in splits(data):
            for cold in (True, False):  # the fast path uncached, and cached
                if cold:
                    clear_caches()
                rec, parser = make_parser(is_request, LengthRecorder, **limits)
                for method in () if is_request else expect:
                    parser.expect_response(method)
                for piece in pieces:
                    rec.fed += len(piece)
                    parser.feed(piece)
                if finish:
                    parser.finish()
                self.assertEqual(rec.problems, [], [len(p) for p in pieces])
                if first is None:
                    first = rec.events
                else:
                    self.assertEqual(rec.events, first, [len(p) for p in pieces])
        return [e[1:] for e in first]

    HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"

    def test_content_length(self):
        head = self.HEAD + b"Content-Length: 5\r\n\r\n"
        self.assertEqual(self.lengths(head + b"hello"), [
            ("response", (len(head), 0)), ("done", (len(head), 5)),
        ])
        self.assertEqual(
            self.lengths(head + b"hello", lenient_bare_lf=True),  # the general path only
            [("response", (len(head), 0)), ("done", (len(head), 5))],
        )

    def test_chunked(self):
        head = self.HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
        for rest in (b"5;x=y\r\nhello\r\n10\r\n" + b"z" * 16 + b"\r\n0\r\nX-T: 1\r\n\r\n",
                     b"5\r\nhello\r\n0\r\n\r\n", b"0\r\n\r\n"):
            with self.subTest(rest=rest):
                self.assertEqual(self.lengths(head + rest), [
                    ("response", (len(head), 0)), ("done", (len(head), len(rest))),
                ])
        # Trailer sections ended by a bare LF (lenient_bare_lf).
        for rest in (b"3\r\nabc\r\n0\r\nX-T: 1\n\n", b"0\r\n\n"):
            with self.subTest(rest=rest):
                self.assertEqual(self.lengths(head + rest, lenient_bare_lf=True), [
                    ("response", (len(head), 0)), ("done", (len(head), len(rest))),
                ])

    def test_until_close(self):
        head = self.HEAD + b"\r\n"
        self.assertEqual(self.lengths(head + b"abc", finish=True), [
            ("response", (len(head), 0)), ("done", (len(head), 3)),
        ])
        self.assertEqual(self.lengths(head, finish=True), [
            ("response", (len(head), 0)), ("done", (len(head), 0)),
        ])

    def test_no_body(self):
        for status, method in ((b"204 No Content", b"GET"), (b"304 Not Modified", b"GET"),
                               (b"200 OK", b"HEAD")):
            head = b"HTTP/1.1 " + status + b"\r\nContent-Length: 10\r\n\r\n"
            with self.subTest(status=status, method=method):
                self.assertEqual(self.lengths(head, expect=(method,)), [
                    ("response", (len(head), 0)), ("done", (len(head), 0)),
                ])

    def test_nonfinal_then_final(self):
        early = b"HTTP/1.1 100 Continue\r\n\r\n"
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        final = self.HEAD + b"Content-Length: 2\r\n\r\n"
        self.assertEqual(self.lengths(early + hints + final + b"ok"), [
            ("nonfinal", (len(early), 0)), ("nonfinal", (len(hints), 0)),
            ("response", (len(final), 0)), ("done", (len(final), 2)),
        ])

    def test_pipelined_responses_each_their_own(self):
        one = self.HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
        one_body = b"3\r\nabc\r\n0\r\n\r\n"
        two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
        self.assertEqual(self.lengths(one + one_body + two + b"x", expect=(b"GET", b"GET")), [
            ("response", (len(one), 0)), ("done", (len(one), len(one_body))),
            ("response", (len(two), 0)), ("done", (len(two), 1)),
        ])

    def test_requests(self):
        get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        post = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        post_body = b"2\r\nhi\r\n0\r\n\r\n"
        put = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
        self.assertEqual(self.lengths(get + post + post_body + put + b"abc", True), [
            ("head", (len(get), 0)), ("done", (len(get), 0)),
            ("head", (len(post), 0)), ("done", (len(post), len(post_body))),
            ("head", (len(put), 0)), ("done", (len(put), 3)),
        ])


class TestErrors(unittest.TestCase):
    def test_str_and_repr(self):
        err = error.ChunkError("bad size")
        self.assertEqual(str(err), "Chunked encoding error (bad size)")
        self.assertEqual(repr(err), "ChunkError('bad size')")
        self.assertEqual(str(error.ChunkError()), "Chunked encoding error")
        self.assertEqual(error.ChunkError().detail, None)

    def test_statuses(self):
        expected = {
            "StartLineError": b"400", "HttpVersionError": b"505", "UriTooLongError": b"414",
            "HeaderSpaceError": b"400", "TopLineSpaceError": b"400", "BadFieldError": b"400",
            "FieldSectionTooLargeError": b"431", "TooManyFieldsError": b"431",
            "HostRequiredError": b"400", "MalformedCLError": b"400", "DuplicateCLError": b"400",
            "CLTEError": b"400", "BadTransferCodeError": b"400", "TransferCodeError": b"501",
            "ChunkError": b"400", "ChunkExtTooLargeError": b"400",
            "TrailerTooLargeError": b"431", "IncompleteHeadError": b"400",
            "IncompleteBodyError": b"400", "RequestTimeoutError": b"408",
            "ConnectError": b"502", "ConnectTimeoutError": b"504", "ReadTimeoutError": b"504",
            "LengthRequiredError": b"411", "UrlError": b"400",
        }
        for name, status in expected.items():
            with self.subTest(name=name):
                self.assertEqual(getattr(error, name).server_status[0], status)
        for name in error.__all__:
            cls = getattr(error, name)
            self.assertTrue(issubclass(cls, error.HttpError))
            if cls.server_status is not None:
                code, phrase = cls.server_status
                self.assertTrue(type(code) is bytes and len(code) == 3 and phrase)

    def test_application_errors_are_value_errors(self):
        for cls in (error.BadHeaderError, error.BadStatusError, error.BodyLengthError,
                    error.StateError, error.UrlError):
            self.assertTrue(issubclass(cls, ValueError))
            self.assertTrue(issubclass(cls, error.ApplicationError))
        self.assertTrue(error.UrlError.client_recoverable)
        self.assertTrue(issubclass(error.ConnectTimeoutError, error.ConnectError))

    def test_no_builtin_shadowed(self):
        import builtins
        for name in error.__all__:
            self.assertFalse(hasattr(builtins, name), name)


class TestFramingDecision(unittest.TestCase):
    """request_framing and response_framing, called directly: the one
    place where the framing of a message, and so the request-smuggling
    rules, are decided (both the fast and the general path ask them)."""

    def test_request_smuggling_matrix(self):
        from thor.http.parser import request_framing
        ok = [
            # (method, version, Content-Length values, Transfer-Encoding values)
            ((b"GET", b"1.1", None, None), (NO_BODY, None)),
            ((b"POST", b"1.1", [b"5"], None), (LENGTH, 5)),
            ((b"POST", b"1.1", [b"0"], None), (LENGTH, 0)),
            ((b"POST", b"1.1", [b" 007 "], None), (LENGTH, 7)),
            ((b"POST", b"1.1", [b"5, 5"], None), (LENGTH, 5)),       # CL.CL, equal
            ((b"POST", b"1.1", [b"5", b"5"], None), (LENGTH, 5)),
            ((b"POST", b"1.0", [b"5"], None), (LENGTH, 5)),
            ((b"POST", b"1.1", None, [b"chunked"]), (CHUNKED, None)),
            ((b"POST", b"1.1", None, [b" Chunked "]), (CHUNKED, None)),
            ((b"POST", b"1.1", None, [b"chunked", b""]), (CHUNKED, None)),
            ((b"CONNECT", b"1.1", None, None), (NO_BODY, None)),
            ((b"CONNECT", b"1.1", [b"0"], None), (LENGTH, 0)),
        ]
        for args, expected in ok:
            with self.subTest(args=args):
                self.assertEqual(request_framing(*args), expected)
        refused = [
            ((b"POST", b"1.1", [b"5"], [b"chunked"]), error.CLTEError),     # CL.TE
            ((b"POST", b"1.1", [b"5"], [b"identity"]), error.CLTEError),    # TE.CL
            ((b"POST", b"1.1", [b"x"], [b"chunked"]), error.CLTEError),
            ((b"POST", b"1.1", None, [b"chunked, identity"]),               # TE.TE
             error.RequestTransferEncodingError),
            ((b"POST", b"1.1", None, [b"chunked", b"x"]), error.RequestTransferEncodingError),
            ((b"POST", b"1.1", None, [b"chunked, chunked"]), error.BadTransferCodeError),
            ((b"POST", b"1.1", None, [b"chunked", b"chunked"]), error.BadTransferCodeError),
            ((b"POST", b"1.1", None, [b"chunked;a=b"]), error.BadTransferCodeError),
            ((b"POST", b"1.1", None, [b"chunk ed"]), error.BadTransferCodeError),
            ((b"POST", b"1.1", None, [b"\"chunked\""]), error.BadTransferCodeError),
            ((b"POST", b"1.1", None, [b""]), error.BadTransferCodeError),
            ((b"POST", b"1.1", None, [b" , "]), error.BadTransferCodeError),
            ((b"POST", b"1.1", None, [b"gzip, chunked"]), error.TransferCodeError),  # 501
            ((b"POST", b"1.0", None, [b"chunked"]), error.BadTransferCodeError),  # TE in 1.0
            ((b"POST", b"1.0", [b"5"], [b"chunked"]), error.BadTransferCodeError),
            ((b"CONNECT", b"1.1", None, [b"chunked"]), error.BadTransferCodeError),
            ((b"CONNECT", b"1.1", [b"5"], None), error.MalformedCLError),
            ((b"POST", b"1.1", [b"5", b"6"], None), error.DuplicateCLError),  # CL.CL
            ((b"POST", b"1.1", [b"5, 6"], None), error.DuplicateCLError),
            ((b"POST", b"1.1", [b"+5"], None), error.MalformedCLError),
            ((b"POST", b"1.1", [b"-1"], None), error.MalformedCLError),
            ((b"POST", b"1.1", [b"0x5"], None), error.MalformedCLError),
            ((b"POST", b"1.1", [b"5,"], None), error.MalformedCLError),
            ((b"POST", b"1.1", [b""], None), error.MalformedCLError),
            ((b"POST", b"1.1", [b"1" * 19], None), error.MalformedCLError),
        ]
        for args, cls in refused:
            with self.subTest(args=args):
                with self.assertRaises(cls) as caught:
                    request_framing(*args)
                self.assertIs(type(caught.exception), cls)
                self.assertIsNotNone(cls.server_status)
        self.assertEqual(error.TransferCodeError.server_status[0], b"501")
        self.assertEqual(error.CLTEError.server_status[0], b"400")

    def test_response_matrix(self):
        from thor.http.parser import response_framing
        cases = [
            # (method, status, version, CL values, TE values) -> (kind, length, must close)
            ((b"GET", b"200", b"1.1", [b"3"], None), (LENGTH, 3, False)),
            ((b"GET", b"200", b"1.1", [b"3, 3"], None), (LENGTH, 3, False)),
            ((b"GET", b"200", b"1.1", None, None), (UNTIL_CLOSE, None, True)),
            ((b"GET", b"200", b"1.1", None, [b"chunked"]), (CHUNKED, None, False)),
            # TE over CL, and the connection is not to be trusted again
            ((b"GET", b"200", b"1.1", [b"3"], [b"chunked"]), (CHUNKED, None, True)),
            ((b"GET", b"200", b"1.1", [b"x"], [b"chunked"]), (CHUNKED, None, True)),
            # a final coding other than chunked, or TE in HTTP/1.0: to the close
            ((b"GET", b"200", b"1.1", None, [b"gzip"]), (UNTIL_CLOSE, None, True)),
            ((b"GET", b"200", b"1.1", [b"3"], [b"chunked, gzip"]), (UNTIL_CLOSE, None, True)),
            ((b"GET", b"200", b"1.0", None, [b"chunked"]), (UNTIL_CLOSE, None, True)),
            # no body, whatever the fields say
            ((b"HEAD", b"200", b"1.1", [b"9"], None), (NO_BODY, None, False)),
            ((b"HEAD", b"200", b"1.1", [b"x"], [b"chunked, chunked"]), (NO_BODY, None, False)),
            ((b"GET", b"204", b"1.1", [b"9"], None), (NO_BODY, None, False)),
            ((b"GET", b"304", b"1.1", None, [b"chunked"]), (NO_BODY, None, False)),
            ((b"GET", b"101", b"1.1", None, None), (NO_BODY, None, False)),
            ((b"CONNECT", b"200", b"1.1", [b"9"], None), (NO_BODY, None, False)),
            ((b"CONNECT", b"407", b"1.1", [b"2"], None), (LENGTH, 2, False)),
            # Codings under chunked are left applied (Thor 0.17 too).
            ((b"GET", b"200", b"1.1", None, [b"gzip, chunked"]), (CHUNKED, None, False)),
        ]
        for args, expected in cases:
            with self.subTest(args=args):
                self.assertEqual(response_framing(*args), expected)
        refused = [
            ((b"GET", b"200", b"1.1", None, [b"chunked, chunked"]), error.BadTransferCodeError),
            ((b"GET", b"200", b"1.1", None, [b"chunked;x=y"]), error.BadTransferCodeError),
            ((b"GET", b"200", b"1.0", None, [b"bad coding"]), error.BadTransferCodeError),
            ((b"GET", b"200", b"1.1", [b"3", b"4"], None), error.DuplicateCLError),
            ((b"GET", b"200", b"1.1", [b"-1"], None), error.MalformedCLError),
        ]
        for args, cls in refused:
            with self.subTest(args=args):
                with self.assertRaises(cls) as caught:
                    response_framing(*args)
                self.assertIs(type(caught.exception), cls)

    def test_both_paths_ask_the_framing_functions(self):
        # A decision changed in the function changes what both the fast
        # path (a whole head) and the general one (a byte at a time) do.
        from thor.http import parser as module
        data = b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"

        def refuse(*args):
            raise error.CLTEError("refused by the test")

        for pieces in ([data], [bytes([b]) for b in data]):
            clear_caches()
            with mock.patch.object(module, "request_framing", refuse):
                events = run(data, True, pieces=pieces)
            self.assertEqual(events[0][:2], ("error", "CLTEError"), pieces[:1])
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        for pieces in ([response], [bytes([b]) for b in response]):
            clear_caches()
            with mock.patch.object(
                module, "response_framing", lambda *args: (UNTIL_CLOSE, None, True),
            ):
                events = run(response, False, (b"GET",), True, pieces=pieces)
            self.assertEqual(body(events), b"hello")
            self.assertEqual(events[0][4]["body"], UNTIL_CLOSE, pieces[:1])
            self.assertTrue(events[0][4]["close"])
        clear_caches()


class TestSansIO(unittest.TestCase):
    def test_imports(self):
        import thor.http.parser as parser
        import thor.http.headers as headers
        for module in (parser, headers, error):
            with open(module.__file__) as f:
                source = f.read()
            for banned in ("import socket", "import ssl", "import selectors", "thor.loop",
                           "thor.tcp"):
                self.assertNotIn(banned, source)


if __name__ == "__main__":
    unittest.main()
