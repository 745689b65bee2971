"""Network training losses as potentials: gradients, and agents (plain and multiscale)
training networks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddsolve.networks.activations import Tanh, relu
from ddsolve.networks.data import TeacherData
from particles.hmm import MFHomSGLD, interacting_agents_model
from particles.losses import NetworkLoss
from particles.meanfield import MeanFieldParticles


@pytest.mark.parametrize("train_a", [False, True])
def test_gradient_matches_finite_differences(train_a):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal(30)
    loss = NetworkLoss(x, y, Tanh(), 3, train_a=train_a)
    theta = rng.standard_normal((2, loss.ndim))
    g = loss.gradient(theta)
    h = 1e-6
    for k in range(loss.ndim):
        e = np.zeros(loss.ndim)
        e[k] = h
        fd = (loss(theta + e) - loss(theta - e)) / (2 * h)
        assert np.allclose(g[:, k], fd, rtol=1e-6, atol=1e-9)
    # one agent as a vector
    assert loss(theta[0]) == pytest.approx(loss(theta)[0])
    assert np.allclose(loss.gradient(theta[0]), g[0])


def test_loss_is_half_the_empirical_risk():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 3))
    y = rng.standard_normal(50)
    loss = NetworkLoss(x, y, relu(), 4, train_a=True)
    theta = rng.standard_normal(loss.ndim)
    W, a = loss.unpack(theta)
    yhat = (a[0] * relu()(x @ W[0].T)).mean(axis=1)
    assert loss(theta) == pytest.approx(0.5 * np.mean((y - yhat) ** 2), rel=1e-12)


def _teacher_problem():
    rng = np.random.default_rng(2)
    teacher = TeacherData.random(4, 1, Tanh(), rng)
    x, y = teacher.sample(200, rng)
    return NetworkLoss(x, y, Tanh(), 3)


def test_agents_and_hmm_train_networks():
    """20 agents, each a width-3 tanh network in R^4, learn a one-neuron teacher: the plain
    Kantas-Parpas-Pavliotis agents (mean-field particles of V = Phi, U = lam |x-y|^2/2) and
    the MF-Hom-SGLD agents both reduce the mean training loss by more than 10x by t = 20."""
    loss = _teacher_problem()

    def init(rng, n):
        return 0.5 * rng.standard_normal((n, loss.ndim))

    rng = np.random.default_rng(3)
    start = loss(init(np.random.default_rng(3), 20)).mean()
    plain = MeanFieldParticles(interacting_agents_model(loss, lam=0.5, beta=1e5, ndim=loss.ndim),
                               20, 0.05, init)
    state = plain.initial_state(rng)
    plain.advance(state, 400, rng)
    hmm = MFHomSGLD(loss, 20, gamma=0.5, eps=1.0, lam=0.5, beta=1e5, inner_steps=10, burn_in=5,
                    inner_dt=0.05, dt=0.05, initial=init)
    hstate = hmm.initial_state(rng)
    hmm.advance(hstate, 400, rng)
    assert loss(state.x).mean() < start / 10
    assert loss(hstate.x).mean() < start / 10
    assert math.isfinite(hmm.diagnostics(hstate)["energy"])


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="width"):
        NetworkLoss(np.zeros((3, 2)), np.zeros(3), relu(), 0)
    with pytest.raises(ValueError, match="same positive number of samples"):
        NetworkLoss(np.zeros((3, 2)), np.zeros(4), relu(), 2)
    with pytest.raises(ValueError, match="parameters must have 4 entries"):
        NetworkLoss(np.zeros((3, 2)), np.zeros(3), relu(), 2).gradient(np.zeros(5))
