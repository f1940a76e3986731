"""How long thor.http.parser takes per message, beside the stdlib.

Run: python3 tests/bench/bench_parser.py [iterations]

Prints microseconds per parse (best of 5 runs) for:
  * a typical GET with 6 header fields;
  * a POST with a chunked body of 3 chunks;
and, as a reference in the same run, the stdlib parsing only the header
fields of the same messages (http.client.parse_headers, which reads lines
and hands them to the email parser). thor's figures include the start line,
framing checks and the delegate calls. Times are process CPU time, so that
other load on the machine does not inflate them.
"""

import io
import os
import sys
import time
import timeit
import http.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from thor.http.parser import HttpParser  # noqa: E402

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


class Sink:
    __slots__ = ("messages",)

    def __init__(self):
        self.messages = 0

    def on_request_head(self, method, target, headers):
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


def best(stmt, number):
    # CPU time of this process: other work on the machine does not count.
    timer = timeit.Timer(stmt, timer=time.process_time)
    return min(timer.repeat(number=number, repeat=5)) / number * 1e6


def main():
    number = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    sink = Sink()
    parser = HttpParser(sink, True)

    def reuse_get():
        parser.feed(GET)

    def reuse_post():
        parser.feed(POST)

    def fresh_get():
        HttpParser(sink, True).feed(GET)

    get_fields = field_lines(GET)
    post_fields = field_lines(POST)

    def stdlib_get():
        http.client.parse_headers(io.BytesIO(get_fields))

    def stdlib_post():
        http.client.parse_headers(io.BytesIO(post_fields))

    rows = [
        ("thor   GET, 6 fields (one parser per connection)", reuse_get),
        ("thor   GET, 6 fields (new parser each time)", fresh_get),
        ("thor   POST, chunked, 3 chunks", reuse_post),
        ("stdlib GET header fields (http.client.parse_headers)", stdlib_get),
        ("stdlib POST header fields (http.client.parse_headers)", stdlib_post),
    ]
    print("Python %s, %d iterations, best of 5 (CPU time)" % (sys.version.split()[0], number))
    for label, func in rows:
        print("%-58s %7.2f us" % (label, best(func, number)))
    assert sink.messages > 0


if __name__ == "__main__":
    main()
