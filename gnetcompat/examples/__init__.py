"""
Runnable gnetcompat examples, each a handler class plus a C{main()}:

  - L{gnetcompat.examples.echo}: TCP echo server (the README's ten-liner).
  - L{gnetcompat.examples.udpecho}: UDP echo server.
  - L{gnetcompat.examples.codec}: a length-prefixed codec server shaped like
    gnet's C{TestSimServer} (Peek/Discard decoding, Writev replies, Wake for
    the remainder).

Other modules here (WebSocket echo, proxy) come with their own docs.

Run one with C{python -m gnetcompat.examples.echo --port 9000 --multicore}.
"""
