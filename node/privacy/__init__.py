"""PII redaction for stored text, events and logs: the finders, the checks that confirm a
candidate, and log-line scrubbing."""
