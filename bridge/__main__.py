import sys

from bridge.cli import main

sys.exit(main(sys.argv[1:]))
