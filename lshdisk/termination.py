"""Termination policies: when a c-k-ANN search over collision counts stops.

A policy answers one question after each round of a search ("stop now?") from a read-only
:class:`lshdisk.search.RoundView`, and gives the candidate cap (T2) the search enforces
inside its scans. Every method's search loop (:class:`lshdisk.search.RoundSearch`) asks the
same questions, so a new policy (a tuned budget, a learned rule) is a new class here or in a
module of its own, and no searcher changes.

The contract, :class:`TerminationPolicy`:

- ``candidate_cap(k, n, beta)``: the most candidates a query may verify (T2). A search with
  ``max_candidates`` set uses that instead.
- ``should_stop(view)``: after each round, once its candidates are verified. The search also
  stops at the cap and when every index entry has been counted, whatever the policy says.
- ``radius_limit(view)``: the radius past which the policy would stop whatever else happens
  (+inf when it has none). Rounds of fixed radius ignore it; I-LSH's incremental walk pauses
  there, and the policy must then stop (``should_stop`` true at a view whose ``c_radius``
  equals the limit), else the walk ends the search itself.
- ``cap_after(view)``, optional: after a round the search did not stop at, a new candidate
  cap for the rest of the query (None: unchanged), clamped to [1, the first cap]. The scans
  stop at it inside the next rounds, as at T2; a cap at or below the candidates found ends
  the search. For rules that predict a query's budget after a warm-up.
- ``start_radius(features)``, optional: once per query, before its first round, the radius
  (data units; None: the searcher's own) at which the rounds start, from the searcher's
  ``start_features`` (:class:`lshdisk.learned_start.LearnedStart` wraps any policy with one).

Implemented: :class:`PaperTermination` (T1 and T2 of C2LSH, QALSH and I-LSH, the default),
:class:`CandidateBudget` (T2 only: verify up to the cap, widening rounds as needed), and the
baselines a learned rule is measured against: :class:`PageBudget` (a fixed page budget per
query) and :class:`Patience` (stop after N rounds without a change of the top-k). The
learned rule, :class:`lshdisk.learned_termination.LearnedBudget` (a candidate cap predicted
per query through ``cap_after``), lives in a module of its own.
"""

import math
from typing import Protocol, runtime_checkable

__all__ = ["TerminationPolicy", "PaperTermination", "CandidateBudget", "PageBudget", "Patience",
           "paper_cap", "POLICIES", "termination_policy"]


def paper_cap(k, n, beta):
    """T2 of the papers: k + ceil(beta n) candidates (beta n rounded up, with 1e-9 slack for
    the float product)."""
    return k + int(math.ceil(beta * n - 1e-9))


@runtime_checkable
class TerminationPolicy(Protocol):
    """When a search stops; see the module docstring for the contract."""

    name: str

    def candidate_cap(self, k, n, beta):
        """int: the most candidates a query may verify."""

    def should_stop(self, view):
        """bool: stop after this round (``view``: a :class:`lshdisk.search.RoundView`)."""

    def radius_limit(self, view):
        """float: the radius at which the policy stops whatever happens (+inf: none)."""


class PaperTermination:
    """T1 and T2 (Gan et al. 2012, Section 4; Huang et al. 2015, Section 5; Liu et al. 2019).

    T1: at least k verified candidates lie within ``view.c_radius`` (c R for C2LSH and
    QALSH; R for I-LSH, see :mod:`lshdisk.ilsh`). T2: k + beta n candidates.
    """

    name = "paper"
    __slots__ = ()

    def candidate_cap(self, k, n, beta):
        return paper_cap(k, n, beta)

    def should_stop(self, view):
        return view.n_verified >= view.k and view.kth_distance <= view.c_radius

    def radius_limit(self, view):
        if view.n_verified < view.k:
            return math.inf
        return view.kth_distance / view.c

    def __repr__(self):
        return "PaperTermination()"


class CandidateBudget:
    """T2 alone: the search widens its rounds until the cap (``max_candidates``, else
    k + beta n) is reached or every entry is counted. For recall-versus-cost sweeps and for
    an oracle of what a query needs."""

    name = "budget"
    __slots__ = ()

    def candidate_cap(self, k, n, beta):
        return paper_cap(k, n, beta)

    def should_stop(self, view):
        return False

    def radius_limit(self, view):
        return math.inf

    def __repr__(self):
        return "CandidateBudget()"


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class PageBudget(CandidateBudget):
    """A fixed page budget: stop after the first round at whose end the query has read at
    least ``max_pages`` pages (or at T2). The budget is checked between rounds, so a query may
    read past it by up to one round.

    Raises
    ------
    ValueError
        If ``max_pages`` is not a positive int.
    """

    name = "pages"
    __slots__ = ("max_pages",)

    def __init__(self, max_pages):
        self.max_pages = _positive_int(max_pages, "max_pages")

    def should_stop(self, view):
        return view.page_reads >= self.max_pages

    def __repr__(self):
        return f"PageBudget({self.max_pages})"


class Patience(CandidateBudget):
    """Stop once k candidates are verified and the top-k has not changed for ``rounds``
    rounds (or at T2): the patience rule of graph-search early termination, over rounds of
    virtual rehashing (for I-LSH, walk segments).

    Raises
    ------
    ValueError
        If ``rounds`` is not a positive int.
    """

    name = "patience"
    __slots__ = ("rounds",)

    def __init__(self, rounds):
        self.rounds = _positive_int(rounds, "rounds")

    def should_stop(self, view):
        return view.n_verified >= view.k and view.stale_rounds >= self.rounds

    def __repr__(self):
        return f"Patience({self.rounds})"


#: Policies by name, for the CLI and ``index.search(..., termination="budget")``.
POLICIES = {"paper": PaperTermination, "budget": CandidateBudget}


def termination_policy(spec):
    """A policy from a name in :data:`POLICIES` or a policy object.

    Raises
    ------
    ValueError
        For an unknown name. TypeError for an object that is not a policy.
    """
    if isinstance(spec, str):
        if spec not in POLICIES:
            raise ValueError(f"termination must be one of {', '.join(POLICIES)} or a policy "
                             f"object, got {spec!r}")
        return POLICIES[spec]()
    if not isinstance(spec, TerminationPolicy):
        raise TypeError(f"termination must be a policy name or an object with candidate_cap, "
                        f"should_stop and radius_limit, got {type(spec).__name__}")
    return spec
