"""``python -m node`` is the ``roomverse`` command."""

import sys

from node.cli import main

sys.exit(main())
