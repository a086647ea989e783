"""Canvas dynamics: intermediate decodes, commit steps, revision metrics, the trajectory plot."""

import numpy as np
import pytest

from srilab.errors import SrilabError
from srilab.report.plots import trajectory_plot
from srilab.sri.dynamics import commit_steps, intermediate_texts, revision_metrics

M = 9


def test_intermediate_texts_and_commit_steps():
    canvas = np.array([[M, 5, M], [1, 5, M], [1, 5, 2]])
    texts = intermediate_texts(canvas, lambda ids: " ".join(map(str, ids)), M)
    assert texts == ["5", "1 5", "1 5 2"]
    assert intermediate_texts(canvas, lambda ids: str(ids), M, steps=[0]) == ["[5]"]
    assert commit_steps(canvas, M).tolist() == [1, 0, 2]
    assert commit_steps(np.array([[M, 3]]), M).tolist() == [-1, 0]
    with pytest.raises(SrilabError):
        intermediate_texts(np.zeros(3), str, M)


def test_revision_metrics():
    inter = np.array([
        [0, 1, 1, 1],  # harmful from step 1 on, stays harmful
        [0, 1, 0, 0],  # harmful, then revised away
        [0, 0, 0, 0],  # never harmful
        [1, 1, 0, 1],  # revised, then harmful again
    ], dtype=bool)
    final = np.array([True, False, False, True])
    m = revision_metrics(inter, final)
    assert m["n"] == 4 and m["n_harmful_intermediate"] == 3
    assert m["harmful_intermediate_rate"] == 0.75
    assert m["harmful_revision_rate"] == pytest.approx(2 / 3)
    assert m["final_recovery_rate"] == pytest.approx(1 / 3)
    clean = revision_metrics(np.zeros((2, 3), dtype=bool), np.zeros(2, dtype=bool))
    assert clean["harmful_intermediate_rate"] == 0.0 and "harmful_revision_rate" not in clean
    with pytest.raises(SrilabError):
        revision_metrics(np.zeros((2, 3)), np.zeros(3))


def test_trajectory_plot_is_a_png(tmp_path):
    canvas = np.array([[M, M, M], [1, M, M], [1, 5, M], [1, 5, 2]])
    png = trajectory_plot(canvas, np.array([0.2, 0.5, 0.7, 0.9]), M, path=tmp_path / "t.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "t.png").read_bytes() == png
