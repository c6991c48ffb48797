"""Plots of runs and models (matplotlib, the optional ``bench`` extra, is imported only when drawing).

* :mod:`gnnlm.viz.gates`: injection gates over training (:func:`plot_gate_history`) and the adaptive
  gate of every token at every fused layer for one example (:func:`token_gate_matrix`,
  :func:`plot_token_gates`).
* :mod:`gnnlm.viz.curves`: training curves of a run or of a comparison's runs together, and link
  prediction's rank histogram (:func:`plot_runs`, :func:`read_history`, :func:`rank_histogram`;
  ``gnnlm plot``).
"""

from __future__ import annotations

from gnnlm.viz.curves import plot_runs, rank_histogram, read_history
from gnnlm.viz.gates import gate_series, plot_gate_history, plot_token_gates, token_gate_matrix

__all__ = [
    "gate_series",
    "plot_gate_history",
    "plot_runs",
    "plot_token_gates",
    "rank_histogram",
    "read_history",
    "token_gate_matrix",
]
