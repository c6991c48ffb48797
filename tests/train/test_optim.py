"""The optimizers ``training.optimizer`` names (gnnlm.train.optim)."""

from __future__ import annotations


def test_optimizer_names_do_not_depend_on_what_was_imported_before():
    """An ``Optimizer`` subclass defined elsewhere (accelerate defines one when transformers loads)
    never joins the names ``training.optimizer`` accepts and lists."""
    import torch

    from gnnlm.train.optim import optimizer_resolver

    class SomeLibraryOptimizer(torch.optim.SGD):  # noqa: F841 (defining it is the point)
        pass

    optimizer_resolver.cache_clear()
    names = set(optimizer_resolver().lookup_dict)
    assert "somelibraryoptimizer" not in names
    assert {"adam", "adamw", "sgd", "sparseadam"} <= names
