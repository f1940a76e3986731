"""The HttpError family: every way an HTTP exchange can fail.

Three kinds, kept apart (as h11 keeps RemoteProtocolError apart from
LocalProtocolError):

* the peer broke the protocol (reported by thor.http.parser through
  ``on_error``, and by the client and server as their ``error`` event);
* the network or the clock gave up (connect errors, timeouts, closes);
* the application misused the API: ``ApplicationError`` subclasses, also
  ``ValueError`` subclasses, raised at the offending call before anything
  is sent.

Each class says what a server answers when it meets that error
(``server_status``, a ``(code, phrase)`` tuple of bytes, or None when the
error can only happen on the client side), and whether the connection can
be used again afterwards (``server_recoverable``, ``client_recoverable``).

Final names and server_status:

  Peer errors (parser)
    StartLineError             400  malformed request or status line, bare
                                    CR / LF (strict) or CTL in it, bad
                                    request-target form, an absolute-form
                                    authority that is invalid (userinfo or
                                    empty host in http/https), a CONNECT
                                    port that is not 1-65535
    HttpVersionError           505  HTTP-version well formed but not 1.0 or 1.1
    UriTooLongError            414  request line longer than the limit
    StartLineTooLongError      None status line longer than the limit (client)
    HeaderSpaceError           400  whitespace between field name and colon
    TopLineSpaceError          400  whitespace-led line after the start line
    BadFieldError              400  bad field name / value bytes, no colon,
                                    bare CR / LF (strict) in a field line
    FieldSectionTooLargeError  431  header section longer than the limit
    TooManyFieldsError         431  more header (or trailer) fields than the limit
    HostRequiredError          400  HTTP/1.1 request without Host, several
                                    Host fields, or a Host value that is not
                                    uri-host [":" port]
    MalformedCLError           400  Content-Length not 1*DIGIT (max 18 digits),
                                    or not 0 on a CONNECT request
    DuplicateCLError           400  differing Content-Length values
    CLTEError                  400  request with Transfer-Encoding and
                                    Content-Length
    BadTransferCodeError       400  Transfer-Encoding that makes framing
                                    unreliable: chunked not last, twice, with
                                    parameters, empty or bad coding names,
                                    or any Transfer-Encoding in HTTP/1.0 or
                                    on a CONNECT request
    TransferCodeError          501  codings before chunked (we decode none)
    ChunkError                 400  bad chunk-size line or chunk-data end
    ChunkExtTooLargeError      400  chunk extensions longer than the limit
    TrailerTooLargeError       431  trailer section longer than the limit
    IncompleteHeadError        400  input ended inside a start line or header
                                    section
    IncompleteBodyError        400  input ended inside a body
    ExtraDataError             None bytes after a response when none is expected
    TooManyMsgsError           400  for owners that cap queued pipelined
                                    requests (the parser itself never recurses)

  Network and time
    ConnectError               502  could not connect to the origin (client)
    ConnectTimeoutError        504  ConnectError: connect timed out
    ReadTimeoutError           504  response stalled (client)
    RequestTimeoutError        408  request head too slow (server)
    ConnectionClosedError      None peer closed while an exchange was live

  Application misuse (also ValueError; raised at the call)
    ApplicationError           500
    UrlError                   400  unsupported or invalid URL (client)
    LengthRequiredError        411  body without Content-Length where needed
    BadStatusError             500  status code not 100-599, or bad phrase
    BadHeaderError             500  field name not a token, CR/LF/NUL/CTL in
                                    a value, non-Latin-1 text
    BodyLengthError            500  body longer / shorter than Content-Length
    StateError                 500  call out of order
    InternalServerError        500  the application raised while handling
"""

__all__ = [
    "HttpError",
    # peer
    "StartLineError", "HttpVersionError", "UriTooLongError", "StartLineTooLongError",
    "HeaderSpaceError", "TopLineSpaceError", "BadFieldError",
    "FieldSectionTooLargeError", "TooManyFieldsError", "HostRequiredError",
    "MalformedCLError", "DuplicateCLError", "CLTEError", "BadTransferCodeError",
    "TransferCodeError", "ChunkError", "ChunkExtTooLargeError", "TrailerTooLargeError",
    "IncompleteHeadError", "IncompleteBodyError", "ExtraDataError", "TooManyMsgsError",
    # network / time
    "ConnectError", "ConnectTimeoutError", "ReadTimeoutError", "RequestTimeoutError",
    "ConnectionClosedError", "DnsError", "AccessError", "QueueTimeoutError",
    "BodyTimeoutError", "SendTimeoutError", "ListenerError",
    # application
    "ApplicationError", "UrlError", "LengthRequiredError", "BadStatusError",
    "BadHeaderError", "BodyLengthError", "StateError", "InternalServerError",
]

_400 = (b"400", b"Bad Request")
_500 = (b"500", b"Internal Server Error")
_431 = (b"431", b"Request Header Fields Too Large")


