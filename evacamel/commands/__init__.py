"""One module per CLI command; see :mod:`evacamel.cli` for the protocol."""
