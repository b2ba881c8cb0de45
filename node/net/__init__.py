"""Reaching peers: dialing and reconnect, liveness, gossip health, LAN addresses, mDNS."""
