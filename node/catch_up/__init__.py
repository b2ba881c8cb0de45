"""CatchUp: the public envelopes (actions, contexts) gossip lost, fetched from a peer."""
