"""Small helpers shared by the pipeline stages (no stage-specific code here)."""

from __future__ import annotations

from gnnlm.utils.progress import LineProgress, progress

__all__ = ["LineProgress", "progress"]
