"""The firehose: a spectator node that streams the network's verified public events to
WebSocket viewers, and serves the viewer page.

Modules (import from them; this package imports nothing, so ``roomverse --help`` stays
fast): :mod:`.service` (``run_firehose``: node + hub + web + pruning), :mod:`.hub`
(fan-out, resume, slow viewers), :mod:`.app` (quart-trio app, hypercorn serving),
:mod:`.events` (the JSON frames), :mod:`.limits` (filters, Origin, per-IP caps),
:mod:`.cli` (``roomverse firehose``).
"""
