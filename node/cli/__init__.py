"""The ``roomverse`` command: ``main`` and the parser, one module for each command group
(``run``, ``requests``, ``engine_key``), start-up checks and terminal rendering."""
