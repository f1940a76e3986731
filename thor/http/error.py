"""The HttpError family: every way an HTTP exchange can fail.

Three kinds, kept apart (as h11 keeps RemoteProtocolError apart from
LocalProtocolError), each with its abstract base; every class is under
exactly one of them, so a program (a proxy choosing its answer) can
classify by class, never by message text:

* ``PeerError``: the peer broke the protocol (reported by thor.http.parser
  through ``on_error``, and by the client and server as their ``error``
  event);
* ``NetworkError``: the network or the clock gave up (connect errors,
  timeouts, closes);
* ``ApplicationError`` (also ``ValueError``): the application misused the
  API, raised at the offending call before anything is sent; or one of its
  listeners raised (``ListenerError``, emitted as ``error``).

Each class says what a server answers when it meets that error
(``server_status``, a ``(code, phrase)`` tuple of bytes, or None when the
error can only happen on the client side), and whether the connection can
be used again afterwards (``server_recoverable``, ``client_recoverable``).
``detail`` is always text (or None): bytes given to the constructor are
decoded (``detail_text``).

Names are Thor 0.17's where it has one (its subclasses are listed under
the thor class they refine), so that code written for it catches the same
errors. Final names and server_status:

  Peer errors (parser): PeerError     None
    StartLineError             400  malformed request or status line, bare
                                    LF (strict) in it, bad request-target
                                    form, an absolute-form authority that is
                                    invalid (userinfo or empty host in
                                    http/https), a CONNECT port that is not
                                    1-65535
      RequestLineError         400  method not a token, request-target with
                                    characters it may not hold, bare CR or
                                    another control in the request line
    HttpVersionError           505  not HTTP/1.0 or HTTP/1.1: a later or
                                    earlier version, or another protocol
                                    name (ICY/1.1)
    UriTooLongError            414  request line longer than the limit
    StartLineTooLongError      None status line longer than the limit (client)
    HeaderSpaceError           400  whitespace between field name and colon
    TopLineSpaceError          400  whitespace-led line after the start line
    BadFieldError              400  a malformed field line:
      HeaderNameError          400    field name empty or not a token
      HeaderValueError         400    NUL or another control in a value
      HeaderNoColonError       400    no colon
      BareCRError              400    CR not followed by LF
      HeaderLineEndingError    400    bare LF (strict)
      ObsoleteFoldError        400    a trailer section that starts with a
                                      folded (whitespace-led) line; folds
                                      after a field are unfolded, not refused
    FieldSectionTooLargeError  431  header section longer than the limit
    TooManyFieldsError         431  more header (or trailer) fields than the limit
    HostRequiredError          400  HTTP/1.1 request without Host
      InvalidHostError         400  several Host fields, or a value that is
                                    not uri-host [":" port]
    MalformedCLError           400  Content-Length not 1*DIGIT (max 18 digits),
                                    or not 0 on a CONNECT request
    DuplicateCLError           400  differing Content-Length values
    CLTEError                  400  request with Transfer-Encoding and
                                    Content-Length (TransferEncodingCLError
                                    is the same class)
    BadTransferCodeError       400  Transfer-Encoding that makes framing
                                    unreliable: chunked twice, with
                                    parameters, empty or bad coding names,
                                    or any Transfer-Encoding in HTTP/1.0 or
                                    on a CONNECT request
      RequestTransferEncodingError 400  request codings not ending in chunked
    TransferCodeError          501  codings before chunked (we decode none)
    ChunkError                 400  bad chunk-size line
      ChunkTerminatorError     400  chunk data not followed by CRLF
    ChunkExtTooLargeError      400  chunk extensions longer than the limit
    TrailerTooLargeError       431  trailer section longer than the limit
    IncompleteHeadError        400  input ended inside a start line or header
                                    section
    IncompleteBodyError        400  input ended inside a body
    ExtraDataError             None bytes after a response when none is expected
    TooManyMsgsError           400  for owners that cap queued pipelined
                                    requests (the parser itself never recurses)

  Network and time: NetworkError       None
    ConnectError               502  could not connect to the origin (client)
      ConnectTimeoutError      504  connect timed out
        QueueTimeoutError      504  waited too long for a connection
      DnsError                 502  the name did not resolve
      AccessError              403  check_ip refused every address
      ProxyTunnelError         502  the client's proxy refused a CONNECT tunnel
      ConnectionClosedError    502  peer closed while an exchange was live
                                    (a client's retries are spent, or the
                                    body was cut off)
    ReadTimeoutError           504  response stalled (client)
    RequestTimeoutError        408  request head too slow (server)
      BodyTimeoutError         408  request body made no progress (server)
    SendTimeoutError           504  the peer read nothing of what we sent

  Application errors (also ValueError; raised at the call, but for
  ListenerError)
    ApplicationError           500
      ListenerError            500  a listener of the exchange raised
                                    (emitted as error; not recoverable)
        InternalServerError    500  the application raised while handling
                                    a request (server)
      UrlError                 400  unsupported or invalid URL (client)
      LengthRequiredError      411  body without Content-Length where needed
      OutputError              500  what would be sent is wrong:
        BodyLengthError        500    body longer / shorter than Content-Length
        OutputSyntaxError      500    bytes that may not go on the wire:
          BadStatusError       500      status code not 100-599, or bad phrase
          BadHeaderError       500      field name not a token, CR/LF/NUL/CTL
                                        in a value, non-Latin-1 text
        OutputStateError       500    a call out of order:
          StateError           500      (thor's name)
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

__all__ = [
    "HttpError", "PeerError", "NetworkError",
    # peer
    "StartLineError", "RequestLineError", "HttpVersionError", "UriTooLongError",
    "StartLineTooLongError", "HeaderSpaceError", "TopLineSpaceError", "BadFieldError",
    "HeaderNameError", "HeaderValueError", "HeaderNoColonError", "BareCRError",
    "HeaderLineEndingError", "ObsoleteFoldError",
    "FieldSectionTooLargeError", "TooManyFieldsError", "HostRequiredError",
    "InvalidHostError", "MalformedCLError", "DuplicateCLError", "CLTEError",
    "TransferEncodingCLError", "BadTransferCodeError", "RequestTransferEncodingError",
    "TransferCodeError", "ChunkError", "ChunkTerminatorError", "ChunkExtTooLargeError",
    "TrailerTooLargeError", "IncompleteHeadError", "IncompleteBodyError",
    "ExtraDataError", "TooManyMsgsError",
    # network / time
    "ConnectError", "ConnectTimeoutError", "ReadTimeoutError", "RequestTimeoutError",
    "ConnectionClosedError", "DnsError", "AccessError", "ProxyTunnelError", "QueueTimeoutError",
    "BodyTimeoutError", "SendTimeoutError",
    # application
    "ApplicationError", "ListenerError", "UrlError", "LengthRequiredError", "OutputError",
    "OutputSyntaxError", "OutputStateError", "BadStatusError", "BadHeaderError",
    "BodyLengthError", "StateError", "InternalServerError",
]

StatusType = Tuple[bytes, bytes]

_400: StatusType = (b"400", b"Bad Request")
_500: StatusType = (b"500", b"Internal Server Error")
_431: StatusType = (b"431", b"Request Header Fields Too Large")

# Controls but HTAB, shown as escapes, so that a detail prints on one line
# and shows what was there.
_ESCAPES = {c: "\\x%02x" % c for c in (*range(0x09), *range(0x0A, 0x20), 0x7F)}


def detail_text(raw: Union[bytes, bytearray, memoryview, str], limit: int = 200) -> str:
    """``raw`` as text for a ``detail``: bytes as UTF-8, with bytes that
    are not UTF-8 and controls (but HTAB) as ``\\xNN``, cut after ``limit``
    bytes (marked with "...")."""
    if isinstance(raw, str):
        text = raw[:limit]
        more = len(raw) > limit
    else:
        data = bytes(raw[:limit])
        more = len(raw) > limit
        text = data.decode("utf-8", "backslashreplace")
    text = text.translate(_ESCAPES)
    return text + "..." if more else text


class HttpError(Exception):
    """Base class. ``detail`` (str or None) says what exactly went wrong."""

    desc = "Unknown Error"
    server_status: Optional[StatusType] = None
    server_recoverable = False
    client_recoverable = False

    def __init__(self, detail: Union[str, bytes, None] = None) -> None:
        if detail is not None and not isinstance(detail, str):
            detail = detail_text(detail)
        if detail is None:
            Exception.__init__(self)
        else:
            Exception.__init__(self, detail)
        self.detail: Optional[str] = detail

    def __str__(self) -> str:
        if self.detail is None:
            return self.desc
        return "%s (%s)" % (self.desc, self.detail)

    def __repr__(self) -> str:
        if self.detail is None:
            return "%s()" % type(self).__name__
        return "%s(%r)" % (type(self).__name__, self.detail)


# -- the three kinds ---------------------------------------------------------
# Every class below is under exactly one of PeerError, NetworkError and
# ApplicationError, so that a program (a proxy choosing its answer, a log)
# can tell them apart by class.


class PeerError(HttpError):
    """The peer broke the protocol: what it sent cannot be read as HTTP/1.1,
    or is refused by a limit (the parser's errors)."""

    # None, as HttpError's: client-side errors (ExtraDataError,
    # StartLineTooLongError) answer nothing; each server-side one says.
    desc = "The peer broke the protocol"


class NetworkError(HttpError):
    """The network or the clock ended the exchange: connect errors, name
    resolution, closes, timeouts."""

    desc = "Network error"


# -- the peer broke the protocol ---------------------------------------------


class StartLineError(PeerError):
    desc = "The start line of the message couldn't be parsed"
    server_status = _400


class RequestLineError(StartLineError):
    """The method is not a token, or the request line holds a byte it may
    not (Thor 0.17's name; thor refuses such a request)."""

    desc = "Request-line contains unexpected characters"


class HttpVersionError(PeerError):
    desc = "Unsupported HTTP version"
    server_status = (b"505", b"HTTP Version Not Supported")


class UriTooLongError(PeerError):
    desc = "Request line too long"
    server_status = (b"414", b"URI Too Long")


class StartLineTooLongError(PeerError):
    desc = "Status line too long"


class HeaderSpaceError(PeerError):
    """``detail`` is the field name, with the whitespace."""

    desc = "Whitespace between a field name and its colon"
    server_status = _400


class TopLineSpaceError(PeerError):
    desc = "Whitespace after the start line, before the first field"
    server_status = _400


class BadFieldError(PeerError):
    desc = "Malformed field line"
    server_status = _400


class HeaderNameError(BadFieldError):
    desc = "Invalid header field-name"


class HeaderValueError(BadFieldError):
    desc = "Invalid header field-value"


class HeaderNoColonError(BadFieldError):
    desc = "Header field line did not contain a colon"


class BareCRError(BadFieldError):
    desc = "Bare CR in field section"


class HeaderLineEndingError(BadFieldError):
    desc = "Header line was terminated with LF instead of CRLF"


class ObsoleteFoldError(BadFieldError):
    desc = "Obsolete folded header field"


class FieldSectionTooLargeError(PeerError):
    desc = "Header section too large"
    server_status = _431


class TooManyFieldsError(PeerError):
    desc = "Too many fields"
    server_status = _431


class HostRequiredError(PeerError):
    desc = "Host header required"
    server_status = _400


class InvalidHostError(HostRequiredError):
    desc = "Invalid Host header"


class MalformedCLError(PeerError):
    desc = "Malformed Content-Length header"
    server_status = _400


class DuplicateCLError(PeerError):
    desc = "Conflicting Content-Length values"
    server_status = _400


class CLTEError(PeerError):
    desc = "Both Transfer-Encoding and Content-Length present"
    server_status = _400


# Thor 0.17's name for the same error.
TransferEncodingCLError = CLTEError


class BadTransferCodeError(PeerError):
    desc = "Transfer-Encoding makes the message framing unreliable"
    server_status = _400


class RequestTransferEncodingError(BadTransferCodeError):
    desc = "Request Transfer-Encoding does not end in chunked"


class TransferCodeError(PeerError):
    desc = "Unsupported transfer coding"
    server_status = (b"501", b"Not Implemented")


class ChunkError(PeerError):
    desc = "Chunked encoding error"
    server_status = _400


class ChunkTerminatorError(ChunkError):
    desc = "Chunked body chunk was not terminated with CRLF"


class ChunkExtTooLargeError(PeerError):
    desc = "Chunk extensions too large"
    server_status = _400


class TrailerTooLargeError(PeerError):
    desc = "Trailer section too large"
    server_status = _431


class IncompleteHeadError(PeerError):
    desc = "Input ended inside a message head"
    server_status = _400


class IncompleteBodyError(PeerError):
    desc = "Input ended inside a message body"
    server_status = _400


class ExtraDataError(PeerError):
    desc = "Extra data was sent after this message was supposed to end"


class TooManyMsgsError(PeerError):
    desc = "Too many messages to parse"
    server_status = _400


# -- the network or the clock gave up ----------------------------------------


class ConnectError(NetworkError):
    desc = "Connection error"
    server_status = (b"502", b"Bad Gateway")


class ConnectTimeoutError(ConnectError):
    desc = "Connect timeout"
    server_status = (b"504", b"Gateway Timeout")


class ReadTimeoutError(NetworkError):
    desc = "Read Timeout"
    server_status = (b"504", b"Gateway Timeout")


class RequestTimeoutError(NetworkError):
    desc = "Request timeout"
    server_status = (b"408", b"Request Timeout")


class ConnectionClosedError(ConnectError):
    """The peer closed the connection while an exchange was live: a
    ConnectError, as Thor 0.17 reports a dropped connection (a proxy
    answers 502 for it; a server cannot answer a client that left)."""

    desc = "Connection closed"


class DnsError(ConnectError):
    desc = "DNS Error"


class AccessError(ConnectError):
    """The client's ``check_ip`` refused every address the name resolved to."""

    desc = "Access Error"
    server_status = (b"403", b"Forbidden")


class ProxyTunnelError(ConnectError):
    """An upstream proxy (``HttpClient.proxy``) would not open a tunnel to
    an https:// origin: it answered CONNECT with ``status`` (an int; 407
    when it wants credentials), or with something that was not HTTP
    (``status`` None)."""

    desc = "The proxy refused the tunnel"

    def __init__(self, detail: Optional[Union[str, bytes]] = None,
                 status: Optional[int] = None) -> None:
        ConnectError.__init__(self, detail)
        self.status = status


class QueueTimeoutError(ConnectTimeoutError):
    """Waited longer than the client's ``queue_timeout`` for a connection."""

    desc = "Timed out waiting for a connection"


class BodyTimeoutError(RequestTimeoutError):
    """The request body made no progress for the server's ``body_timeout``."""

    desc = "Request body timeout"


class SendTimeoutError(NetworkError):
    """The peer read nothing of what we sent for ``send_timeout``."""

    desc = "Send timeout"
    server_status = (b"504", b"Gateway Timeout")


# -- the application misused the API -----------------------------------------


class ApplicationError(HttpError, ValueError):
    """The application is at fault. Raised at the call that would have put
    invalid bytes on the wire, or that came out of order (nothing has been
    sent for it); or, as ``ListenerError``, emitted when one of its
    listeners raised."""

    desc = "Application error"
    server_status = _500
    client_recoverable = True
    server_recoverable = True


class ListenerError(ApplicationError):
    """A listener of the exchange raised; ``__cause__`` is its exception.
    The exception is also reported through the loop's exception handler.
    An application error (the application's own code failed), emitted as
    ``error`` rather than raised; the connection is not used again."""

    desc = "An event listener raised an exception"
    server_status = _500
    client_recoverable = False
    server_recoverable = False


class UrlError(ApplicationError):
    desc = "Unsupported or invalid URI"
    server_status = _400


class LengthRequiredError(ApplicationError):
    desc = "Content-Length required"
    server_status = (b"411", b"Length Required")


class OutputError(ApplicationError):
    """What the application asked to send is wrong (Thor 0.17's name)."""

    desc = "Invalid HTTP output"


class OutputSyntaxError(OutputError):
    desc = "Invalid HTTP output syntax"


class OutputStateError(OutputError):
    desc = "Invalid HTTP output state"


class BadStatusError(OutputSyntaxError):
    desc = "Invalid status code or reason phrase"


class BadHeaderError(OutputSyntaxError):
    desc = "Invalid header field"


class BodyLengthError(OutputError):
    desc = "Body length does not match Content-Length"


class StateError(OutputStateError):
    desc = "Call out of order"


class InternalServerError(ListenerError):
    """The server's application raised while handling a request (an
    ApplicationError through ListenerError)."""

    desc = "The application failed while handling the request"
    client_recoverable = True  # as before ListenerError became an ApplicationError
