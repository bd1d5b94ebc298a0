"""``python -m statusbridge`` and the ``statusbridge`` console script."""

from __future__ import annotations

import sys

from statusbridge.cli import main

if __name__ == "__main__":
    sys.exit(main())
