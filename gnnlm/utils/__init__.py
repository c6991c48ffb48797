"""Small helpers shared by the pipeline stages (no stage-specific code here).

* :mod:`gnnlm.utils.progress`: a ``tqdm`` bar in a terminal, plain lines in a log.
"""

from __future__ import annotations
