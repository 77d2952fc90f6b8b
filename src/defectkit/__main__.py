"""``python -m defectkit`` is the same as the ``defectkit`` console script."""

import sys

from defectkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
