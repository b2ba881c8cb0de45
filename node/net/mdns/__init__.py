"""mDNS discovery on the LAN: the zeroconf adapter, DNS-SD records, the zeroconf-thread
listener and its inbox."""
