"""The HTTP bridge (``roomverse bridge``): legacy HTTP participants and libp2p characters
as one network (DESIGN §9). Imports only ``node``'s public API, ``keys`` and
``registry_crdt``."""
