"""The ``roomverse`` command: the parser, ``main``, start-up checks and terminal rendering."""
