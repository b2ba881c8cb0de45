"""The character's agent: persona and prompts, spotlighting of partner text, the voice that
speaks in visits, affinity and relations, autonomy."""
