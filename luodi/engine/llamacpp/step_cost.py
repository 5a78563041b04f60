"""What a step's tokens cost, learnt from the engine's own step times.

A decode step's time grows with its tokens as ``fixed + per_token * n``: the fixed part
is reading the weights and the step's overheads, the per-token part the arithmetic.
On a GPU the fixed part dominates and a draft token is nearly free; on a small CPU a
model with a large vocabulary spends most of a step on per-token work, and a draft
token costs almost as much as a step of its own. The ratio ``fixed / per_token``
("fixed tokens") decides whether drafting pays, so it is fitted online by exponentially
weighted least squares over steps whose every token yields logits (decodes and
drafts); a prior stands in until the steps vary enough to fit.

Prompt tokens that ride along with decodes yield no logits and cost less each; their
cost relative to a decode token (``prefill_share``) is the running mean of what such
steps took beyond the decode fit, per prompt token. Together they say how many prompt
tokens a step can carry before its decodes' cadence suffers (``prefill_budget``).
"""

from __future__ import annotations

__all__ = ["StepCost"]


class StepCost:
    """Online fits of step seconds against tokens.

    Args:
        prior_fixed_tokens: ``fixed / per_token`` assumed until the fit has data.
        prior_prefill_share: A prompt token's cost relative to a decode token, likewise.
        halflife_steps: Observations lose half their weight after this many steps.
        fixed: A known ``fixed / per_token``: no fit, this value always.
    """

    def __init__(
        self,
        prior_fixed_tokens: float = 2.0,
        prior_prefill_share: float = 0.5,
        halflife_steps: float = 200.0,
        *,
        fixed: float | None = None,
    ) -> None:
        self._prior = prior_fixed_tokens if fixed is None else fixed
        self._prior_share = prior_prefill_share
        self._fixed = fixed
        self._decay = 0.5 ** (1.0 / halflife_steps)
        self._w = self._n = self._nn = self._t = self._nt = 0.0
        self._share_w = self._share = 0.0

    def observe(self, n_tokens: int, seconds: float, *, n_prompt: int = 0) -> None:
        """One decode took ``seconds``: ``n_tokens`` tokens with logits (decodes, drafts,
        the last token of each prompt) and ``n_prompt`` prompt tokens without."""
        if n_tokens + n_prompt <= 0 or seconds <= 0.0:
            return
        d = self._decay
        if n_prompt == 0:
            n = float(n_tokens)
            self._w = self._w * d + 1.0
            self._n = self._n * d + n
            self._nn = self._nn * d + n * n
            self._t = self._t * d + seconds
            self._nt = self._nt * d + n * seconds
            return
        fit = self._fit()
        if fit is None:
            return
        fixed_s, per_token_s = fit
        beyond = seconds - fixed_s - per_token_s * n_tokens
        share = max(0.0, beyond / (n_prompt * per_token_s))
        # Weighted by the prompt tokens, so a step carrying one token says little.
        weight = min(1.0, n_prompt / 64)
        self._share_w = self._share_w * d + weight
        self._share = self._share * d + weight * share

    def _fit(self) -> tuple[float, float] | None:
        """(fixed seconds, seconds per token) of decode-only steps; None until they vary."""
        w = self._w
        if w < 8.0:
            return None
        mean_n = self._n / w
        var_n = self._nn / w - mean_n * mean_n
        if var_n < 0.5:  # steps too alike in size to separate the two parts
            return None
        per_token = (self._nt / w - mean_n * self._t / w) / var_n
        if per_token <= 0.0:
            return None
        return max(0.0, self._t / w - per_token * mean_n), per_token

    @property
    def fixed_tokens(self) -> float:
        """How many tokens' worth of work a step costs beyond its tokens (>= 0)."""
        if self._fixed is not None:
            return self._fixed
        fit = self._fit()
        if fit is None:
            return self._prior
        return fit[0] / fit[1]

    @property
    def prefill_share(self) -> float:
        """A prompt token's cost relative to a decode token's."""
        if self._share_w < 4.0:
            return self._prior_share
        return max(0.05, self._share / self._share_w)

    def prefill_budget(self, n_decode: int, slack: float, floor_s: float = 0.0) -> float:
        """Prompt tokens a step of ``n_decode`` decodes may carry while taking at most
        ``1 + slack`` times as long as those decodes alone, or ``floor_s`` longer if
        that is more (once step times are measured: the floor is in seconds)."""
        budget = slack * (self.fixed_tokens + n_decode) / self.prefill_share
        fit = self._fit()
        if fit is not None and floor_s > 0.0:
            budget = max(budget, floor_s / (fit[1] * self.prefill_share))
        return budget
