"""
Runnable gnetcompat examples, each a handler class plus a C{main()}, run
with C{python -m gnetcompat.examples.NAME}.  The ports of gnet-examples take
the Go programs' flags (L{goflag}: C{--port 9000}, C{--multicore=true},
C{--tick 100ms}) and mean what the Go programs mean in every mode:

  - L{gnetcompat.examples.echo}: gnet-examples' echo_tcp, and echo_uds with
    C{--sock PATH}.
  - L{gnetcompat.examples.udpecho}: echo_udp.
  - L{gnetcompat.examples.push}: push (C{OnTick} writes to a map of
    connections), and C{--workers N}, its variant written for process
    workers (engine-wide C{Conns()} and C{AsyncWrite} by handle).
  - L{gnetcompat.examples.chat}: a line chat on the engine-wide
    C{Broadcast}, in every mode, process workers included.
  - L{gnetcompat.examples.simple_protocol}: simple_protocol's server and
    client.
  - L{gnetcompat.examples.httpserver}: http.
  - L{gnetcompat.examples.custom_codec}: custom_codec's server and gnet
    client, on gnet v2's model.
  - L{gnetcompat.examples.wsecho}: the websocket server (the seed).
  - L{gnetcompat.examples.codec}: a length-prefixed codec server shaped like
    gnet's C{TestSimServer} (Peek/Discard decoding, Writev replies, Wake for
    the remainder).
  - L{gnetcompat.examples.proxy}: a stream proxy (gnet's
    C{TestStreamProxyServer}).

For example C{python -m gnetcompat.examples.push --port 9000 --tick 1s
--multicore=true}.
"""
