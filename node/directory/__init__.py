"""The node's replica of the online directory: leases and gossip, listing, sync over
``/roomverse/sync/1.0.0``, anti-entropy rounds and the character's name card."""