class HttpError(Exception):
    """Base class. ``detail`` (str or None) says what exactly went wrong."""

    desc = "Unknown Error"
    server_status = None
    server_recoverable = False
    client_recoverable = False

    def __init__(self, detail=None):
        if detail is None:
            Exception.__init__(self)
        else:
            Exception.__init__(self, detail)
        self.detail = detail

    def __str__(self):
        if self.detail is None:
            return self.desc
        return "%s (%s)" % (self.desc, self.detail)

    def __repr__(self):
        if self.detail is None:
            return "%s()" % type(self).__name__
        return "%s(%r)" % (type(self).__name__, self.detail)


# -- the peer broke the protocol ---------------------------------------------


class StartLineError(HttpError):
    desc = "Malformed start line"
    server_status = _400


class HttpVersionError(HttpError):
    desc = "Unsupported HTTP version"
    server_status = (b"505", b"HTTP Version Not Supported")


class UriTooLongError(HttpError):
    desc = "Request line too long"
    server_status = (b"414", b"URI Too Long")


class StartLineTooLongError(HttpError):
    desc = "Status line too long"


class HeaderSpaceError(HttpError):
    desc = "Whitespace between a field name and its colon"
    server_status = _400


class TopLineSpaceError(HttpError):
    desc = "Whitespace after the start line, before the first field"
    server_status = _400


class BadFieldError(HttpError):
    desc = "Malformed field line"
    server_status = _400


class FieldSectionTooLargeError(HttpError):
    desc = "Header section too large"
    server_status = _431


class TooManyFieldsError(HttpError):
    desc = "Too many fields"
    server_status = _431


class HostRequiredError(HttpError):
    desc = "Missing, repeated or invalid Host field"
    server_status = _400


class MalformedCLError(HttpError):
    desc = "Malformed Content-Length"
    server_status = _400


class DuplicateCLError(HttpError):
    desc = "Conflicting Content-Length values"
    server_status = _400


class CLTEError(HttpError):
    desc = "Both Transfer-Encoding and Content-Length in a request"
    server_status = _400


class BadTransferCodeError(HttpError):
    desc = "Transfer-Encoding makes the message framing unreliable"
    server_status = _400


class TransferCodeError(HttpError):
    desc = "Unsupported transfer coding"
    server_status = (b"501", b"Not Implemented")


class ChunkError(HttpError):
    desc = "Chunked encoding error"
    server_status = _400


class ChunkExtTooLargeError(HttpError):
    desc = "Chunk extensions too large"
    server_status = _400


class TrailerTooLargeError(HttpError):
    desc = "Trailer section too large"
    server_status = _431


class IncompleteHeadError(HttpError):
    desc = "Input ended inside a message head"
    server_status = _400


class IncompleteBodyError(HttpError):
    desc = "Input ended inside a message body"
    server_status = _400


class ExtraDataError(HttpError):
    desc = "Data arrived after the message was supposed to end"


class TooManyMsgsError(HttpError):
    desc = "Too many pipelined messages"
    server_status = _400


# -- the network or the clock gave up ----------------------------------------


class ConnectError(HttpError):
    desc = "Connection error"
    server_status = (b"502", b"Bad Gateway")


class ConnectTimeoutError(ConnectError):
    desc = "Connect timeout"
    server_status = (b"504", b"Gateway Timeout")


class ReadTimeoutError(HttpError):
    desc = "Read timeout"
    server_status = (b"504", b"Gateway Timeout")


class RequestTimeoutError(HttpError):
    desc = "Request timeout"
    server_status = (b"408", b"Request Timeout")


class ConnectionClosedError(HttpError):
    desc = "Connection closed"


class DnsError(ConnectError):
    desc = "DNS Error"


class AccessError(ConnectError):
    """The client's ``check_ip`` refused every address the name resolved to."""

    desc = "Access Error"
    server_status = (b"403", b"Forbidden")


class QueueTimeoutError(ConnectTimeoutError):
    """Waited longer than the client's ``queue_timeout`` for a connection."""

    desc = "Timed out waiting for a connection"


class BodyTimeoutError(RequestTimeoutError):
    """The request body made no progress for the server's ``body_timeout``."""

    desc = "Request body timeout"


class SendTimeoutError(HttpError):
    """The peer read nothing of what we sent for ``send_timeout``."""

    desc = "Send timeout"
    server_status = (b"504", b"Gateway Timeout")


class ListenerError(HttpError):
    """A listener of the exchange raised; ``__cause__`` is its exception.
    The exception is also reported through the loop's exception handler."""

    desc = "An event listener raised an exception"
    server_status = _500


# -- the application misused the API -----------------------------------------


class ApplicationError(HttpError, ValueError):
    """Raised at the call that would have put invalid bytes on the wire, or
    that came out of order; nothing has been sent for it."""

    desc = "Application error"
    server_status = _500
    client_recoverable = True
    server_recoverable = True


class UrlError(ApplicationError):
    desc = "Unsupported or invalid URL"
    server_status = _400


class LengthRequiredError(ApplicationError):
    desc = "Content-Length required"
    server_status = (b"411", b"Length Required")


class BadStatusError(ApplicationError):
    desc = "Invalid status code or reason phrase"


class BadHeaderError(ApplicationError):
    desc = "Invalid header field"


class BodyLengthError(ApplicationError):
    desc = "Body length does not match Content-Length"


class StateError(ApplicationError):
    desc = "Call out of order"


class InternalServerError(ApplicationError, ListenerError):
    desc = "The application failed while handling the request"
    server_recoverable = False
