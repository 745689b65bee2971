r"""Training losses of whole networks as potentials, for agents that are networks.

In the interacting-agents view of Kantas, Parpas & Pavliotis (2019) each agent is a full
parameter vector of the model being trained and :math:`\Phi` is its training loss. For a
two-layer network of width :math:`m` on a fixed data set
:math:`\{(x_b, y_b)\}_{b\le B}`,

.. math::

    \Phi(\theta) = \frac1{2B}\sum_{b=1}^B\Big(y_b - \frac1m\sum_{i=1}^m
    a_i\,\sigma(\langle w_i, x_b\rangle)\Big)^2,
    \qquad \theta = (w_1,\dots,w_m[, a_1,\dots,a_m]) \in \mathbb{R}^{md\,[+m]},

with :math:`a_i\equiv1` unless the output weights are trained. :class:`NetworkLoss` is a
:class:`ddsolve.model.potentials.Potential` in :math:`md` (or :math:`md+m`) dimensions whose
``__call__`` and ``gradient`` take many agents at once (rows of an ``(A, dim)`` array),
so it plugs into :class:`particles.hmm.MFHomSGLD` and into
:func:`particles.hmm.interacting_agents_model` + :class:`particles.meanfield.MeanFieldParticles`.
"""

from __future__ import annotations

import numpy as np

from ddsolve.model.potentials import Potential
from ddsolve.networks.activations import Activation

__all__ = ["NetworkLoss"]


class NetworkLoss(Potential):
    r"""Half the mean square training loss of a width-``width`` two-layer network.

    Parameters
    ----------
    x : ndarray, shape (B, d)
        Inputs of the (fixed) training set.
    y : ndarray, shape (B,)
        Labels.
    activation : Activation
    width : int
        Number of neurons :math:`m`.
    train_a : bool
        Whether the output weights are part of :math:`\theta` (last :math:`m` entries).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, activation: Activation, width: int,
                 train_a: bool = False) -> None:
        self.x = np.atleast_2d(np.asarray(x, dtype=float))
        self.y = np.asarray(y, dtype=float).ravel()
        if self.x.shape[0] != self.y.size or self.y.size == 0:
            raise ValueError(f"x and y need the same positive number of samples, got "
                             f"{self.x.shape[0]} and {self.y.size}")
        if int(width) != width or width < 1:
            raise ValueError(f"width must be a positive integer, got {width}")
        self.activation = activation
        self.width = int(width)
        self.train_a = bool(train_a)
        self.d = self.x.shape[1]
        self.ndim = self.width * self.d + (self.width if self.train_a else 0)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(W, a)`` of agents ``theta`` (shape ``(A, dim)``): ``W`` is ``(A, m, d)``,
        ``a`` is ``(A, m)``."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if theta.shape[-1] != self.ndim:
            raise ValueError(f"parameters must have {self.ndim} entries, got {theta.shape[-1]}")
        m, d = self.width, self.d
        W = theta[:, : m * d].reshape(-1, m, d)
        a = theta[:, m * d:] if self.train_a else np.ones((theta.shape[0], m))
        return W, a

    def _forward(self, theta):
        W, a = self.unpack(theta)
        z = np.einsum("amd,bd->amb", W, self.x)
        s = self.activation(z)
        residual = self.y[None, :] - np.einsum("am,amb->ab", a, s) / self.width
        return W, a, z, s, residual

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        *_, residual = self._forward(theta)
        out = 0.5 * np.mean(residual**2, axis=1)
        return out if np.ndim(theta) > 1 else out[0]

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        r""":math:`\nabla\Phi`: :math:`\partial_{w_i}\Phi = -\frac1{mB}\sum_b r_b\,a_i
        \sigma'(\langle w_i,x_b\rangle)x_b`, :math:`\partial_{a_i}\Phi = -\frac1{mB}\sum_b
        r_b\,\sigma(\langle w_i,x_b\rangle)` with residuals :math:`r_b = y_b - \hat y(x_b)`."""
        W, a, z, s, r = self._forward(theta)
        B, m = self.y.size, self.width
        ds = self.activation.derivative(z)
        gW = -np.einsum("ab,am,amb,bd->amd", r, a, ds, self.x, optimize=True) / (m * B)
        parts = [gW.reshape(gW.shape[0], -1)]
        if self.train_a:
            parts.append(-np.einsum("ab,amb->am", r, s) / (m * B))
        out = np.concatenate(parts, axis=1)
        return out if np.ndim(theta) > 1 else out[0]
