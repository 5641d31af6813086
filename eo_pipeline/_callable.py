"""Modules named like their main function stay callable.

``eo_pipeline.load`` is the function :func:`eo_pipeline.load.load` until something runs
``import eo_pipeline.load``: Python then sets the *module* as the package attribute. Each such
module calls :func:`make_callable` last, so ``eo_pipeline.load(...)`` calls the function
whichever way it was imported, and ``from eo_pipeline.masks import clear`` still works.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["make_callable"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make module ``module_name`` call its same-named function when called."""
    sys.modules[module_name].__class__ = _CallableModule
