"""The set of recognizers an analyzer runs: built-ins plus custom rules from config."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from luodi.config.privacy import CustomRuleSettings
from luodi.errors import ConfigError
from luodi.privacy.checksums import VALIDATORS
from luodi.privacy.recognizer import Pattern, PatternRecognizer, Recognizer
from luodi.privacy.recognizers import DEFAULT_PHONE_REGIONS, builtin_recognizers

__all__ = ["RecognizerRegistry", "recognizer_from_rule"]


def recognizer_from_rule(rule: CustomRuleSettings) -> PatternRecognizer:
    """A config rule as a recognizer; raises ConfigError naming the rule if it cannot work."""
    flags = re.IGNORECASE if rule.ignore_case else 0
    try:
        re.compile(rule.regex, flags)
    except re.error as exc:
        raise ConfigError(
            f"custom PII rule {rule.name!r}: bad regex {rule.regex!r}: {exc}"
        ) from exc
    if rule.validator is not None and rule.validator not in VALIDATORS:
        raise ConfigError(f"custom PII rule {rule.name!r}: unknown validator {rule.validator!r}")
    return PatternRecognizer(
        name=f"custom:{rule.name}",
        entity_type=rule.name,
        patterns=(Pattern("regex", rule.regex, rule.score, flags),),
        context=rule.context,
        validator=VALIDATORS[rule.validator] if rule.validator else None,
    )


class RecognizerRegistry:
    """An ordered, name-keyed collection of recognizers."""

    def __init__(self, recognizers: Iterable[Recognizer] = ()) -> None:
        self._by_name: dict[str, Recognizer] = {}
        for r in recognizers:
            self.add(r)

    @classmethod
    def with_rules(
        cls,
        rules: Iterable[CustomRuleSettings] = (),
        *,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
    ) -> RecognizerRegistry:
        """Every built-in recognizer plus one per custom rule (all compiled now).

        ``phone_regions`` are the regions tried for phone numbers written without a
        country code (``privacy.phone_regions``); an unknown one raises ConfigError.
        """
        registry = cls(builtin_recognizers(phone_regions))
        for rule in rules:
            registry.add(recognizer_from_rule(rule))
        return registry

    def add(self, recognizer: Recognizer) -> None:
        """Add or replace (same name) a recognizer."""
        self._by_name[recognizer.name] = recognizer

    def remove(self, name: str) -> None:
        """Drop a recognizer by name; unknown names are ignored."""
        self._by_name.pop(name, None)

    def for_entities(self, entities: Iterable[str] | None) -> list[Recognizer]:
        """The recognizers that can emit any of ``entities`` (all of them for None)."""
        if entities is None:
            return list(self._by_name.values())
        wanted = set(entities)
        return [r for r in self._by_name.values() if wanted.intersection(r.entity_types)]

    @property
    def entity_types(self) -> set[str]:
        """Every entity type some recognizer can emit."""
        return {t for r in self._by_name.values() for t in r.entity_types}

    def __iter__(self) -> Iterator[Recognizer]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)
