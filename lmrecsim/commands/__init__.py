"""Subcommands of the lmrecsim command line (one module each)."""
