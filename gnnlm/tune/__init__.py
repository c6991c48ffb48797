"""Hyperparameter search (``gnnlm tune``): a search space file (:mod:`gnnlm.tune.space`) and an Optuna
study whose trials are training runs of the one engine (:mod:`gnnlm.tune.search`).

Optuna (the ``tune`` extra) is imported only when a search starts.
"""

from __future__ import annotations

from gnnlm.tune.search import TuneResult, format_table, tune
from gnnlm.tune.space import Param, SearchSpace

__all__ = ["Param", "SearchSpace", "TuneResult", "format_table", "tune"]
