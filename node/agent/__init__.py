"""The character's agent: prompts, spotlighting, PII redaction, affinity, memory."""
