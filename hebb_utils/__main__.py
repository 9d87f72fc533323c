"""`python -m hebb_utils extract|train|map ...`: see hebb_utils/cli.py (and `--help`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
