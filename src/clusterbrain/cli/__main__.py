"""``python -m clusterbrain.cli``: the ``clusterbrain`` command."""

from __future__ import annotations

from clusterbrain.cli import main

if __name__ == "__main__":
    main()
