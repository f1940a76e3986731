"""What programs written for Thor 0.16/0.17 (REDbot above all) rely on:
the names they import, thor.http.common, thor.http.uri.parse_uri, the error
classes and what their ``detail`` holds."""

import subprocess
import sys
import unittest

import thor
import thor.http
from thor.http import error


class TestNames(unittest.TestCase):
    def test_import_thor_reaches_submodules_as_attributes(self):
        # REDbot evaluates thor.http.server.HttpServerExchange in a def
        # signature at import time, having only done "import thor"; a fresh
        # interpreter, so that no other test has imported them first. thor
        # imports thor.http only when it is asked for.
        code = (
            "import sys, thor\n"
            "assert 'thor.http' not in sys.modules, 'import thor imported thor.http'\n"
            "assert thor.http.server.HttpServerExchange.__name__ == 'HttpServerExchange'\n"
            "assert thor.http.client.HttpClientExchange.__name__ == 'HttpClientExchange'\n"
            "assert thor.http.HttpClient is thor.http.client.HttpClient\n"
            "assert thor.loop.LoopBase and thor.loop.ScheduledEvent\n"
            "assert thor.http.uri.parse_uri and thor.http.common.get_header\n"
            "assert thor.types.RawHeaderListType\n"
            "print('ok')\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "ok")

    def test_top_level(self):
        import thor.tcp
        from thor.http.client import HttpClientExchange
        from thor.http.server import HttpServerExchange
        self.assertIs(thor.TcpConnection, thor.tcp.TcpConnection)
        self.assertIs(thor.HttpClientExchange, HttpClientExchange)
        self.assertIs(thor.HttpServerExchange, HttpServerExchange)
        for name in ("EventListener", "RawHeaderListType", "OriginType", "Address",
                     "DnsResult", "DnsResultList"):
            self.assertIs(getattr(thor, name), getattr(thor.types, name))
        version = tuple(int(part) for part in thor.__version__.split(".")[:2])
        self.assertGreater(version, (0, 17))
        for name in thor.__all__:
            self.assertTrue(hasattr(thor, name), name)

    def test_thor_http_exports(self):
        from thor.http import (  # noqa: F401 (each must import)
            HttpClient, HttpClientExchange, HttpServer, HttpServerExchange, OriginType,
            RawHeaderListType, get_header, header_dict, header_names, hop_by_hop_hdrs,
            idempotent_methods, safe_methods, strip_hop_by_hop,
        )
        for name in thor.http.__all__:
            self.assertTrue(hasattr(thor.http, name), name)
        with self.assertRaises(AttributeError):
            thor.http.no_such_name  # noqa: B018

    def test_types(self):
        import socket
        from typing import List, Tuple
        import thor.types as types
        self.assertEqual(types.RawHeaderListType, List[Tuple[bytes, bytes]])
        self.assertEqual(types.OriginType, Tuple[str, str, int])
        self.assertEqual(types.DnsResultList.__args__[0].__args__[0], socket.AddressFamily)
        for name in ("EventListener", "ScheduledEventTuple", "Address", "DnsResult",
                     "TextInput", "HeaderInput", "StatusInput", "BodyInput", "HostInput"):
            self.assertTrue(hasattr(types, name), name)

    def test_what_redbot_uses(self):
        # Every thor name REDbot 2.7.1's sources use.
        import thor.events
        import thor.loop
        import thor.tcp
        self.assertTrue(callable(thor.events.on))
        self.assertTrue(callable(thor.events.EventEmitter.__getstate__))
        self.assertTrue(callable(thor.schedule) and callable(thor.run) and callable(thor.stop))
        loop = thor.loop._loop
        for name in ("precision", "debug_out", "registered_fd_handlers", "scheduled_events",
                     "schedule"):
            self.assertTrue(hasattr(loop, name), name)
        for name in ("HttpError", "UrlError", "ExtraDataError", "ChunkError",
                     "HeaderSpaceError"):
            self.assertTrue(issubclass(getattr(error, name), error.HttpError))
        # (The client exchange's attributes are tested with the client.)


class TestCommon(unittest.TestCase):
    def test_same_helpers(self):
        import thor.http.common as common
        import thor.http.headers as headers
        for name in ("get_header", "header_dict", "header_names", "strip_hop_by_hop"):
            self.assertIs(getattr(common, name), getattr(headers, name))
            self.assertIs(getattr(thor.http, name), getattr(headers, name))

    def test_upstream_behaviour(self):
        from thor.http.common import get_header, header_dict, header_names
        hdrs = [(b"A", b"a1"), (b"B", b"b1"), (b"a", b"a2"), (b"C", b"c1"), (b"b", b"b2"),
                (b"A", b"a3, a4"), (b"D", b'"d1, d1"')]
        self.assertEqual(header_names(hdrs), {b"a", b"b", b"c", b"d"})
        self.assertEqual(header_dict(hdrs)[b"a"], [b"a1", b"a2", b"a3", b"a4"])
        self.assertEqual(header_dict(hdrs, b"b").keys(), {b"a", b"c", b"d"})
        self.assertEqual(get_header(hdrs, b"a"), [b"a1", b"a2", b"a3", b"a4"])
        self.assertEqual(get_header(hdrs, b"c"), [b"c1"])

    def test_lists(self):
        from thor.http.common import (
            hop_by_hop_hdrs, idempotent_methods, safe_methods, strip_hop_by_hop,
        )
        self.assertEqual(safe_methods, [b"GET", b"HEAD", b"OPTIONS", b"TRACE"])
        self.assertEqual(set(idempotent_methods), set(safe_methods) | {b"PUT", b"DELETE"})
        for name in (b"connection", b"keep-alive", b"te", b"transfer-encoding", b"upgrade",
                     b"proxy-connection", b"trailer"):
            self.assertIn(name, hop_by_hop_hdrs)
        stripped = strip_hop_by_hop(
            [(b"Connection", b"x-a"), (b"X-A", b"1"), (b"X-B", b"2"), (b"X-C", b"3")],
            also=[b"x-c"],
        )
        self.assertEqual(stripped, [(b"X-B", b"2")])

    def test_enums(self):
        from thor.http.common import Delimiters, States
        self.assertEqual({s.name for s in States}, {"WAITING", "HEADERS_DONE", "ERROR", "QUIET"})
        self.assertEqual({d.name for d in Delimiters},
                         {"CLOSE", "COUNTED", "CHUNKED", "NOBODY", "NONE"})


class TestParseUri(unittest.TestCase):
    def parse(self, uri):
        from thor.http.uri import parse_uri
        return parse_uri(uri)

    def test_good(self):
        for uri, expected in (
            (b"http://www.example.com/a?b#c", ("http", "www.example.com", 80,
                                               b"www.example.com", b"/a?b")),
            (b"https://example.com", ("https", "example.com", 443, b"example.com", b"/")),
            (b"HTTP://Example.COM:8080", ("http", "Example.COM", 8080, b"Example.COM:8080",
                                          b"/")),
            (b"http://u:p@host:8080/x/y", ("http", "host", 8080, b"host:8080", b"/x/y")),
            (b"http://host?q=1", ("http", "host", 80, b"host", b"/?q=1")),
            (b"http://host:/", ("http", "host", 80, b"host:", b"/")),
            (b"http://host#frag", ("http", "host", 80, b"host", b"/")),
            (b"http://[::1]:8080/x", ("http", "::1", 8080, b"[::1]:8080", b"/x")),
            (b"https://[2001:db8::1]/", ("https", "2001:db8::1", 443, b"[2001:db8::1]", b"/")),
            (b"http://[::ffff:127.0.0.1]/", ("http", "::ffff:127.0.0.1", 80,
                                             b"[::ffff:127.0.0.1]", b"/")),
            (b"http://127.0.0.1:1/", ("http", "127.0.0.1", 1, b"127.0.0.1:1", b"/")),
            (b"http://www.5test.example.com/", ("http", "www.5test.example.com", 80,
                                                b"www.5test.example.com", b"/")),
            ("http://example.com/%C3%A9", ("http", "example.com", 80, b"example.com",
                                           b"/%C3%A9")),
        ):
            with self.subTest(uri=uri):
                got = self.parse(uri)
                self.assertEqual(got, expected)
                self.assertEqual([type(v) for v in got], [str, str, int, bytes, bytes])

    def test_bad(self):
        for uri in (
            b"notascheme://www.example.com:80000/", "httpü://www.example.com/".encode(),
            b"ftp://example.com/", b"www.example.com", b"//example.com/", b"",
            b"http://[www.example.com:80000/", b"http://[::1]x/", b"http://[::g]/",
            b"http://[fe80::1%25eth0]/", b"http://[]/",
            b"http://example.com:ABC123/", b"http://example.com:80000/", b"http://a:0/",
            b"http://a:+80/", b"http://a:1:2/",
            b"http://:80/", b"http://", b"http:///x", b"http://.example.com/",
            b"http://example.com./", b"http://a..b/",
            "http://www.ü.example.com/".encode(), "http://www.ü.example.com/",
            b"http://foo%.example.com/", b"http://example*.com/", b"http://a_b/",
            b"http://%s/" % (b"t" * 64), b"http://%s/" % (b"a." * 128 + b"a"),
            b"http://host/a b", b"http://ho\nst/", b"http://host/\x00", b" http://host/",
            b"http:/x", b"http:x", b"http://host\t/",
        ):
            with self.subTest(uri=uri):
                with self.assertRaises(error.UrlError) as caught:
                    self.parse(uri)
                self.assertIsInstance(caught.exception.detail, str)
                self.assertNotIn("b'", caught.exception.detail)
        with self.assertRaises(TypeError):
            self.parse(80)


class TestErrors(unittest.TestCase):
    UPSTREAM_NAMES = (
        "HttpError", "ChunkError", "ChunkTerminatorError", "DuplicateCLError",
        "MalformedCLError", "ExtraDataError", "OutputError", "OutputSyntaxError",
        "OutputStateError", "StartLineError", "HttpVersionError", "ReadTimeoutError",
        "TransferCodeError", "HeaderSpaceError", "HeaderNoColonError", "HeaderNameError",
        "HeaderValueError", "FieldSectionTooLargeError", "TooManyFieldsError", "BareCRError",
        "TransferEncodingCLError", "RequestTransferEncodingError", "HeaderLineEndingError",
        "ObsoleteFoldError", "TopLineSpaceError", "RequestLineError", "TooManyMsgsError",
        "UrlError", "LengthRequiredError", "DnsError", "ConnectError", "AccessError",
        "HostRequiredError", "InvalidHostError",
    )

    def test_thor_017_names(self):
        for name in self.UPSTREAM_NAMES:
            with self.subTest(name=name):
                cls = getattr(error, name)
                self.assertTrue(issubclass(cls, error.HttpError))
                self.assertIn(name, error.__all__)
                self.assertIsInstance(cls.desc, str)

    def test_hierarchy(self):
        for cls, base in (
            (error.ChunkTerminatorError, error.ChunkError),
            (error.HeaderNameError, error.BadFieldError),
            (error.HeaderValueError, error.BadFieldError),
            (error.HeaderNoColonError, error.BadFieldError),
            (error.BareCRError, error.BadFieldError),
            (error.HeaderLineEndingError, error.BadFieldError),
            (error.ObsoleteFoldError, error.BadFieldError),
            (error.RequestLineError, error.StartLineError),
            (error.InvalidHostError, error.HostRequiredError),
            (error.RequestTransferEncodingError, error.BadTransferCodeError),
            (error.OutputSyntaxError, error.OutputError),
            (error.OutputStateError, error.OutputError),
            (error.BadHeaderError, error.OutputSyntaxError),
            (error.BadStatusError, error.OutputSyntaxError),
            (error.BodyLengthError, error.OutputError),
            (error.StateError, error.OutputStateError),
            (error.OutputError, error.ApplicationError),
            (error.OutputError, ValueError),
            (error.ConnectionClosedError, error.ConnectError),
            (error.DnsError, error.ConnectError),
            (error.AccessError, error.ConnectError),
            (error.QueueTimeoutError, error.ConnectTimeoutError),
        ):
            with self.subTest(cls=cls.__name__):
                self.assertTrue(issubclass(cls, base), base)
        self.assertIs(error.TransferEncodingCLError, error.CLTEError)
        for cls in (error.BareCRError, error.ObsoleteFoldError, error.ChunkTerminatorError,
                    error.RequestLineError, error.InvalidHostError, error.HeaderNameError,
                    error.RequestTransferEncodingError):
            self.assertEqual(cls.server_status, (b"400", b"Bad Request"), cls)
        for cls in (error.OutputError, error.OutputSyntaxError, error.OutputStateError):
            self.assertEqual(cls.server_status[0], b"500", cls)
        self.assertEqual(error.ConnectionClosedError.server_status[0], b"502")

    # The kind of each error, as a proxy classifies it (by class, never by
    # message text).
    PEER = (
        "StartLineError", "RequestLineError", "HttpVersionError", "UriTooLongError",
        "StartLineTooLongError", "HeaderSpaceError", "TopLineSpaceError", "BadFieldError",
        "HeaderNameError", "HeaderValueError", "HeaderNoColonError", "BareCRError",
        "HeaderLineEndingError", "ObsoleteFoldError", "FieldSectionTooLargeError",
        "TooManyFieldsError", "HostRequiredError", "InvalidHostError", "MalformedCLError",
        "DuplicateCLError", "CLTEError", "TransferEncodingCLError", "BadTransferCodeError",
        "RequestTransferEncodingError", "TransferCodeError", "ChunkError",
        "ChunkTerminatorError", "ChunkExtTooLargeError", "TrailerTooLargeError",
        "IncompleteHeadError", "IncompleteBodyError", "ExtraDataError", "TooManyMsgsError",
    )
    NETWORK = (
        "ConnectError", "ConnectTimeoutError", "QueueTimeoutError", "DnsError",
        "AccessError", "ProxyTunnelError", "ConnectionClosedError", "ReadTimeoutError",
        "RequestTimeoutError",
        "BodyTimeoutError", "SendTimeoutError",
    )
    APPLICATION = (
        "UrlError", "LengthRequiredError", "OutputError", "BodyLengthError",
        "OutputSyntaxError", "BadStatusError", "BadHeaderError", "OutputStateError",
        "StateError", "ListenerError", "InternalServerError",
    )

    def test_three_kinds(self):
        kinds = (error.PeerError, error.NetworkError, error.ApplicationError)
        expected = {}
        for names, kind in ((self.PEER, error.PeerError), (self.NETWORK, error.NetworkError),
                            (self.APPLICATION, error.ApplicationError)):
            for name in names:
                expected[name] = kind
        for kind in kinds:
            self.assertIn(kind.__name__, error.__all__)
            self.assertIs(kind.__bases__[0], error.HttpError)
        # Every exported error class but the four bases is listed above,
        # and is under exactly the one kind it is listed with.
        for name in error.__all__:
            cls = getattr(error, name)
            if not isinstance(cls, type) or cls is error.HttpError or cls in kinds:
                continue
            with self.subTest(name=name):
                self.assertIn(name, expected)
                under = [kind for kind in kinds if issubclass(cls, kind)]
                self.assertEqual(under, [expected[name]])
        self.assertEqual(len(expected), len(error.__all__) - 4)

    def test_kinds_keep_earlier_bases(self):
        # The bases the three kinds were added beside still hold.
        self.assertTrue(issubclass(error.InternalServerError, error.ListenerError))
        self.assertTrue(issubclass(error.InternalServerError, error.ApplicationError))
        self.assertTrue(issubclass(error.ListenerError, ValueError))
        self.assertTrue(issubclass(error.ConnectTimeoutError, error.ConnectError))
        self.assertTrue(issubclass(error.BodyTimeoutError, error.RequestTimeoutError))
        # What a server answers, and whether a connection survives, did not
        # change with the bases.
        self.assertEqual(error.ListenerError.server_status[0], b"500")
        self.assertFalse(error.ListenerError.server_recoverable)
        self.assertFalse(error.ListenerError.client_recoverable)
        self.assertFalse(error.InternalServerError.server_recoverable)
        self.assertTrue(error.InternalServerError.client_recoverable)
        self.assertTrue(error.UrlError.client_recoverable)
        self.assertIsNone(error.ExtraDataError.server_status)
        self.assertIsNone(error.StartLineTooLongError.server_status)
        self.assertEqual(error.ReadTimeoutError.server_status[0], b"504")

    def test_detail_is_text(self):
        err = error.ChunkError(b"abc\r\n\xff\xc3\xa9")
        self.assertEqual(err.detail, "abc\\x0d\\x0a\\xffé")
        self.assertEqual(str(err), "Chunked encoding error (abc\\x0d\\x0a\\xffé)")
        self.assertEqual(error.HttpError("text").detail, "text")
        self.assertIsNone(error.HttpError().detail)
        self.assertEqual(error.detail_text(b"x" * 300, 10), "x" * 10 + "...")
        self.assertEqual(error.detail_text("tab\there"), "tab\there")


class TestPackaging(unittest.TestCase):
    def test_setup_installs_every_package(self):
        # `pip install thor` installs what setup.py lists: a package left
        # out (thor.http.h2 was, for a while) is missing from every install
        # while every test from a checkout passes.
        import ast
        import os

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, "setup.py")) as handle:
            tree = ast.parse(handle.read())
        listed = None
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "packages":
                listed = set(ast.literal_eval(node.value))
        found = {
            os.path.relpath(path, root).replace(os.sep, ".")
            for path, dirs, files in os.walk(os.path.join(root, "thor"))
            if "__init__.py" in files
        }
        self.assertEqual(listed, found)


if __name__ == "__main__":
    unittest.main()
