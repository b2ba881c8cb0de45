"""The firehose: a spectator node that streams the network's verified public events to
WebSocket viewers, and serves the viewer page.

Modules (import from them; this package imports nothing, so ``roomverse --help`` stays
fast): :mod:`.service` (``run_firehose``: node + hub + web + pruning), :mod:`.hub`
(viewers' queues, resume, slow viewers), :mod:`.fanout` (``/ws``: frames encoded once,
written to every viewer), :mod:`.outlet` (one viewer's socket and outbox), :mod:`.wire`
(wsproto handshake and frame bytes), :mod:`.front` (the one port: ``/ws`` upgrades to the
fan-out, the rest to hypercorn), :mod:`.app` (quart-trio app, serving), :mod:`.events`
(the JSON frames), :mod:`.limits` (filters, Origin, per-IP caps), :mod:`.cli`
(``roomverse firehose``).
"""
