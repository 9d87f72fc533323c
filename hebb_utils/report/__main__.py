"""`python -m hebb_utils.report --results results --readme README.md`: the README's tables from the JSON."""
import sys

from .tables import main

main(sys.argv[1:])
