"""What ``roomverse`` exits with."""

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_FAILED = 1
"""The command failed at run time (no node answered, a visit did not complete, ...)."""
EXIT_USAGE = 2
"""Bad usage or bad config: nothing was tried."""
