"""
gnet-examples' C{simple_protocol}, ported line by line: a length-prefixed
echo protocol (L{protocol}), its server (L{server}: counts its connections
in the handler and shuts the engine down when the count is back to 0) and
its load client (L{client}: plain sockets, one thread per connection, as the
Go client uses goroutines and C{net.Dial}).  Run them with::

    python -m gnetcompat.examples.simple_protocol.server --port 9000 --multicore=true
    python -m gnetcompat.examples.simple_protocol.client --network tcp \\
        --address 127.0.0.1:9000 --concurrency 100 --packet_size 1024 \\
        --packet_batch 20 --packet_count 1000

The server exits once the last client has gone.
"""
