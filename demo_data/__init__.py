"""Demo data for `make run`: each domain's module here has `seed(session)`.

Seeding is idempotent (it runs at every start of the embedded mode).
"""
from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy.orm import Session


def seed_all(session: Session) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        seed = getattr(module, "seed", None)
        if seed is not None:
            seed(session)
