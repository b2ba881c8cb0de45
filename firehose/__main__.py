"""``python -m firehose`` is ``roomverse firehose``."""

import sys

from firehose.cli import main

sys.exit(main())
