"""What a node keeps on disk: the SQLite thread, the store (sequence, outbox, directory
snapshot, migrations), the data-directory lock, and the memory tables and rows."""
