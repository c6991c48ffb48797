"""The built-in scoring functions, one small file each."""

from __future__ import annotations

from gnnlm.kge.interactions.complex import ComplEx
from gnnlm.kge.interactions.conve import ConvE
from gnnlm.kge.interactions.distmult import DistMult
from gnnlm.kge.interactions.rotate import RotatE
from gnnlm.kge.interactions.transe import TransE
from gnnlm.kge.interactions.tucker import TuckER

__all__ = ["ComplEx", "ConvE", "DistMult", "RotatE", "TransE", "TuckER"]
