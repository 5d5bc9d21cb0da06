"""``python -m anyfan``: the command-line interface (see `anyfan.cli`)."""

from __future__ import annotations

import sys

from anyfan.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
