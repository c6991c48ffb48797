"""``gnnlm generate RUN_DIR --text ... [--entities ...]`` on a tiny decoder run."""

from __future__ import annotations

import json

import pytest

from gnnlm.cli import main
from gnnlm.train import Trainer
from tests.tasks.test_generative_qa import tiny_config
from tests.tasks.test_metaqa import ACTORS, DIRECTORS, MOVIES, YEARS, movie_kb  # noqa: F401

NAMES = set(MOVIES) | set(ACTORS) | set(DIRECTORS) | set(YEARS)


@pytest.fixture(scope="module")
def run_dir(movie_kb, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("gen") / "run"
    config = tiny_config(movie_kb, **{"model.style": "prompt", "training.epochs": 1,
                                      "evaluation.frequency": 0})  # fmt: skip
    Trainer(config, run_dir=folder, quiet=True).fit()
    return folder


def test_generate_prints_kb_names(run_dir, capsys):
    code = main(["generate", str(run_dir), "--text", "who directed [Solaris]", "--text",
                 "when was Vertigo released", "--entities", "Vertigo", "--json"])  # fmt: skip
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["topic"] for x in lines] == ["Solaris", "Vertigo"]
    assert all(x["finished"] and x["names"] and set(x["names"]) <= NAMES for x in lines)
    assert main(["generate", str(run_dir), "--text", "who directed [Solaris]"]) == 0
    assert capsys.readouterr().out.strip().lower() in {n.lower() for n in NAMES}


def test_an_unknown_entity_is_a_one_line_error(run_dir, capsys):
    assert main(["generate", str(run_dir), "--text", "who is Nobody", "--entities", "Nobody"]) == 2
    assert "unknown entity 'Nobody'" in capsys.readouterr().err
