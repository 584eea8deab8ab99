"""The result of a diagnosis: posteriors, priors and red flags, as labelled pandas objects."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from html import escape

import numpy as np
import pandas as pd

__all__ = ["Diagnosis", "RedFlag"]

DISCLAIMER = (
    "Research and teaching tool, not a medical device: red flags come first, "
    "whatever the probabilities say."
)


@dataclass(frozen=True)
class RedFlag:
    """A red flag found in the evidence, with what to do about it."""

    name: str
    description: str
    advice: str

    def __str__(self) -> str:
        return f"RED FLAG {self.name}: {self.advice}"


_REORDERED: dict[tuple[int, bytes], tuple[pd.Index, pd.Index]] = {}


def _reordered(index: pd.Index, order: np.ndarray) -> pd.Index:
    """``index.take(order)``, remembered: a model ranks its causes in few distinct orders.

    The cache holds the index itself, so its ``id`` cannot be reused by another object while cached.
    """
    key = (id(index), order.tobytes())
    found = _REORDERED.get(key)
    if found is None or found[0] is not index:
        if len(_REORDERED) > 4096:
            _REORDERED.clear()
        found = _REORDERED[key] = (index, index.take(order))
    return found[1]


@dataclass(frozen=True)
class Diagnosis:
    """Posterior probabilities of every cause for one patient.

    Built by :meth:`Model.diagnose`; the pandas views are made on first use.

    Attributes
    ----------
    posterior : Series
        P(cause present | evidence), sorted from most to least probable.
    prior : Series
        P(cause present | context only), in the same order.
    red_flags : list of RedFlag
        Red flags observed present, each with urgent advice; ``[]`` when none.
        Checked before and independently of the probabilities.
    evidence : dict
        The evidence as validated (hard states by variable; soft ones marked).
    """

    causes: pd.Index = field(repr=False)
    posterior_values: np.ndarray = field(repr=False)
    prior_values: np.ndarray = field(repr=False)
    red_flags: list[RedFlag] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)

    @functools.cached_property
    def _order(self) -> tuple[np.ndarray, pd.Index]:
        order = np.argsort(-self.posterior_values, kind="stable")
        return order, _reordered(self.causes, order)

    @functools.cached_property
    def posterior(self) -> pd.Series:
        """P(cause present | evidence), most probable first."""
        order, index = self._order
        return pd.Series(self.posterior_values[order], index=index, name="posterior", copy=False)

    @functools.cached_property
    def prior(self) -> pd.Series:
        """P(cause present | context only), in the order of :attr:`posterior`."""
        order, index = self._order
        return pd.Series(self.prior_values[order], index=index, name="prior", copy=False)

    def to_frame(self) -> pd.DataFrame:
        """Table of causes: prior, posterior, likelihood ratio and rank.

        The likelihood ratio is posterior odds over prior odds: how strongly
        the findings (beyond the context) moved each cause.
        """
        prior = self.prior.reindex(self.posterior.index)
        post = self.posterior
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (post / (1 - post)) / (prior / (1 - prior))
        frame = pd.DataFrame(
            {
                "prior": prior,
                "posterior": post,
                "likelihood_ratio": ratio,
                "rank": post.rank(ascending=False, method="min").astype(int),
            }
        )
        frame.index.name = "cause"
        return frame

    @property
    def top(self) -> str:
        """The most probable cause."""
        return str(self.causes[int(np.argmax(self.posterior_values))])

    def __repr__(self) -> str:
        lines = [str(flag) for flag in self.red_flags]
        lines.append(self.to_frame().round(3).to_string())
        lines.append(DISCLAIMER)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        flags = "".join(f"<p style='color:#b00020'><b>RED FLAG {escape(f.name)}</b>: {escape(f.advice)}</p>" for f in self.red_flags)
        table = self.to_frame().to_html(float_format=lambda x: f"{x:.3f}")
        return f"{flags}{table}<p><i>{escape(DISCLAIMER)}</i></p>"
