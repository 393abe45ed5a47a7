"""``python -m lmrecsim`` runs the command line."""

from lmrecsim.cli import console_main

console_main()
