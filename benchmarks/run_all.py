"""Run every speed figure of issue 7 (same as ``lmrecsim bench``).

Usage: ``python benchmarks/run_all.py [--quick] [--out FILE.json]``.
"""

from __future__ import annotations

import sys

from lmrecsim.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
