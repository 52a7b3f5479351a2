# -*- test-case-name: tests.test_gnet_examples -*-
"""
gnet-examples' C{http}, ported line by line: a tiny HTTP/1.1 server that
answers every request with C{Hello World!}, pipelined requests included
(each read may carry several requests; all their responses go out in one
write).  Run it with::

    python -m gnetcompat.examples.httpserver --port 8080 --multicore=true

and try C{curl http://127.0.0.1:8080/}.  Flags as in Go: C{--port} (8080),
C{--multicore} (true: event loops sharing this one handler, whose one
parser serves every connection, as in Go).  As in Go, C{main} prepares the
response body in the module global C{res}; that is fine in one process (the
modes this example offers), and it is the state a process worker would not
have (see the README's Multicore section).

The request parser is the Go one's, made safe: a request whose head is
longer than L{MAX_HEAD} bytes, or whose body is longer than L{MAX_BODY}, is
refused (C{Internal Server Error}, then close), as are malformed request
lines; C{Content-Length} is matched without regard to case.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import gnetcompat as gnet
from gnetcompat.examples.echo import announce, exampleParser

__all__ = ["MAX_BODY", "MAX_HEAD", "HttpParser", "HttpServer", "MalformedRequest", "main"]

log = logging.getLogger("http")

#: the response body; C{main} sets it, as Go's C{main} does
res = ""

#: the longest request line plus headers, in bytes
MAX_HEAD = 8192
#: the longest request body, in bytes
MAX_BODY = 1 << 20

errMsg = "Internal Server Error"
errMsgBytes = errMsg.encode()


class MalformedRequest(ValueError):  # noqa: N818  (what it is, as Go says "malformed request")
    """A request this server refuses (bad request line, too long)."""


class Request:
    """Go's C{request}: the parts of the last request parsed."""

    __slots__ = ("proto", "method", "path", "query", "head", "body")

    def __init__(self) -> None:
        self.proto = self.method = self.path = self.query = self.head = self.body = b""


def parseReq(data: bytes, start: int, req: Request) -> int:
    """
    Parse the request starting at C{data[start:]} into C{req}; return the
    offset just after it, or -1 when it is not all there yet.

    @raise MalformedRequest: a bad request line, or one over the limits.
    """
    eol = data.find(b"\r\n", start)
    if eol < 0:
        if len(data) - start > MAX_HEAD:
            raise MalformedRequest("request line too long")
        return -1
    parts = data[start:eol].split(b" ")
    if len(parts) != 3 or not all(parts):
        raise MalformedRequest("malformed request")
    end = data.find(b"\r\n\r\n", eol)
    if end < 0 or end + 4 - start > MAX_HEAD:
        if len(data) - start > MAX_HEAD:
            raise MalformedRequest("request head too long")
        return -1
    head = data[eol + 2 : end + 2]
    clen = 0
    for line in head.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            try:
                clen = int(value.strip())
            except ValueError:
                raise MalformedRequest("bad Content-Length") from None
            if not 0 <= clen <= MAX_BODY:
                raise MalformedRequest("body too long")
    bodyStart = end + 4
    if len(data) - bodyStart < clen:
        return -1
    req.method, target, req.proto = parts
    req.path, _, req.query = target.partition(b"?")
    req.head = head
    req.body = data[bodyStart : bodyStart + clen]
    return bodyStart + clen


def appendResp(b: bytearray, status: str, head: str, body: str) -> None:
    """Append a response: C{status} such as C{200 OK}, C{head} lines, C{body}."""
    b += b"HTTP/1.1 " + status.encode() + b"\r\n"
    b += b"Server: gnet\r\n"
    b += time.strftime("Date: %a, %d %b %Y %H:%M:%S GMT\r\n", time.gmtime()).encode()
    data = body.encode()
    if data:
        b += b"Content-Length: %d\r\n" % len(data)
    b += head.encode() + b"\r\n" + data


def appendHandle(b: bytearray, res: str) -> None:
    """Handle a request: append the C{200 OK} response carrying C{res}."""
    appendResp(b, "200 OK", "", res)


class HttpParser:
    """Go's C{httpParser}: the last request, and the responses of one read."""

    def __init__(self) -> None:
        self.req = Request()
        self.rsp = bytearray()

    def Parse(self, c: Any) -> int:
        """
        Answer every whole request in C{c}'s inbound buffer into C{rsp}
        (consuming them); return how many bytes are left for later.

        @raise MalformedRequest: the buffer does not hold a request (all of
            it is then discarded).
        """
        buf = c.Peek(-1)
        self.rsp.clear()
        done = 0
        try:
            while True:
                end = parseReq(buf, done, self.req)
                if end < 0:
                    return len(buf) - done
                appendHandle(self.rsp, res)
                done = end
        except MalformedRequest:
            done = len(buf)
            raise
        finally:
            if done:
                c.Discard(done)


class HttpServer(gnet.BuiltinEventEngine):
    """Go's C{httpServer}: one parser for every connection (callbacks never overlap)."""

    def __init__(self, addr: str, multicore: bool) -> None:
        self.addr = addr
        self.multicore = multicore
        self.eng: Any = None
        self.parser = HttpParser()

    def OnBoot(self, eng: Any) -> gnet.Action:
        """Keep the engine; say where it listens (Go's text)."""
        self.eng = eng
        announce(log, self.addr, self.multicore)
        return gnet.None_

    def OnTraffic(self, c: Any) -> gnet.Action:
        """Answer the whole requests; a malformed one gets the error text and a close."""
        try:
            self.parser.Parse(c)
        except MalformedRequest:
            c.Write(errMsgBytes)
            return gnet.Close
        if self.parser.rsp:
            c.Write(self.parser.rsp)
        return gnet.None_


def main(argv: Sequence[str] | None = None) -> None:
    """Go's C{main}: C{--port} (8080), C{--multicore} (true)."""
    global res
    parser = exampleParser("gnet-examples http, ported to gnetcompat", multicore=True)
    parser.set_defaults(port=8080)
    args = parser.parse_args(argv)
    res = "Hello World!\r\n"
    http = HttpServer(f"tcp://:{args.port}", args.multicore)
    gnet.Run(http, http.addr, gnet.WithMulticore(args.multicore))


if __name__ == "__main__":
    main()
