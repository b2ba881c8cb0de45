"""Bytes between peers: length-prefixed frames, the envelope gate, inbound stream limits,
receive batches and the rejection log."""
