"""``python -m evacamel <command>``: see :mod:`evacamel.cli`."""

import sys

from evacamel.cli import main

if __name__ == "__main__":
    sys.exit(main())
