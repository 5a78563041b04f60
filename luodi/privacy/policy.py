"""A policy as the stage applies it: entities, operators, directions, blocks, budget."""

from __future__ import annotations

from dataclasses import dataclass

from luodi.config.privacy import PolicySettings

__all__ = ["Policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Immutable, resolved form of ``PolicySettings``."""

    name: str
    operators: dict[str, str]
    """Entity type -> operator name, one entry for every protected entity."""
    block: frozenset[str]
    on_input: bool
    on_output: bool
    timeout_s: float
    min_score: float
    mask_keep_start: int = 3
    mask_keep_end: int = 4
    mask_char: str = "*"
    near_misses: bool = False
    """Also protect checksum-failing look-alikes named by a context word."""
    timeout_s_per_char: float = 5e-6
    """Budget added per character of input (``timeout_ms_per_mb`` / 10**6 / 1000)."""

    def budget_s(self, chars: int) -> float:
        """Detection budget for ``chars`` characters: ``timeout_s`` plus a share per
        character, so the budget grows with the input and a long prompt is not refused
        for its length alone."""
        return self.timeout_s + self.timeout_s_per_char * chars

    @classmethod
    def from_settings(
        cls, name: str, s: PolicySettings, *, near_misses_default: bool = False
    ) -> Policy:
        """Resolve defaults: every listed entity gets its operator, and ``near_misses``
        left unset takes ``near_misses_default`` (true for the residency policy)."""
        return cls(
            name=name,
            operators={e: s.operators.get(e, s.default_operator) for e in s.entities},
            block=frozenset(s.block),
            on_input=s.direction in ("input", "both"),
            on_output=s.direction in ("output", "both"),
            timeout_s=s.timeout_ms / 1000.0,
            min_score=s.min_score,
            mask_keep_start=s.mask_keep_start,
            mask_keep_end=s.mask_keep_end,
            mask_char=s.mask_char,
            near_misses=near_misses_default if s.near_misses is None else s.near_misses,
            timeout_s_per_char=s.timeout_ms_per_mb / 1e9,
        )

    @property
    def entities(self) -> frozenset[str]:
        """Entity types this policy must detect: the protected ones and the blocked ones."""
        return frozenset(self.operators) | self.block

    def with_residency(self, residency: Policy) -> Policy:
        """This policy, plus reversible pseudonyms for every residency entity it leaves
        unprotected, applied on input whatever its own direction.

        Entities this policy already replaces keep its operator (the stricter choice is
        the key owner's to make); ``block`` and the output direction are kept.
        Near-misses are protected if either policy asks for them.
        """
        operators = dict(self.operators)
        for entity in residency.operators:
            operators.setdefault(entity, "pseudonym")
        return Policy(
            name=f"{self.name}+{residency.name}",
            operators=operators,
            block=self.block | residency.block,
            on_input=True,
            on_output=self.on_output,
            timeout_s=min(self.timeout_s, residency.timeout_s),
            min_score=min(self.min_score, residency.min_score),
            mask_keep_start=self.mask_keep_start,
            mask_keep_end=self.mask_keep_end,
            mask_char=self.mask_char,
            near_misses=self.near_misses or residency.near_misses,
            timeout_s_per_char=min(self.timeout_s_per_char, residency.timeout_s_per_char),
        )
