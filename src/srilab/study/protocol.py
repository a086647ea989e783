"""The evaluation protocol: every item of a study gets exactly one role, seeded, disjoint, recorded.

Roles (DESIGN.md, "Protocol"):

- benign items of *seen* topic groups: ``centre`` (the harmless SRI centre), ``guard_fit`` (the benign-only
  detector), ``calibration`` (every detector's threshold) and ``eval_seen_topics``;
- benign items of the topic groups held out whole: ``eval_unseen_topics`` (never used by the first three);
- harmful items: ``harmful_centre`` (the items of a seeded share of the ``sri.harmful`` dataset's topic
  groups, asked directly; their refused answers make the harmful centre; never attacked, never scored),
  ``excluded`` (items of other harmful datasets in those groups: never generated, so no attacked item shares
  a topic with the centre) and ``attacked`` (everything else);
- ``capability`` items (answers checked against the item's answer).

Unseen groups are a seeded choice of the benign groups; the other benign items are split per dataset by a
seeded permutation of their *tasks* cut in the configured proportions (a dataset may restrict its roles,
e.g. train phrasings for the fit, held-out phrasings for evaluation). An item's task is its ``task`` field
(the toy world's phrasings of one procedure share it) or, without one, the item itself: every phrasing of a
task takes the same role, and a task that one dataset gave a fitting role (``centre``, ``guard_fit``,
``calibration``) keeps it in every other dataset that allows it; where another dataset cannot give it that
role, its item goes to ``eval_seen_topics`` if allowed, else it is left out (``excluded``, never
generated). So the threshold is never set on near-copies of the rows the centre or the detector saw.
The same config and items always give the same roles, so a resumed run and the report agree with the
generation. :meth:`Protocol.to_dict` is the ``protocol`` section of ``summary.json``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from srilab.errors import SrilabError

BENIGN_ROLES = ("centre", "guard_fit", "calibration", "eval_seen_topics")
ROLES = (*BENIGN_ROLES, "eval_unseen_topics", "harmful_centre", "excluded", "attacked", "capability")
FIT_ROLES = ("centre", "guard_fit", "calibration")  # what an unseen topic group must never touch


@dataclass(frozen=True)
class ProtocolItem:
    """What the protocol needs of an item: its dataset, id, topic group and task (None: the item is its own)."""

    dataset: str
    id: str
    group: str | None
    task: str | None = None

    @property
    def unit(self) -> str:
        return self.task if self.task is not None else f"{self.dataset}/{self.id}"


@dataclass(frozen=True)
class Protocol:
    seed: int
    roles: Mapping[tuple[str, str], str]  # (dataset, item id) -> role
    groups: Mapping[tuple[str, str], str | None]
    seen_groups: tuple[str, ...]
    unseen_groups: tuple[str, ...]
    harmful_centre_groups: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    units: Mapping[tuple[str, str], str] | None = None  # (dataset, item id) -> task (benign items)

    def role(self, dataset: str, item: str) -> str:
        return self.roles[(dataset, item)]

    def members(self, role: str) -> list[str]:
        return sorted(f"{d}/{i}" for (d, i), r in self.roles.items() if r == role)

    def check(self) -> None:
        """Roles are disjoint by construction (one per item); no unseen group reaches a fitting role."""
        leaked = sorted(
            f"{d}/{i}" for (d, i), r in self.roles.items()
            if r in FIT_ROLES and (self.groups[(d, i)] or "") in self.unseen_groups
        )
        if leaked:
            raise SrilabError(f"protocol bug: items of unseen topic groups in fitting roles: {leaked[:5]}")
        shared = sorted(
            f"{d}/{i}" for (d, i), r in self.roles.items()
            if r == "attacked" and (self.groups[(d, i)] or "") in self.harmful_centre_groups
        )
        if shared:
            raise SrilabError(f"protocol bug: attacked items in the harmful centre's topic groups: {shared[:5]}")
        fit_role: dict[str, str] = {}
        for key, unit in sorted((self.units or {}).items()):
            r = self.roles[key]
            if r in FIT_ROLES and fit_role.setdefault(unit, r) != r:
                raise SrilabError(f"protocol bug: task {unit!r} is in both {fit_role[unit]!r} and {r!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "seen_groups": list(self.seen_groups),
            "unseen_groups": list(self.unseen_groups),
            "harmful_centre_groups": list(self.harmful_centre_groups),
            "counts": {r: len(self.members(r)) for r in ROLES},
            "roles": {r: self.members(r) for r in ROLES},
            "groups": {f"{d}/{i}": g for (d, i), g in sorted(self.groups.items())},
            "tasks": {f"{d}/{i}": u for (d, i), u in sorted((self.units or {}).items())},
            "notes": list(self.notes),
        }


def _cut(ids: Sequence[str], shares: Mapping[str, float], rng: random.Random) -> dict[str, str]:
    """A seeded permutation of ``ids`` cut into consecutive runs in proportion to ``shares``."""
    order = sorted(ids)
    rng.shuffle(order)
    total = sum(shares.values())
    out: dict[str, str] = {}
    start, acc = 0, 0.0
    names = list(shares)
    for i, role in enumerate(names):
        acc += shares[role]
        end = len(order) if i == len(names) - 1 else int(round(len(order) * acc / total))
        out.update({item: role for item in order[start:end]})
        start = end
    return out


def _role_for(unit: str, unit_role: Mapping[str, str], cut: Mapping[str, str], allowed: Sequence[str]) -> str:
    """An item's role from its task's: the fitting role the task already holds when this dataset allows it,
    else the role this dataset's cut gave the task; a task fitted elsewhere that this dataset cannot fit the
    same way is evaluated on seen topics if allowed, else left out."""
    if unit in unit_role:
        fitted = unit_role[unit]
        if fitted in allowed:
            return fitted
        return "eval_seen_topics" if "eval_seen_topics" in allowed else "excluded"
    return cut[unit]


def assign(
    seed: int,
    benign: Mapping[str, Sequence[ProtocolItem]],
    harmful: Mapping[str, Sequence[ProtocolItem]],
    capability: Mapping[str, Sequence[ProtocolItem]],
    *,
    shares: Mapping[str, float],
    dataset_roles: Mapping[str, Sequence[str] | None],
    unseen_share: float,
    centre_dataset: str | None,
    harmful_centre_share: float,
) -> Protocol:
    """Give every item one role (see the module docstring)."""
    roles: dict[tuple[str, str], str] = {}
    groups: dict[tuple[str, str], str | None] = {}
    units: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    all_groups, unseen = _unseen_groups(seed, benign, unseen_share, notes)
    unit_role: dict[str, str] = {}  # the fitting role a task got first: every other phrasing of it follows
    for name, items in benign.items():
        allowed = list(dataset_roles.get(name) or BENIGN_ROLES)
        _benign_roles(seed, name, items, shares, allowed, unseen, unit_role, roles, groups, units)
    centre_groups, centre_items = _harmful_centre(seed, harmful, centre_dataset, harmful_centre_share, notes)
    for name, items in harmful.items():
        for it in items:
            groups[(name, it.id)] = it.group
            if centre_groups and (it.group or "") in centre_groups:
                roles[(name, it.id)] = "harmful_centre" if name == centre_dataset else "excluded"
            elif not centre_groups and name == centre_dataset and it.id in centre_items:
                roles[(name, it.id)] = "harmful_centre"
            else:
                roles[(name, it.id)] = "attacked"
    for name, items in capability.items():
        for it in items:
            groups[(name, it.id)] = it.group
            roles[(name, it.id)] = "capability"
    protocol = Protocol(
        seed=seed, roles=roles, groups=groups, units=units,
        seen_groups=tuple(g for g in all_groups if g not in unseen),
        unseen_groups=unseen, harmful_centre_groups=tuple(sorted(centre_groups)), notes=tuple(notes),
    )
    protocol.check()
    return protocol


def _unseen_groups(
    seed: int, benign: Mapping[str, Sequence[ProtocolItem]], unseen_share: float, notes: list[str],
) -> tuple[list[str], tuple[str, ...]]:
    """Every benign topic group, and the ones held out whole for the unseen-topic evaluation (a seeded draw)."""
    all_groups = sorted({it.group or "" for items in benign.values() for it in items})
    n_unseen = 0
    if unseen_share > 0 and len(all_groups) >= 2:
        n_unseen = min(len(all_groups) - 1, max(1, int(round(unseen_share * len(all_groups)))))
    elif unseen_share > 0:
        notes.append(
            f"the benign items form {len(all_groups)} topic group(s): none can be held out, so there is no "
            "unseen-topic evaluation (set group_by on the benign datasets)"
        )
    rng = random.Random(f"srilab-protocol:{seed}:groups")
    return all_groups, tuple(sorted(rng.sample(all_groups, n_unseen)))


def _benign_roles(
    seed: int, name: str, items: Sequence[ProtocolItem], shares: Mapping[str, float], allowed: list[str],
    unseen: tuple[str, ...], unit_role: dict[str, str], roles: dict, groups: dict, units: dict,
) -> None:
    """The roles of one benign dataset's items (into ``roles``, ``groups``, ``units``): unseen topic groups to
    ``eval_unseen_topics``; the other tasks cut among the dataset's ``allowed`` roles by their shares, every
    phrasing of a task in the fitting role its task took first (``unit_role``, across datasets)."""
    picked = {r: shares[r] for r in allowed if shares[r] > 0}
    if not picked:
        raise SrilabError(f"benign dataset {name!r}: its roles {allowed} all have share 0 in protocol")
    fresh: list[str] = []
    for it in items:
        groups[(name, it.id)] = it.group
        units[(name, it.id)] = it.unit
        if (it.group or "") in unseen:
            roles[(name, it.id)] = "eval_unseen_topics"
        elif it.unit not in unit_role and it.unit not in fresh:
            fresh.append(it.unit)
    cut = _cut(fresh, picked, random.Random(f"srilab-protocol:{seed}:{name}"))
    for unit, role in cut.items():
        if role in FIT_ROLES:
            unit_role[unit] = role
    for it in items:
        if (it.group or "") not in unseen:
            roles[(name, it.id)] = _role_for(it.unit, unit_role, cut, allowed)


def _harmful_centre(
    seed: int, harmful: Mapping[str, Sequence[ProtocolItem]], centre_dataset: str | None, share: float,
    notes: list[str],
) -> tuple[set[str], set[str]]:
    """The harmful centre: whole topic groups of ``centre_dataset``, or with one group a share of its items."""
    if centre_dataset is None or centre_dataset not in harmful:
        return set(), set()
    items = harmful[centre_dataset]
    hgroups = sorted({it.group or "" for it in items})
    rng = random.Random(f"srilab-protocol:{seed}:{centre_dataset}")
    if len(hgroups) >= 2:
        n_centre = min(len(hgroups) - 1, max(1, int(round(share * len(hgroups)))))
        return set(rng.sample(hgroups, n_centre)), set()
    # one topic group: a share of the items (the centre then shares its topic with attacked items)
    notes.append(f"harmful dataset {centre_dataset!r} has one topic group: its harmful centre is a share of "
                 "its items, which share their topic with the attacked ones (set group_by)")
    order = sorted(it.id for it in items)
    rng.shuffle(order)
    return set(), set(order[: min(len(order) - 1, max(1, math.ceil(share * len(order))))])
