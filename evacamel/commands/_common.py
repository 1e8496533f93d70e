"""Moved to :mod:`evacamel.commands._args` (every command's argument types, in one place).

Kept only so that branches written before the move still import; new code imports
``evacamel.commands._args``. Delete once no branch imports this module.
"""

from evacamel.commands._args import (fraction, non_negative_float, non_negative_int,  # noqa: F401
                                     positive_float, positive_int)

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_float", "fraction"]
