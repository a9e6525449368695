"""Tests of lshdisk.params against the QALSH paper's formulas and the authors' Mnist numbers."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lshdisk.params import (DEFAULT_CANDIDATES, QALSHParams, gaussian_bucket_prob,
                            qalsh_default_w, qalsh_params)


def _paper_m_l(n, c, delta, beta, w):
    """m and l written out from PVLDB 2015, Section 4 (Eqs. 6 and 7), independently of params."""
    p1 = math.erf(w / 2.0 / math.sqrt(2.0))
    p2 = math.erf(w / (2.0 * c) / math.sqrt(2.0))
    a, b = math.sqrt(math.log(2.0 / beta)), math.sqrt(math.log(1.0 / delta))
    eta = a / b
    alpha = (eta * p1 + p2) / (1.0 + eta)
    m = math.ceil((a + b) ** 2 / (2.0 * (p1 - p2) ** 2))
    return p1, p2, eta, alpha, m, math.ceil(alpha * m)


def test_params_mnist_numbers_of_the_qalsh_code():
    p = qalsh_params(60000, c=2)
    assert p.w == pytest.approx(2.7191, abs=1e-4)
    assert (p.m, p.l) == (65, 48)
    assert p.n == 60000 and p.c == 2.0
    assert p.delta == pytest.approx(1.0 / math.e)
    assert p.beta == pytest.approx(DEFAULT_CANDIDATES / 60000)


def test_params_collision_probabilities_are_the_erf_formulas():
    p = qalsh_params(60000, c=2.0)
    assert p.p1 == pytest.approx(math.erf(p.w / (2.0 * math.sqrt(2.0))), rel=1e-12)
    assert p.p2 == pytest.approx(math.erf(p.w / (2.0 * p.c * math.sqrt(2.0))), rel=1e-12)
    # Lemma 1: P(|Z| <= h) for Z ~ N(0, 1); erf(1/sqrt 2) is the one-sigma mass.
    assert gaussian_bucket_prob(1.0) == pytest.approx(0.6826894921370859, rel=1e-12)
    assert gaussian_bucket_prob(0.0) == 0.0


def test_params_default_w_formula():
    for c in (1.5, 2.0, 3.0):
        want = math.sqrt(8.0 * c * c * math.log(c) / (c * c - 1.0))
        assert qalsh_default_w(c) == pytest.approx(want, rel=1e-12)
        assert qalsh_params(1000, c=c).w == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("n,c,delta,beta,w", [
    (60000, 2.0, 1 / math.e, 100 / 60000, None),
    (1_000_000, 3.0, 0.1, 1e-4, None),
    (5000, 1.5, 0.25, 0.02, 2.0),
])
def test_params_derived_values_match_the_paper(n, c, delta, beta, w):
    w_used = qalsh_default_w(c) if w is None else w
    p1, p2, eta, alpha, m, l = _paper_m_l(n, c, delta, beta, w_used)
    p = qalsh_params(n, c=c, delta=delta, beta=beta, w=w)
    assert p.w == pytest.approx(w_used)
    assert (p.p1, p.p2, p.eta, p.alpha) == pytest.approx((p1, p2, eta, alpha), rel=1e-12)
    assert (p.m, p.l) == (m, l)


@pytest.mark.parametrize("c", [1.0, 0.5, float("nan"), float("inf"), -2.0])
def test_params_bad_c_is_refused(c):
    with pytest.raises(ValueError, match=r"^c \(approximation ratio\)"):
        qalsh_params(1000, c=c)


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.0, -0.1, float("nan")])
def test_params_bad_delta_is_refused(delta):
    with pytest.raises(ValueError, match=r"^delta"):
        qalsh_params(1000, delta=delta)


@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5, 2.0])
def test_params_bad_beta_is_refused(beta):
    with pytest.raises(ValueError, match=r"^beta"):
        qalsh_params(1000, beta=beta)


@pytest.mark.parametrize("w", [0.0, -1.0, float("inf"), float("nan")])
def test_params_bad_w_is_refused(w):
    with pytest.raises(ValueError, match=r"^w \(bucket width\)"):
        qalsh_params(1000, w=w)


@pytest.mark.parametrize("n", [0, -5, True, 2.5])
def test_params_bad_n_is_refused(n):
    with pytest.raises(ValueError, match=r"^n must"):
        qalsh_params(n)


def test_params_m_and_l_grow_as_delta_shrinks():
    ms, ls = [], []
    for delta in (0.45, 1 / math.e, 0.1, 0.01, 0.001):
        p = qalsh_params(60000, c=2.0, delta=delta)
        ms.append(p.m)
        ls.append(p.l)
    assert ms == sorted(ms) and len(set(ms)) == len(ms)
    assert ls == sorted(ls) and len(set(ls)) == len(ls)


def test_params_m_grows_with_n_and_shrinks_with_c():
    assert qalsh_params(4000).m < qalsh_params(60000).m < qalsh_params(10**7).m
    ms = [qalsh_params(60000, c=c).m for c in (3.0, 2.0, 1.5)]
    assert ms[0] < ms[1] < ms[2]


def test_params_default_beta_is_capped_for_tiny_n():
    assert qalsh_params(5).beta == 0.5
    assert qalsh_params(200).beta == 0.5
    assert qalsh_params(201).beta == pytest.approx(100 / 201)


def test_params_dataclass_is_frozen_validated_and_round_trips():
    p = qalsh_params(60000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.m = 3
    assert QALSHParams(**p.to_dict()) == p
    with pytest.raises(ValueError, match=r"^l must be in 1\.\.m"):
        QALSHParams(**dict(p.to_dict(), l=p.m + 1))
    with pytest.raises(ValueError, match=r"^l must"):
        QALSHParams(**dict(p.to_dict(), l=0))
    with pytest.raises(ValueError, match=r"^c \("):
        QALSHParams(**dict(p.to_dict(), c=1.0))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10**9), c=st.floats(1.05, 10.0),
       delta=st.floats(0.001, 0.49))
def test_params_invariants_hold_for_any_valid_input(n, c, delta):
    p = qalsh_params(n, c=c, delta=delta)
    assert 0.0 < p.p2 < p.p1 < 1.0
    assert p.p2 < p.alpha < p.p1
    assert 1 <= p.l <= p.m
    assert p.l == math.ceil(p.alpha * p.m)
