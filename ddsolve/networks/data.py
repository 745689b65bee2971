r"""Data laws of the two-layer problems, with samplers.

Two families:

* :class:`GaussianMixtureData` — a label :math:`y_c` drawn with probability
  :math:`\pi_c`, then :math:`x\mid c \sim N(0, \Sigma_c)` with :math:`\Sigma_c`
  block-scalar: :math:`\mathbb{R}^d = \oplus_b \mathbb{R}^{n_b}` and
  :math:`\Sigma_c = \mathrm{diag}(s_{c,b}^2 I_{n_b})`. This covers the two experiments of
  Mei, Montanari & Nguyen (PNAS 2018, §3):

  - *isotropic Gaussians* (:meth:`GaussianMixtureData.isotropic`): :math:`y=\pm1` with
    probability ½ and :math:`x\mid y\sim N(0,(1+y\Delta)^2 I_d)`;
  - *anisotropic Gaussians* (:meth:`GaussianMixtureData.anisotropic`):
    :math:`\Sigma_\pm = \mathrm{diag}((1\pm\Delta)^2 I_{s_0}, I_{d-s_0})`.

  For networks :math:`\sigma_*(x;w) = \sigma(\langle w,x\rangle)` these laws have exact
  reduced models on the block norms :math:`r_b = |w_b|` (:mod:`ddsolve.networks.reduction`).

* :class:`TeacherData` — teacher–student regression: :math:`x\sim N(0, I_d)` or uniform
  on the sphere :math:`S^{d-1}(\sqrt d)`, and :math:`y = f_*(x) = \frac1m\sum_j a_j
  \sigma(\langle w_j, x\rangle)` plus optional label noise (Chizat, Oyallon & Bach,
  NeurIPS 2019 use this setting to contrast lazy and mean-field initialisation scales).

Every law has ``dim``, ``risk_offset`` (:math:`R_\# = \mathbb{E}y^2`) and
``sample(n, rng) -> (x, y)`` with ``x`` of shape ``(n, dim)``; the particle dynamics
draw their SGD samples from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ddsolve.networks.activations import Activation, correlated_expectation

__all__ = ["DataLaw", "GaussianMixtureData", "TeacherData"]


class DataLaw:
    """Base class of data laws: ``dim``, ``risk_offset`` and ``sample``."""

    dim: int
    name = "data"

    @property
    def risk_offset(self) -> float:
        r""":math:`R_\# = \mathbb{E}[y^2]`, the risk of the zero predictor."""
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` i.i.d. pairs: ``x`` of shape ``(n, dim)`` and ``y`` of shape ``(n,)``."""
        raise NotImplementedError


class GaussianMixtureData(DataLaw):
    """Labels with block-scalar centred Gaussian features.

    Parameters
    ----------
    blocks : sequence of int
        Block dimensions :math:`n_b` (summing to :math:`d`).
    probs : sequence of float
        Class probabilities :math:`\\pi_c` (normalised).
    labels : sequence of float
        Class labels :math:`y_c`.
    scales : array_like, shape (classes, blocks)
        Standard deviations :math:`s_{c,b}` of the features of class ``c`` in block ``b``.
    name : str
    """

    def __init__(self, blocks: Sequence[int], probs: Sequence[float], labels: Sequence[float],
                 scales, name: str = "gaussian-mixture"):
        self.blocks = tuple(int(n) for n in blocks)
        if not self.blocks or any(n < 1 for n in self.blocks):
            raise ValueError(f"block dimensions must be positive integers, got {list(blocks)}")
        p = np.asarray(probs, dtype=float)
        if p.ndim != 1 or p.size < 1 or np.any(p <= 0) or not np.all(np.isfinite(p)):
            raise ValueError(f"class probabilities must be positive, got {list(probs)}")
        self.probs = p / p.sum()
        self.labels = np.asarray(labels, dtype=float)
        self.scales = np.asarray(scales, dtype=float)
        if self.labels.shape != self.probs.shape:
            raise ValueError("one label per class is needed")
        if self.scales.shape != (self.probs.size, len(self.blocks)):
            raise ValueError(f"scales need shape (classes, blocks) = ({self.probs.size}, "
                             f"{len(self.blocks)}), got {self.scales.shape}")
        if np.any(self.scales <= 0) or not np.all(np.isfinite(self.scales)):
            raise ValueError("feature scales must be positive and finite")
        self.dim = sum(self.blocks)
        self.name = name

    @classmethod
    def isotropic(cls, dim: int, delta: float) -> GaussianMixtureData:
        r"""MMN's isotropic Gaussians: :math:`y=\pm1`, :math:`x\mid y\sim N(0,(1+y\Delta)^2I_d)`,
        :math:`0<\Delta<1`."""
        if not 0 < delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        return cls([dim], [0.5, 0.5], [1.0, -1.0], [[1 + delta], [1 - delta]], name="isotropic")

    @classmethod
    def anisotropic(cls, dim: int, s0: int, delta: float) -> GaussianMixtureData:
        r"""MMN's anisotropic Gaussians: :math:`\Sigma_\pm=\mathrm{diag}((1\pm\Delta)^2I_{s_0},
        I_{d-s_0})`, :math:`1\le s_0<d`."""
        if not 0 < delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        if not 1 <= s0 < dim:
            raise ValueError(f"s0 must satisfy 1 <= s0 < dim = {dim}, got {s0}")
        return cls([s0, dim - s0], [0.5, 0.5], [1.0, -1.0],
                   [[1 + delta, 1.0], [1 - delta, 1.0]], name="anisotropic")

    @property
    def risk_offset(self) -> float:
        return float(self.probs @ self.labels**2)

    def feature_std(self) -> np.ndarray:
        """Per-coordinate standard deviations, shape ``(classes, dim)``."""
        return np.repeat(self.scales, self.blocks, axis=1)

    def sample(self, n, rng):
        c = rng.choice(self.probs.size, size=n, p=self.probs)
        x = rng.standard_normal((n, self.dim)) * self.feature_std()[c]
        return x, self.labels[c]

    def to_dict(self) -> dict:
        return {"name": self.name, "blocks": list(self.blocks), "probs": self.probs.tolist(),
                "labels": self.labels.tolist(), "scales": self.scales.tolist()}


