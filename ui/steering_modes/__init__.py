"""The Steering page's modes beyond addition, one module each: a mode is a label and one function that draws its
section (layout, one run through the run cache, the result), called only when the user chose that mode.

To add a mode, write ``ui/steering_modes/<name>.py`` with a ``MODE = Mode(...)`` and list it in :data:`MODES`.
"""

from __future__ import annotations

from ui.steering_modes.ablation import MODE as ABLATION
from ui.steering_modes.common import Mode
from ui.steering_modes.compose import MODE as COMPOSE
from ui.steering_modes.conditional import MODE as CONDITIONAL
from ui.steering_modes.record import MODE as RECORD
from ui.steering_modes.rotate import MODE as ROTATE
from ui.steering_modes.search import MODE as SEARCH

MODES: tuple[Mode, ...] = (CONDITIONAL, ABLATION, ROTATE, SEARCH, COMPOSE, RECORD)

__all__ = ["MODES", "Mode"]
