"""``python -m node`` is the ``roomverse`` command."""

import sys

from node.cli.main import main

sys.exit(main())
