"""``python -m lmrecsim`` runs the command line."""

import sys

from lmrecsim.cli import main

sys.exit(main())
