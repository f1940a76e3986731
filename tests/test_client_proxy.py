"""HttpClient through an upstream proxy (``HttpClient.proxy``): http://
requests in absolute-form, https:// ones through a CONNECT tunnel and TLS
with the origin; credentials, refusals, check_ip, the command line's -x.

The proxy is thor's own HttpProxy in forward mode, the origins thor
HttpServers (TLS with certificates from tests/support.make_cert), all on
the test's loop on 127.0.0.1, port 0. Proxies that misbehave are raw
TcpServers writing canned bytes.
"""

import base64
import os
import ssl
import subprocess
import sys
import threading

from thor.http import error
from thor.http.client import HttpClient, ProxyTunnelError
from thor.http.proxy import HttpProxy
from thor.http.server import HttpServer
from thor.tcp import TcpServer

from tests.support import LoopTestCase, answer_when_complete, make_cert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _nothing():
    pass


class RecordingProxy(HttpProxy):
    """A forward HttpProxy that records each request as it came (method,
    request-target, Proxy-Authorization) and, with ``credentials`` set,
    answers 407 to a request without them."""

    credentials = None

    def request_hook(self, pex):
        auth = [v.strip() for n, v in pex.headers if n.lower() == b"proxy-authorization"]
        self.seen.append((pex.method, pex.server_exchange.uri, auth))
        if self.credentials is not None and auth != [self.credentials]:
            pex.respond(407, "Proxy Authentication Required",
                        [("Proxy-Authenticate", 'Basic realm="test"')], "")
            return
        # What a proxy does with its own credentials: not forwarded.
        pex.headers = [(n, v) for n, v in pex.headers if n.lower() != b"proxy-authorization"]


