"""How long thor.http.parser takes per message, beside the stdlib.

Run: python3 tests/bench/bench_parser.py [iterations] [--against FILE]

Prints microseconds per parse (best of 7 runs) for:
  * a typical GET request head with 6 header fields;
  * a GET with 12 header fields;
  * a POST with a chunked body of 3 chunks;
  * a typical response head (status line, 7 fields) with a Content-Length
    body, as a client reads it;
  * a GET fed to a new parser each time (the first request on a connection);
and, as a reference in the same run, the stdlib parsing only the header
fields of the GETs (http.client.parse_headers, which reads lines and hands
them to the email parser). thor's figures include the start line, framing
checks and the delegate calls. Each message is fed whole, once per parse,
to one parser per connection (the keep-alive case).

``--against FILE`` also times another copy of parser.py (say, the one
before a change), the two taking turns run by run so that load on a shared
machine weighs on both alike. Times are process CPU time, so that other
work on the machine does not inflate them.
"""

import importlib.util
import io
import os
import sys
import time
import http.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import thor.http.parser  # noqa: E402

GET = (
    b"GET /search?q=thor&lang=en HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)

GET12 = (
    b"GET /static/app.js?v=3 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://www.example.com/search?q=thor\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=4f2a9c1e77d04b1d; theme=dark\r\n"
    b"If-None-Match: \"5e8f-17a3c\"\r\n"
    b"Cache-Control: max-age=0\r\n"
    b"Sec-Fetch-Dest: script\r\n"
    b"Sec-Fetch-Mode: no-cors\r\n"
    b"\r\n"
)

POST = (
    b"POST /upload HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: thor-bench/1.0\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    b"10\r\n0123456789abcdef\r\n"
    b"20\r\n0123456789abcdef0123456789abcdef\r\n"
    b"8;note=last\r\n01234567\r\n"
    b"0\r\n\r\n"
)

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Mon, 06 May 2024 10:00:00 GMT\r\n"
    b"Server: thor\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Cache-Control: max-age=60\r\n"
    b"ETag: \"5e8f-17a3c\"\r\n"
    b"Vary: Accept-Encoding\r\n"
    b"Content-Length: 49\r\n"
    b"\r\n"
    b"<html><body><p>Hello from thor.</p></body></html>"
)


class Sink:
    __slots__ = ("messages",)

    def __init__(self):
        self.messages = 0

    def on_request_head(self, method, target, headers):
        pass

    def on_response_head(self, status, phrase, headers):
        pass

    def on_response_nonfinal(self, status, phrase, headers):
        pass

    def on_body(self, chunk):
        pass

    def on_message_done(self, trailers):
        self.messages += 1

    def on_error(self, err):
        raise err


def field_lines(message):
    """The header field lines of ``message`` with the empty line, as the
    stdlib's parse_headers expects them (after the start line)."""
    head = message[:message.index(b"\r\n\r\n") + 4]
    return head[head.index(b"\r\n") + 2:]


def cases(module):
    """(label, function doing ``number`` parses) for the parser in ``module``."""
    parser_class = module.HttpParser
    sink = Sink()
    server = parser_class(sink, True)
    client = parser_class(sink, False)

    def feeds(data, parser=server):
        feed = parser.feed

        def go(number):
            for _ in range(number):
                feed(data)
        return go

    def response(number):
        expect = client.expect_response
        feed = client.feed
        for _ in range(number):
            expect(b"GET")
            feed(RESPONSE)

    def fresh_get(number):
        for _ in range(number):
            parser_class(sink, True).feed(GET)

    return [
        ("GET, 6 fields", feeds(GET)),
        ("GET, 12 fields", feeds(GET12)),
        ("POST, chunked, 3 chunks", feeds(POST)),
        ("response head, 7 fields, CL body", response),
        ("GET, 6 fields, new parser each time", fresh_get),
    ]


def stdlib_cases():
    get_fields = field_lines(GET)
    get12_fields = field_lines(GET12)

    def parse(fields):
        def go(number):
            for _ in range(number):
                http.client.parse_headers(io.BytesIO(fields))
        return go

    return [
        ("stdlib GET, 6 header fields only", parse(get_fields)),
        ("stdlib GET, 12 header fields only", parse(get12_fields)),
    ]


def timed(func, number):
    start = time.process_time()
    func(number)
    return (time.process_time() - start) / number * 1e6


def load(path):
    spec = importlib.util.spec_from_file_location("parser_under_comparison", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    against = None
    if "--against" in argv:
        at = argv.index("--against")
        against = load(argv[at + 1])
        del argv[at:at + 2]
    number = int(argv[0]) if argv else 20000
    repeat = 7
    ours = cases(thor.http.parser)
    theirs = cases(against) if against else None
    print("Python %s, %d iterations, best of %d (CPU time, us per message)" % (
        sys.version.split()[0], number, repeat))
    if theirs:
        print("%-40s %9s %9s" % ("", "this", "against"))
    for index, (label, func) in enumerate(ours):
        func(number // 10)  # warm the caches
        best = other = float("inf")
        for _ in range(repeat):
            best = min(best, timed(func, number))
            if theirs:
                other = min(other, timed(theirs[index][1], number))
        if theirs:
            print("%-40s %9.2f %9.2f" % (label, best, other))
        else:
            print("%-40s %9.2f" % (label, best))
    for label, func in stdlib_cases():
        print("%-40s %9.2f" % (label, min(timed(func, number) for _ in range(repeat))))


if __name__ == "__main__":
    main(sys.argv[1:])
