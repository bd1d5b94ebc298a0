"""``python -m ecs`` and the ``ecs`` console script."""

import sys

from ecs.cli import run_cli


def main() -> None:
    """Run the ``ecs`` command line and exit with its status."""
    sys.exit(run_cli(sys.argv[1:]))


if __name__ == "__main__":
    main()
