"""``python -m keys``: the same key commands as ``roomverse keys``."""

import sys

from keys.cli import main

sys.exit(main())