class TeacherData(DataLaw):
    r"""Teacher–student data :math:`y = \frac1m\sum_j a_j\sigma(\langle w_j,x\rangle) + \eta`.

    Parameters
    ----------
    weights : array_like, shape (m, d)
        Teacher first-layer weights :math:`w_j`.
    second_layer : array_like, shape (m,), optional
        Teacher output weights :math:`a_j` (default ones).
    activation : Activation
    inputs : {"gaussian", "sphere"}
        :math:`x\sim N(0,I_d)` or uniform on :math:`S^{d-1}(\sqrt d)`.
    noise : float
        Standard deviation of additive label noise :math:`\eta`.
    """

    def __init__(self, weights, activation: Activation, second_layer=None,
                 inputs: str = "gaussian", noise: float = 0.0):
        W = np.atleast_2d(np.asarray(weights, dtype=float))
        if W.ndim != 2 or not np.all(np.isfinite(W)):
            raise ValueError("teacher weights must be a finite (m, d) array")
        self.weights = W
        self.second_layer = (np.ones(W.shape[0]) if second_layer is None
                             else np.asarray(second_layer, dtype=float).ravel())
        if self.second_layer.shape != (W.shape[0],):
            raise ValueError("one teacher output weight per teacher neuron is needed")
        if inputs not in ("gaussian", "sphere"):
            raise ValueError(f"inputs must be 'gaussian' or 'sphere', got {inputs!r}")
        if not noise >= 0:
            raise ValueError(f"label noise must be >= 0, got {noise}")
        self.activation = activation
        self.inputs = inputs
        self.noise = float(noise)
        self.dim = W.shape[1]
        self.name = "teacher"

    @classmethod
    def random(cls, dim: int, width: int, activation: Activation, rng: np.random.Generator,
               norm: float = 1.0, **kwargs) -> TeacherData:
        """A teacher with ``width`` neurons drawn uniformly on the sphere of radius ``norm``."""
        W = rng.standard_normal((width, dim))
        W *= norm / np.linalg.norm(W, axis=1, keepdims=True)
        return cls(W, activation, **kwargs)

    def target(self, x: np.ndarray) -> np.ndarray:
        """:math:`f_*(x)` for ``x`` of shape ``(n, d)``."""
        return self.activation(x @ self.weights.T) @ self.second_layer / self.weights.shape[0]

    def sample_inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        x = rng.standard_normal((n, self.dim))
        if self.inputs == "sphere":
            x *= math.sqrt(self.dim) / np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def sample(self, n, rng):
        x = self.sample_inputs(n, rng)
        y = self.target(x)
        if self.noise > 0:
            y = y + self.noise * rng.standard_normal(n)
        return x, y

    @property
    def risk_offset(self) -> float:
        r""":math:`\mathbb{E}f_*(x)^2 + \eta^2`: exact for Gaussian inputs (each pair of
        teacher neurons is a correlated Gaussian expectation,
        :func:`ddsolve.networks.activations.correlated_expectation`); for spherical inputs a Monte
        Carlo estimate from :math:`2\cdot10^5` fixed-seed samples."""
        if self.inputs == "gaussian":
            norms = np.linalg.norm(self.weights, axis=1)
            safe = np.where(norms > 0, norms, 1.0)
            cos = (self.weights @ self.weights.T) / np.outer(safe, safe)
            m = norms.size
            a, b = np.broadcast_to(norms[:, None], (m, m)), np.broadcast_to(norms[None, :], (m, m))
            E = correlated_expectation(self.activation, a, b, np.clip(cos, -1, 1))
            value = self.second_layer @ E @ self.second_layer / m**2
        else:
            x = self.sample_inputs(200_000, np.random.default_rng(12345))
            value = float(np.mean(self.target(x) ** 2))
        return float(value + self.noise**2)
