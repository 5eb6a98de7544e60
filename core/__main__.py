"""``python -m core``: the device application's command line (:mod:`core.app.cli`)."""

from __future__ import annotations

import sys

from core.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
