"""``python -m certify``: the same as the ``certify`` command."""

from __future__ import annotations

from certify.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
