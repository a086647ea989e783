"""The protocol's roles (srilab.study.protocol): every phrasing of a task takes one role, so the threshold's
calibration rows are never near-copies of the rows that built the centre or fitted the detector."""

from __future__ import annotations

import itertools

import pytest

from srilab.errors import SrilabError
from srilab.study.protocol import FIT_ROLES, Protocol, ProtocolItem, assign

SHARES = {"centre": 0.2, "guard_fit": 0.35, "calibration": 0.45, "eval_seen_topics": 0.0}


def _tasks_by_role(p: Protocol) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key, unit in p.units.items():
        out.setdefault(p.roles[key], set()).add(unit)
    return out


def _benign(n_tasks: int, phrasings: int, dataset: str, groups: int = 8) -> list[ProtocolItem]:
    return [ProtocolItem(dataset, f"{dataset}-{t}-{k}", f"g{t % groups}", f"task{t}")
            for t in range(n_tasks) for k in range(phrasings)]


@pytest.mark.parametrize("seed", range(5))
def test_phrasings_of_one_task_share_a_fitting_role(seed):
    benign = {"train": _benign(60, 2, "train"), "heldout": _benign(60, 1, "heldout")}
    p = assign(seed, benign, {}, {}, shares=SHARES | {"eval_seen_topics": 0.3},
               dataset_roles={"train": list(FIT_ROLES), "heldout": ["eval_seen_topics"]},
               unseen_share=0.25, centre_dataset=None, harmful_centre_share=0.25)
    by_role = _tasks_by_role(p)
    for a, b in itertools.combinations(FIT_ROLES, 2):
        assert not by_role.get(a, set()) & by_role.get(b, set()), (a, b)
    assert by_role["calibration"] and by_role["guard_fit"] and by_role["centre"]
    # the held-out phrasings of fitted tasks are evaluated on seen topics, as the protocol intends
    assert by_role["eval_seen_topics"] & (by_role["guard_fit"] | by_role["calibration"])
    assert p.to_dict()["tasks"]["train/train-0-0"] == "task0"


def test_a_task_fitted_in_one_dataset_keeps_its_role_in_another():
    """Two datasets that may both fit: a task keeps the role the first gave it; where the second cannot give
    that role, its item is evaluated on seen topics, or left out (never generated) when that is not allowed."""
    benign = {"a": _benign(40, 1, "a"), "b": _benign(40, 1, "b"), "c": _benign(40, 1, "c")}
    p = assign(3, benign, {}, {}, shares=SHARES | {"eval_seen_topics": 0.2},
               dataset_roles={"a": list(FIT_ROLES), "b": ["calibration", "eval_seen_topics"], "c": ["calibration"]},
               unseen_share=0.0, centre_dataset=None, harmful_centre_share=0.25)
    for t in range(40):
        ra, rb, rc = (p.roles[(d, f"{d}-{t}-0")] for d in "abc")
        if ra == "calibration":
            assert rb == rc == "calibration"
        else:
            assert rb == "eval_seen_topics" and rc == "excluded"
    p.check()


def test_check_refuses_a_task_split_across_fitting_roles():
    p = Protocol(seed=0, roles={("d", "1"): "guard_fit", ("d", "2"): "calibration"},
                 groups={("d", "1"): "g", ("d", "2"): "g"}, seen_groups=("g",), unseen_groups=(),
                 units={("d", "1"): "t", ("d", "2"): "t"})
    with pytest.raises(SrilabError, match="task 't' is in both"):
        p.check()


def test_the_demo_protocol_keeps_calibration_tasks_apart(tmp_path):
    """The shipped demo config on the toy world: no calibration task has a phrasing in the centre or fit."""
    from srilab.study.demo import demo_config
    from srilab.study.matrix import load_items, study_protocol

    cfg = demo_config(out=tmp_path / "out")
    p = study_protocol(cfg, {d.name: load_items(d, cfg) for d in cfg.datasets})
    by_role = _tasks_by_role(p)
    assert len(by_role["calibration"]) >= 20
    assert not by_role["calibration"] & (by_role["guard_fit"] | by_role["centre"])
    assert not by_role["guard_fit"] & by_role["centre"]


def test_the_power_study_attacks_at_least_150_distinct_tasks(tmp_path):
    """examples/toy-power.yaml on the shipped v3 pair: >= 150 distinct harmful tasks attacked, none of them in
    the harmful centre, whole topic groups apart."""
    from pathlib import Path

    from srilab.study.config import load_config
    from srilab.study.matrix import load_items, study_protocol

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "toy-power.yaml")
    assert cfg.toy_pair == "v3"
    items = {d.name: load_items(d, cfg) for d in cfg.datasets}
    p = study_protocol(cfg, items)
    task = {("harmful", it.id): it.meta["task"] for it in items["harmful"]}
    attacked = {task[k] for k, role in p.roles.items() if role == "attacked"}
    centre = {task[k] for k, role in p.roles.items() if role == "harmful_centre"}
    assert len(attacked) >= 150 and not attacked & centre, (len(attacked), len(centre))
    groups = {p.groups[k] for k, role in p.roles.items() if role == "attacked"}
    assert len(groups) >= 12 and not groups & set(p.harmful_centre_groups)
