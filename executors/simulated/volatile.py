"""In-memory venue state that a failed command must not leave behind (see `ledger.recorder.unit`)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar


class Volatile:
    """A simulated venue's attributes named in `volatile` are saved before every command and put back
    if the command fails (shallow copies: the items in them are never changed in place)."""

    volatile: ClassVar[tuple[str, ...]] = ()

    def save_state(self) -> dict[str, Any]:
        return {name: copy.copy(getattr(self, name)) for name in self.volatile}

    def restore_state(self, saved: dict[str, Any]) -> None:
        for name, value in saved.items():
            setattr(self, name, value)
