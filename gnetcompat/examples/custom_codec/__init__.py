"""
gnet-examples' C{custom_codec}, ported to gnet v2's model: a protocol with
an 8-byte header (version, action type, data length; L{protocol}), a server
that echoes every frame (L{server}) and a gnet client that sends C{hello}
frames with C{AsyncWrite} and waits for the echoes (L{client}).  The Go
original is written for gnet v1, whose C{WithCodec} decoded frames before
C{React}; gnet v2 has no codec option, so the handlers decode in
C{OnTraffic} with C{Peek}/C{Discard} and encode before writing.  Run::

    python -m gnetcompat.examples.custom_codec.server --port 9000 --multicore=true
    python -m gnetcompat.examples.custom_codec.client --port 9000 --count 10
"""