class ClientProxyTestCase(LoopTestCase):

    def setUp(self):
        LoopTestCase.setUp(self)
        self.seen = []  # at the origin: (method, uri, headers)

    def origin(self, tls_context=None):
        server = HttpServer("127.0.0.1", 0, self.loop, tls_context=tls_context)
        self.addCleanup(server.close)

        def respond(ex, body, trailers):
            self.seen.append((ex.method, ex.uri, ex.req_hdrs))
            reply = b"ok:" + ex.method + b" " + ex.uri + b":" + body
            ex.response_start(200, "OK", [("Content-Length", str(len(reply)))])
            ex.response_body(reply)
            ex.response_done([])

        answer_when_complete(server, respond)
        return server

    def tls_origin(self):
        certfile, keyfile = make_cert("localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        return self.origin(context), ssl.create_default_context(cafile=certfile)

    def proxy(self, credentials=None, connect_ports=()):
        proxy = RecordingProxy("127.0.0.1", 0, self.loop, connect_ports=connect_ports)
        proxy.seen = []
        proxy.credentials = credentials
        self.addCleanup(proxy.close)
        return proxy

    def client(self, proxy_url, tls_context=None):
        client = HttpClient(self.loop)
        client.proxy = proxy_url
        client.tls_context = tls_context
        client.connect_timeout = 5
        client.read_timeout = 5
        self.addCleanup(client.close)
        return client

    def fetch(self, client, url, method="GET", headers=(), body=b""):
        result = {}
        chunks = []
        ex = client.exchange()
        ex.on("response_start", lambda s, p, h: result.update(status=s, headers=h))
        ex.on("response_body", chunks.append)
        ex.on("response_done", lambda t: result.update(body=b"".join(chunks)))
        ex.on("error", lambda err: result.update(error=err))
        ex.request_start(method, url, list(headers))
        if body:
            ex.request_body(body)
        ex.request_done([])
        self.run_until(lambda: "body" in result or "error" in result, 10)
        return result


class HttpThroughProxyTests(ClientProxyTestCase):

    def test_http_request_goes_to_the_proxy_in_absolute_form(self):
        origin = self.origin()
        proxy = self.proxy()
        client = self.client("http://127.0.0.1:%d" % proxy.port)
        url = "http://127.0.0.1:%d/path?q=1" % origin.port
        result = self.fetch(client, url, "POST", [("Content-Length", "4")], b"data")
        self.assertEqual(result.get("status"), b"200", result)
        self.assertEqual(result["body"], b"ok:POST /path?q=1:data")
        # The proxy got the absolute-form; the origin, from the proxy, the
        # origin-form with the origin's Host.
        self.assertEqual(proxy.seen, [(b"POST", url.encode("ascii"), [])])
        method, uri, headers = self.seen[0]
        self.assertEqual(uri, b"/path?q=1")
        self.assertIn((b"host", b"127.0.0.1:%d" % origin.port),
                      [(n.lower(), v.strip()) for n, v in headers])

    def test_connections_are_pooled_per_proxy(self):
        # Two origins, one proxy: the second request reuses the connection
        # to the proxy that the first one opened.
        first, second = self.origin(), self.origin()
        proxy = self.proxy()
        connections = []
        proxy.server.on("exchange", lambda ex: connections.append(ex.connection))
        client = self.client("http://127.0.0.1:%d" % proxy.port)
        for origin in (first, second, first):
            result = self.fetch(client, "http://127.0.0.1:%d/" % origin.port)
            self.assertEqual(result.get("status"), b"200", result)
        self.assertEqual(len(connections), 3)
        self.assertEqual(len(set(map(id, connections))), 1)
        self.assertEqual(len(client._origins), 1)

    def test_credentials_are_sent_as_basic_proxy_authorization(self):
        origin = self.origin()
        token = b"Basic " + base64.b64encode(b"user:p@ss word")
        proxy = self.proxy(credentials=token)
        # Percent-encoded in the URL, as in any URL.
        client = self.client("http://user:p%40ss%20word@127.0.0.1:" + str(proxy.port))
        result = self.fetch(client, "http://127.0.0.1:%d/" % origin.port)
        self.assertEqual(result.get("status"), b"200", result)
        self.assertEqual(proxy.seen[0][2], [token])
        # The setting's credentials replace any the application passed:
        # one Proxy-Authorization, not two.
        result = self.fetch(client, "http://127.0.0.1:%d/" % origin.port,
                            headers=[("Proxy-Authorization", "Basic b3RoZXI6eA==")])
        self.assertEqual(result.get("status"), b"200", result)
        self.assertEqual(proxy.seen[1][2], [token])

    def test_a_407_from_the_proxy_is_the_response(self):
        # For an http:// request the proxy's answer is the response, as any
        # other: the application sees the 407 (as curl does).
        origin = self.origin()
        proxy = self.proxy(credentials=b"Basic " + base64.b64encode(b"a:b"))
        client = self.client("http://127.0.0.1:%d" % proxy.port)
        result = self.fetch(client, "http://127.0.0.1:%d/" % origin.port)
        self.assertEqual(result.get("status"), b"407", result)
        self.assertEqual(self.seen, [])

    def test_check_ip_applies_to_the_proxys_address(self):
        origin = self.origin()
        proxy = self.proxy()
        asked = []

        def policy(ip):
            asked.append(ip)
            return False

        client = self.client("http://localhost:%d" % proxy.port)
        client.check_ip = policy
        result = self.fetch(client, "http://127.0.0.1:%d/" % origin.port)
        self.assertIsInstance(result.get("error"), error.AccessError, result)
        self.assertIn("proxy", str(result["error"]))
        self.assertTrue(asked)
        self.assertEqual(proxy.seen, [])

    def test_bad_proxy_settings_raise_at_the_call(self):
        client = HttpClient(self.loop)
        for setting in ("https://127.0.0.1:3128", "ftp://127.0.0.1", "http://", "http://h:99999"):
            client.proxy = setting
            with self.assertRaises(error.UrlError, msg=setting):
                client.exchange().request_start("GET", "http://127.0.0.1:1/", [])

    def test_a_message_does_not_show_the_password(self):
        client = HttpClient(self.loop)
        client.proxy = "ftp://user:secret@127.0.0.1:3128"
        with self.assertRaises(error.UrlError) as caught:
            client.exchange().request_start("GET", "http://127.0.0.1:1/", [])
        self.assertNotIn("secret", str(caught.exception))


class HttpsThroughProxyTests(ClientProxyTestCase):

    def test_https_request_goes_through_a_connect_tunnel(self):
        origin, trust = self.tls_origin()
        token = b"Basic " + base64.b64encode(b"user:pw")
        proxy = self.proxy(credentials=token, connect_ports=[origin.port])
        client = self.client("http://user:pw@127.0.0.1:%d" % proxy.port, trust)
        # The origin's name is what TLS verifies (the certificate is for
        # localhost), not the proxy's.
        url = "https://localhost:%d/secret?x" % origin.port
        result = self.fetch(client, url, "POST", [("Content-Length", "2")], b"hi")
        self.assertEqual(result.get("status"), b"200", result)
        self.assertEqual(result["body"], b"ok:POST /secret?x:hi")
        # The proxy saw only the CONNECT, with the credentials; the origin
        # the request in origin-form, without them.
        self.assertEqual(proxy.seen, [(b"CONNECT", b"localhost:%d" % origin.port, [token])])
        method, uri, headers = self.seen[0]
        self.assertEqual(uri, b"/secret?x")
        self.assertNotIn(b"proxy-authorization", [n.lower() for n, v in headers])
        # The tunnel is kept alive: a second request takes it, no new CONNECT.
        result = self.fetch(client, "https://localhost:%d/again" % origin.port)
        self.assertEqual(result.get("body"), b"ok:GET /again:")
        self.assertEqual(len(proxy.seen), 1)

    def test_the_origin_certificate_is_verified_inside_the_tunnel(self):
        origin, _ = self.tls_origin()
        proxy = self.proxy(connect_ports=[origin.port])
        # The system's trust store does not know the test's certificate.
        client = self.client("http://127.0.0.1:%d" % proxy.port, ssl.create_default_context())
        result = self.fetch(client, "https://localhost:%d/" % origin.port)
        self.assertIsInstance(result.get("error"), error.ConnectError, result)
        self.assertIn("SSL", str(result["error"]))
        self.assertEqual(self.seen, [])
        # The origin's side of the failed handshake ends too (the server
        # does not close a handshake in progress when it closes).
        self.run_until(lambda: not origin.tcp_server._connections)

    def test_a_refused_connect_is_a_proxy_tunnel_error(self):
        origin, trust = self.tls_origin()
        proxy = self.proxy()  # CONNECT to 443 only: 403 for the origin's port
        client = self.client("http://127.0.0.1:%d" % proxy.port, trust)
        result = self.fetch(client, "https://localhost:%d/" % origin.port)
        err = result.get("error")
        self.assertIsInstance(err, ProxyTunnelError, result)
        self.assertIsInstance(err, error.ConnectError)
        self.assertEqual(err.status, 403)
        self.assertIn("403", str(err))
        self.assertEqual(self.seen, [])

    def test_a_407_to_connect_is_a_proxy_tunnel_error(self):
        origin, trust = self.tls_origin()
        proxy = self.proxy(credentials=b"Basic " + base64.b64encode(b"a:b"),
                           connect_ports=[origin.port])
        client = self.client("http://a:wrong@127.0.0.1:%d" % proxy.port, trust)
        result = self.fetch(client, "https://localhost:%d/" % origin.port)
        err = result.get("error")
        self.assertIsInstance(err, ProxyTunnelError, result)
        self.assertEqual(err.status, 407)
        self.assertIn("Proxy Authentication Required", str(err))
        self.assertEqual(self.seen, [])

    def raw_server(self):
        """A TcpServer whose connections are closed when the test ends."""
        server = TcpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(server.close)
        held = []
        server.on("connect", held.append)
        self.addCleanup(lambda: [tcp.abort() for tcp in held])
        return server, held

    def raw_proxy(self, answer):
        """A proxy that answers whatever comes with ``answer`` (bytes, or
        None to close), and records what it got."""
        server, _ = self.raw_server()
        server.got = []

        def connected(tcp):
            def data(chunk):
                server.got.append(chunk)
                if answer is None:
                    tcp.close()
                else:
                    tcp.write(answer)

            tcp.on("data", data)
            tcp.pause(False)

        server.on("connect", connected)
        return server

    def test_a_proxy_that_closes_before_answering(self):
        server = self.raw_proxy(None)
        client = self.client("http://127.0.0.1:%d" % server.port)
        result = self.fetch(client, "https://localhost:1/")
        err = result.get("error")
        self.assertIsInstance(err, ProxyTunnelError, result)
        self.assertIsNone(err.status)
        self.assertTrue(server.got[0].startswith(b"CONNECT localhost:1 HTTP/1.1\r\n"))

    def test_a_proxy_that_does_not_speak_http(self):
        server = self.raw_proxy(b"SSH-2.0-OpenSSH\r\n\r\n")
        client = self.client("http://127.0.0.1:%d" % server.port)
        result = self.fetch(client, "https://localhost:1/")
        self.assertIsInstance(result.get("error"), ProxyTunnelError, result)

    def test_bytes_after_the_connect_answer_are_refused(self):
        server = self.raw_proxy(b"HTTP/1.1 200 OK\r\n\r\nearly")
        client = self.client("http://127.0.0.1:%d" % server.port)
        result = self.fetch(client, "https://localhost:1/")
        self.assertIsInstance(result.get("error"), ProxyTunnelError, result)

    def test_connect_timeout_bounds_the_tunnel(self):
        # The proxy accepts and never answers.
        server, held = self.raw_server()
        client = self.client("http://127.0.0.1:%d" % server.port)
        client.connect_timeout = 0.2
        result = self.fetch(client, "https://localhost:1/")
        self.assertIsInstance(result.get("error"), error.ConnectTimeoutError, result)
        self.assertEqual(len(held), 1)


class CommandLineProxyTests(ClientProxyTestCase):

    def run_command(self, *args):
        """``python -m thor.http.client ARGS`` in a thread, while this loop
        runs the proxy and origin."""
        outcome = {}

        def run():
            try:
                outcome["result"] = subprocess.run(
                    [sys.executable, "-m", "thor.http.client"] + list(args),
                    cwd=ROOT, capture_output=True, timeout=20,
                    env=dict(os.environ, PYTHONPATH=ROOT),
                )
            except BaseException as exc:
                outcome["error"] = exc
            self.loop.run_in_loop(_nothing)  # wake the loop

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.run_until(lambda: outcome, 25)
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def test_dash_x_goes_through_the_proxy(self):
        origin = self.origin()
        proxy = self.proxy()
        url = "http://127.0.0.1:%d/cli" % origin.port
        done = self.run_command("-x", "127.0.0.1:%d" % proxy.port, url)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, b"ok:GET /cli:")
        self.assertEqual(proxy.seen, [(b"GET", url.encode("ascii"), [])])

    def test_long_option_and_a_bad_proxy(self):
        done = self.run_command("--proxy", "ftp://127.0.0.1:1", "http://127.0.0.1:1/")
        self.assertEqual(done.returncode, 2)
        self.assertIn(b"proxy", done.stderr)
