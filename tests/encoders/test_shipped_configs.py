"""The shipped R-GCN / CompGCN configs reach their measured test MRR (slow: real-data training)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: filtered test MRR measured with each config (seed 0, quoted in the config's header) minus a margin for
#: seeds and thread counts. Plain DistMult (the same config without the encoder) reaches 0.759 on UMLS and
#: 0.511 on Kinship. R-GCN and Kinship CompGCN bounds sit above those; UMLS CompGCN varies with the seed
#: around plain DistMult (seeds 0-3 at 1 thread: 0.758-0.786), so its bound only catches a broken layer.
#: Kinship R-GCN spans 0.560-0.596 over seeds 12-27 (1 thread, either dropout mask), hence 0.55.
BOUNDS = {
    ("umls", "rgcn"): 0.80,  # measured 0.818-0.826
    ("umls", "compgcn"): 0.74,  # measured 0.763-0.791
    ("kinship", "rgcn"): 0.55,  # measured 0.562-0.582 (seed 0)
    ("kinship", "compgcn"): 0.52,  # measured 0.534-0.553
}


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "model"), sorted(BOUNDS))
def test_shipped_encoder_configs_keep_their_mrr(dataset, model, encoder_cache, monkeypatch):
    from tests.encoders.conftest import REAL_DATA

    if not REAL_DATA or not Path(REAL_DATA).is_dir():
        pytest.skip("GNNLM_DATA_DIR is not set")
    from gnnlm.train import TrainConfig, train

    config = TrainConfig.load(ROOT / "configs" / dataset / f"{model}.yaml")
    mrr = train(config, quiet=True).metrics["test"]["mrr"]
    print(f"{dataset} {model}: test MRR {mrr:.4f}")
    assert mrr > BOUNDS[dataset, model], (dataset, model, mrr)
