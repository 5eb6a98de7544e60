"""What the device remembers about its models across restarts: ``state_dir/models/state.json``.

Schema ``edgeloop.models/1``::

    {"schema": "edgeloop.models/1",
     "base": "<sha256 of pipeline.model.model when the first update came>",
     "name": "gate-detector", "current": "1.2.0", "previous": "1.1.0",
     "history": ["1.0.0", "1.1.0", "1.2.0"],
     "swap": {"from": "1.1.0", "to": "1.2.0", "time": "..."} | null,
     "watch": {"version": "1.2.0", "until": 1765180000.0, "starts": 1} | null,
     "ab": {"candidate": "1.3.0", "decision": "promoted" | "rejected" | ..., "time"} | null,
     "decisions": [{"time", "action", "version", "from", "result", "reason"}, ...]}

``current`` None: the configured model serves (``pipeline.model.model``). ``swap`` is written
before a swap and cleared once it is done, so a process killed in between is seen on the next
start. ``watch`` holds a new version on probation until ``until`` (wall-clock seconds):
``starts`` counts the starts since that version last stopped cleanly, so two crashes in a row
with it are seen on the next start. ``ab`` is the A/B test of ``models.ab.candidate``: under
way, or decided (a decided test is not started again). Written atomically
(a reader sees the old record or the new one).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.cache import atomic_write_bytes
from core.errors import ModelError
from core.models.manifest import utc_now

__all__ = ["DECISIONS_KEPT", "SCHEMA", "STATE_FILE", "ModelState"]

SCHEMA = "edgeloop.models/1"
STATE_FILE = "state.json"
DECISIONS_KEPT = 20
"""The latest decisions the record keeps (the history of what was tried and why)."""


@dataclass
class ModelState:
    """The record (see the module docstring); :meth:`load` and :meth:`save` it."""

    path: Path
    base: str | None = None
    name: str | None = None
    current: str | None = None
    previous: str | None = None
    history: list[str] = field(default_factory=list)
    swap: dict[str, Any] | None = None
    watch: dict[str, Any] | None = None
    ab: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> ModelState:
        """The record at ``path`` (an empty one where there is none); :class:`ModelError`
        naming the file when it is not one."""
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: the model state cannot be read ({exc})") from exc
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ModelError(f"{path}: not a model state ({SCHEMA})")
        names = {
            "base",
            "name",
            "current",
            "previous",
            "history",
            "swap",
            "watch",
            "ab",
            "decisions",
        }
        return cls(path, **{k: v for k, v in data.items() if k in names})

    def save(self) -> None:
        data = {"schema": SCHEMA, **asdict(self)}
        del data["path"]
        atomic_write_bytes(self.path, (json.dumps(data, indent=2) + "\n").encode())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    def decide(
        self,
        action: str,
        version: str | None,
        result: str,
        reason: str = "",
        *,
        previous: str | None = None,
    ) -> dict[str, Any]:
        """Record a decision (kept to the last :data:`DECISIONS_KEPT`), and return it."""
        decision = {
            "time": utc_now(),
            "action": action,
            "version": version,
            "from": previous,
            "result": result,
            "reason": reason,
        }
        self.decisions = [*self.decisions, decision][-DECISIONS_KEPT:]
        return decision

    def begin_swap(self, name: str, to: str) -> None:
        self.swap = {"name": name, "from": self.current, "to": to, "time": utc_now()}
        self.save()

    def finish_swap(self, name: str, to: str, watch_s: float) -> None:
        """``to`` serves; the one before becomes ``previous``; ``to`` is watched."""
        if self.current != to:
            self.previous = self.current
        self.name, self.current, self.swap = name, to, None
        self.history = [v for v in self.history if v != to] + [to]
        self.watch = {"version": to, "until": time.time() + watch_s, "starts": 1}
        self.save()

    def on_watch(self) -> bool:
        """Whether the current version is still on probation."""
        return self.watch is not None and time.time() < float(self.watch["until"])
