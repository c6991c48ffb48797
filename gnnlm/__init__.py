"""gnnlm: knowledge-graph-enhanced language models on PyTorch Geometric and HuggingFace transformers.

The package reads like the pipeline::

    data -> kge (scoring functions) -> encoders (GNNs) -> fusion (GNN x transformer) -> train -> eval -> tasks
                                        lm (the one door to `transformers`)                           cli

Importing ``gnnlm`` is cheap and has no side effects; sub-packages are imported on use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
