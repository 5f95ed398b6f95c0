"""Injected faults for the reliability tests: a callable that fails once, then works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def once(error: Callable[[], BaseException], original: Callable[..., Any]) -> Callable[..., Any]:
    """`original`, raising `error()` on its first call only."""
    fired = {"done": False}

    def patched(*args: Any, **kwargs: Any) -> Any:
        if not fired["done"]:
            fired["done"] = True
            raise error()
        return original(*args, **kwargs)

    return patched
