"""Benchmarks: each module compares two ways of doing one job in one run and prints
the ratio. Same protocol as :mod:`evacamel.commands` (``HELP``, ``add_arguments``,
``main``). Shared helpers live in :mod:`evacamel.bench._timing`.
"""
