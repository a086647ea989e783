"""Benign-only anomaly detectors over rows of SRI signals ``X`` (``[N, S]``); higher score = more anomalous.

They share one small interface (:class:`Detector`: ``fit(X)``, ``score(X)``, ``state()`` / ``from_state``
for pickle-free persistence) and one registry, :data:`DETECTORS` (``srilab list detectors``):

* ``autoencoder`` (default) - torch MLP ``S -> 32 -> 8 -> 32 -> S`` on standardised signals, the score
  is the reconstruction MSE; deterministic (weights initialised from a local ``torch.Generator``,
  full-batch Adam, no shuffling).
* ``mahalanobis`` - squared Mahalanobis distance under a Ledoit-Wolf shrunk covariance.
* ``knn`` - mean Euclidean distance to the ``k`` nearest training rows.
* ``isolation_forest`` - ``-score_samples`` of an sklearn IsolationForest with a fixed ``random_state``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch

from srilab.errors import SrilabError
from srilab.registry import Registry

__all__ = [
    "DETECTORS",
    "AutoencoderDetector",
    "Detector",
    "IsolationForestDetector",
    "KNNDetector",
    "MahalanobisDetector",
    "fit_detectors",
    "make_detector",
]

#: Every detector class by name (``srilab list detectors``).
DETECTORS: Registry[type[Detector]] = Registry("detectors", singular="guard detector")


# --------------------------------------------------------------------------------------------------
# detectors
# --------------------------------------------------------------------------------------------------


class Detector(ABC):
    """A benign-only anomaly detector over rows of ``X`` (``[N, S]``); higher score = more anomalous.

    Subclasses also implement :meth:`state` / :meth:`from_state` so the guard can persist them as plain
    arrays (safetensors) instead of pickles.
    """

    name: ClassVar[str]

    def __init__(self, seed: int = 0, **options: Any) -> None:
        self.seed = int(seed)
        self.options = dict(options)

    @abstractmethod
    def fit(self, X: np.ndarray) -> Detector:
        """Fit on benign rows ``X`` and return ``self``."""

    @abstractmethod
    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per row of ``X`` (float64 ``[N]``)."""

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Arrays that, with ``seed`` and ``options``, restore the fitted detector."""

    @classmethod
    def fit_many(cls, Xs: list[np.ndarray], seed: int = 0, **options: Any) -> list[Detector]:
        """One detector per matrix of ``Xs``, each as ``cls(seed, **options).fit(X)`` gives it (subclasses may
        fit them together, e.g. the leave-one-topic-out detectors of a threshold)."""
        return [cls(seed, **options).fit(X) for X in Xs]

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, np.ndarray], seed: int, options: dict[str, Any]) -> Detector:
        """Rebuild a fitted detector from :meth:`state`."""


class _RefitDetector(Detector):
    """Base for sklearn detectors: persisted as their training matrix and refitted on load."""

    def __init__(self, seed: int = 0, **options: Any) -> None:
        super().__init__(seed, **options)
        self._train: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Detector:
        self._train = np.ascontiguousarray(X, dtype=np.float64)
        self._fit(self._train)
        return self

    @abstractmethod
    def _fit(self, X: np.ndarray) -> None: ...

    def state(self) -> dict[str, np.ndarray]:
        if self._train is None:
            raise SrilabError(f"{self.name} detector is not fitted; call fit() first")
        return {"train": self._train}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], seed: int, options: dict[str, Any]) -> Detector:
        if "train" not in state:
            raise SrilabError(f"saved {cls.name} guard has no training matrix; refit and save the guard again")
        return cls(seed, **options).fit(state["train"])


@DETECTORS.register("mahalanobis", source='Mahalanobis distance, Ledoit-Wolf shrinkage (Ledoit & Wolf 2004)')
class MahalanobisDetector(_RefitDetector):
    """Squared Mahalanobis distance to the benign mean under a Ledoit-Wolf shrunk covariance."""

    name = "mahalanobis"

    def _fit(self, X: np.ndarray) -> None:
        from sklearn.covariance import LedoitWolf

        self._model = LedoitWolf(store_precision=True).fit(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.mahalanobis(X), dtype=np.float64)


@DETECTORS.register("knn", source='k-nearest-neighbour distance')
class KNNDetector(_RefitDetector):
    """Mean Euclidean distance to the ``k`` nearest training rows (option ``k``, default 5)."""

    name = "knn"

    def _fit(self, X: np.ndarray) -> None:
        from sklearn.neighbors import NearestNeighbors

        k = int(self.options.get("k", 5))
        if k < 1:
            raise SrilabError(f"knn option k must be >= 1, got {k}; use e.g. k=5")
        self._k = min(k, X.shape[0])
        self._model = NearestNeighbors(n_neighbors=self._k).fit(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        dist, _ = self._model.kneighbors(X, n_neighbors=self._k)
        return dist.mean(axis=1).astype(np.float64)


@DETECTORS.register("isolation_forest", source='Liu, Ting & Zhou 2008, isolation forest (scikit-learn)')
class IsolationForestDetector(_RefitDetector):
    """sklearn IsolationForest (``random_state=seed``, option ``n_estimators``, default 100)."""

    name = "isolation_forest"

    def _fit(self, X: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        n_estimators = int(self.options.get("n_estimators", 100))
        self._model = IsolationForest(n_estimators=n_estimators, random_state=self.seed, n_jobs=1).fit(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        return -np.asarray(self._model.score_samples(X), dtype=np.float64)


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread (restored afterwards).

    The network is tiny, so extra threads only add synchronisation cost (badly so on a loaded machine),
    and one thread makes the float results independent of the host's core count.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _AutoencoderNet(torch.nn.Module):
    """MLP autoencoder ``S -> hidden -> bottleneck -> hidden -> S`` with tanh activations."""

    def __init__(self, steps: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        # skip_init: no draw from the global RNG; weights come from a local generator or from a file
        self.enc1 = torch.nn.utils.skip_init(torch.nn.Linear, steps, hidden)
        self.enc2 = torch.nn.utils.skip_init(torch.nn.Linear, hidden, bottleneck)
        self.dec1 = torch.nn.utils.skip_init(torch.nn.Linear, bottleneck, hidden)
        self.dec2 = torch.nn.utils.skip_init(torch.nn.Linear, hidden, steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.enc1(x))
        z = torch.tanh(self.enc2(h))
        h = torch.tanh(self.dec1(z))
        return self.dec2(h)


@DETECTORS.register("autoencoder", source='SRI guard default: autoencoder reconstruction error (the SRI paper)')
class AutoencoderDetector(Detector):
    """Reconstruction MSE of a small MLP autoencoder trained on standardised benign signals.

    Options: ``hidden`` (32), ``bottleneck`` (8), ``epochs`` (300), ``lr`` (5e-3), ``std_floor`` (0.01).
    Columns are standardised with the training mean and standard deviation (floored at ``std_floor`` so a
    near-constant step does not dominate; 0.01 is in signal units, which on s_t saturated near 1 still
    turns deviations of 0.01 into one standard unit - see :mod:`srilab.sri.representation`).
    Training is full-batch Adam from weights drawn with a local ``torch.Generator``
    seeded with ``seed``, so it is deterministic and leaves the global RNG alone.
    """

    name = "autoencoder"
    _STD_FLOOR = 0.01

    def __init__(self, seed: int = 0, **options: Any) -> None:
        super().__init__(seed, **options)
        self.hidden = int(options.get("hidden", 32))
        self.bottleneck = int(options.get("bottleneck", 8))
        self.epochs = int(options.get("epochs", 300))
        self.lr = float(options.get("lr", 5e-3))
        self.std_floor = float(options.get("std_floor", self._STD_FLOOR))
        self._net: _AutoencoderNet | None = None
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    def _build(self, steps: int) -> _AutoencoderNet:
        net = _AutoencoderNet(steps, self.hidden, self.bottleneck)
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for layer in (net.enc1, net.enc2, net.dec1, net.dec2):
                bound = 1.0 / math.sqrt(layer.in_features)
                torch.nn.init.uniform_(layer.weight, -bound, bound, generator=gen)
                torch.nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
        return net

    def floored_share(self) -> float:
        """The share of columns whose fitted standard deviation sits at ``std_floor`` (near-constant steps)."""
        if self._std is None:
            raise SrilabError("the autoencoder detector is not fitted: call fit() first")
        return float(np.mean(self._std <= self.std_floor + 1e-12))

    def _standardise(self, X: np.ndarray) -> torch.Tensor:
        assert self._mean is not None and self._std is not None
        return torch.from_numpy(((X - self._mean) / self._std).astype(np.float32))

    def fit(self, X: np.ndarray) -> Detector:
        self._mean = X.mean(axis=0)
        self._std = np.maximum(X.std(axis=0), self.std_floor)
        x = self._standardise(X)
        net = self._build(X.shape[1])
        # foreach: the same update, bit for bit, in a few batched ops instead of one loop per parameter
        # (1.7x faster on the guard's small nets, where the optimiser's per-parameter overhead dominates)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, foreach=True)
        net.train()
        with _single_thread():
            for _ in range(self.epochs):
                opt.zero_grad(set_to_none=True)
                loss = torch.mean((net(x) - x) ** 2)
                loss.backward()
                opt.step()
        net.eval()
        self._net = net
        return self

    @classmethod
    def fit_many(cls, Xs: list[np.ndarray], seed: int = 0, **options: Any) -> list[Detector]:
        """The autoencoders of ``Xs`` trained as one batched network: member ``k`` has its own weights,
        standardisation and loss (the mean over its own rows), so its gradients and Adam updates are those of
        ``fit(Xs[k])``; only the float rounding of the batched products differs. After one epoch the scores
        agree to ~1e-7 relative; 300 epochs of Adam grow that to ~0.1-2% of a score (as a change of thread count
        would), so a batched member is an equally valid fit, not the same bits (``tests/test_guard.py``).
        About 4x faster for 16 members than fitting them one by one (``benchmarks/bench_guard_fit.py``): the
        nets are so small that per-operation overhead, not arithmetic, sets the time. Deterministic for the
        same ``Xs``."""
        dets = [cls(seed, **options) for _ in Xs]
        if len(Xs) < 2:
            return [d.fit(X) for d, X in zip(dets, Xs, strict=True)]
        steps = {int(X.shape[1]) for X in Xs}
        if len(steps) != 1 or any(X.ndim != 2 or X.shape[0] < 1 for X in Xs):
            raise SrilabError(f"fit_many needs non-empty [N, S] matrices of one width, got {[X.shape for X in Xs]}")
        S, n_max, first = steps.pop(), max(X.shape[0] for X in Xs), dets[0]
        x = torch.zeros(len(Xs), n_max, S)
        weight = torch.zeros(len(Xs), n_max, 1)
        for k, (d, X) in enumerate(zip(dets, Xs, strict=True)):
            d._mean = X.mean(axis=0)
            d._std = np.maximum(X.std(axis=0), d.std_floor)
            x[k, : X.shape[0]] = d._standardise(X)
            weight[k, : X.shape[0]] = 1.0 / (X.shape[0] * S)  # each member's loss is the mean over its rows
        init = first._build(S)  # every member starts from the same seeded weights, as fit() would
        layers = [init.enc1, init.enc2, init.dec1, init.dec2]
        params = []
        for layer in layers:  # [K, in, out] weights and [K, 1, out] biases, for baddbmm
            params.append(layer.weight.detach().t().unsqueeze(0).repeat(len(Xs), 1, 1).requires_grad_())
            params.append(layer.bias.detach().view(1, 1, -1).repeat(len(Xs), 1, 1).requires_grad_())

        def forward(h: torch.Tensor) -> torch.Tensor:
            for i in range(4):
                h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
                if i < 3:
                    h = torch.tanh(h)
            return h

        opt = torch.optim.Adam(params, lr=first.lr, foreach=True)
        with _single_thread():
            for _ in range(first.epochs):
                opt.zero_grad(set_to_none=True)
                loss = (((forward(x) - x) ** 2) * weight).sum()
                loss.backward()
                opt.step()
        for k, d in enumerate(dets):
            net = _AutoencoderNet(S, d.hidden, d.bottleneck)
            with torch.no_grad():
                for i, layer in enumerate((net.enc1, net.enc2, net.dec1, net.dec2)):
                    layer.weight.copy_(params[2 * i][k].t())
                    layer.bias.copy_(params[2 * i + 1][k, 0])
            net.eval()
            d._net = net
        return dets

    def score(self, X: np.ndarray) -> np.ndarray:
        if self._net is None:
            raise SrilabError("autoencoder detector is not fitted; call fit() first")
        x = self._standardise(X)
        with torch.no_grad(), _single_thread():
            err = torch.mean((self._net(x) - x) ** 2, dim=1)
        return err.numpy().astype(np.float64)

    def step_errors(self, X: np.ndarray) -> np.ndarray:
        """Squared reconstruction error per row and column ``[N, S]`` (the score is its row mean)."""
        if self._net is None:
            raise SrilabError("autoencoder detector is not fitted; call fit() first")
        x = self._standardise(X)
        with torch.no_grad(), _single_thread():
            err = (self._net(x) - x) ** 2
        return err.numpy().astype(np.float64)

    def state(self) -> dict[str, np.ndarray]:
        if self._net is None or self._mean is None or self._std is None:
            raise SrilabError("autoencoder detector is not fitted; call fit() first")
        out = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in self._net.state_dict().items()}
        out["mean"] = self._mean
        out["std"] = self._std
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], seed: int, options: dict[str, Any]) -> Detector:
        det = cls(seed, **options)
        try:
            det._mean = np.asarray(state["mean"], dtype=np.float64)
            det._std = np.asarray(state["std"], dtype=np.float64)
            net = _AutoencoderNet(det._mean.shape[0], det.hidden, det.bottleneck)
            weights = {
                k[len("net.") :]: torch.from_numpy(np.ascontiguousarray(v))
                for k, v in state.items()
                if k.startswith("net.")
            }
            net.load_state_dict(weights, strict=True)
        except (KeyError, RuntimeError) as exc:
            raise SrilabError(
                f"saved autoencoder guard does not match its metadata ({str(exc).splitlines()[0]}); "
                "refit and save the guard again"
            ) from None
        net.eval()
        det._net = net
        return det


def make_detector(name: str, seed: int = 0, **options: Any) -> Detector:
    """Instantiate the detector registered under ``name`` (see :data:`DETECTORS`)."""
    return DETECTORS.get(name)(seed, **options)


def fit_detectors(name: str, Xs: list[np.ndarray], seed: int = 0, **options: Any) -> list[Detector]:
    """One fitted detector ``name`` per matrix of ``Xs`` (:meth:`Detector.fit_many`: batched where it can be)."""
    return DETECTORS.get(name).fit_many(Xs, seed, **options)


