"""Visits: the /roomverse/visit/1.0.0 protocol, its state machine and the service that runs it."""
