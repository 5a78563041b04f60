"""The PII gateway stage: protect what goes to the model, restore what comes back.

Fails closed: if detection raises or exceeds the policy's time budget the request is
refused with a 503 naming the stage, never passed through unmasked.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from luodi.config.privacy import PrivacySettings
from luodi.errors import InvalidRequestError, LuodiError
from luodi.privacy.analyzer import Analyzer
from luodi.privacy.anonymizer import AnonymizedText, Anonymizer
from luodi.privacy.errors import PIIBlockedError, PIIUnavailableError
from luodi.privacy.finding import Finding
from luodi.privacy.operators import OperatorContext
from luodi.privacy.policy import Policy
from luodi.privacy.registry import RecognizerRegistry
from luodi.privacy.restorer import OutputMasker, StreamRestorer
from luodi.privacy.vault import PseudonymOwner, PseudonymVault, build_vault

__all__ = ["PIIStage", "ProtectedInput"]

# On output a new value gets no pseudonym (it would need the vault mid-stream), and a
# numbered tag could be mistaken for one: tag-writing operators write ``<TYPE>`` instead.
_OUTPUT_OPERATOR = {"pseudonym": "type_tag", "replace": "type_tag"}


@dataclass
class ProtectedInput:
    """What the stage made of a request: masked copies, findings, and a way back.

    Attributes:
        messages: masked copies of the chat messages (None for ``protect_text``).
        text: the masked text (None for ``protect_messages``).
        value: the masked copy of a JSON value (``protect_json``; None otherwise).
        findings: entity type -> count found in the input (for the audit record).
        policy: name of the policy applied.
        conversation_id: the conversation whose pseudonyms were used (as the caller
            named it; the vault keeps it under the owner's scope).
    """

    messages: list[dict[str, Any]] | None
    text: str | None
    findings: dict[str, int]
    policy: str
    conversation_id: str
    value: Any = None
    _mapping: dict[str, str] = field(default_factory=dict, repr=False)
    _masker: OutputMasker | None = field(default=None, repr=False)

    def restorer(self) -> StreamRestorer:
        """A fresh restorer for one response (``feed``/``flush`` or ``restore``)."""
        return StreamRestorer(self._mapping, self._masker)

    def restore(self, text: str) -> str:
        """A complete answer, output-masked if the policy says so, with tags restored."""
        return self.restorer().restore_whole(text)

    def restore_tool_calls(self, tool_calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Copies of ``tool_calls`` with pseudonyms in ``function.arguments`` restored."""
        restorer = StreamRestorer(self._mapping)
        out = copy.deepcopy([dict(c) for c in tool_calls])
        for call in out:
            fn = call.get("function")
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                fn["arguments"] = restorer.restore(fn["arguments"])
        return out


@dataclass(frozen=True)
class _Runtime:
    """Everything ``reload`` replaces, swapped in one assignment."""

    settings: PrivacySettings
    analyzer: Analyzer
    policies: dict[str, Policy]
    residency: Policy


class _Table:
    """A Pseudonymizer over tags already assigned by the vault for this request."""

    def __init__(self, table: Mapping[tuple[str, str], str]) -> None:
        self._table = table

    def pseudonym(self, entity_type: str, value: str) -> str:
        return self._table[(entity_type, value)]


class PIIStage:
    """Analyze, block, anonymize and restore, by named policy.

    Build with ``PIIStage.from_settings``; share one instance across requests. It holds
    no per-request state: pseudonyms live in the vault, keyed by conversation.
    """

    def __init__(self, settings: PrivacySettings, vault: PseudonymVault) -> None:
        self.vault = vault
        self._runtime = self._build(settings)

    @classmethod
    def from_settings(cls, settings: PrivacySettings) -> PIIStage:
        """The stage the settings describe. Raises ConfigError for a bad custom rule."""
        return cls(settings, build_vault(settings.vault))

    @staticmethod
    def _build(settings: PrivacySettings) -> _Runtime:
        registry = RecognizerRegistry.with_rules(
            settings.custom_rules, phone_regions=settings.phone_regions
        )
        return _Runtime(
            settings=settings,
            analyzer=Analyzer(registry),
            policies={n: Policy.from_settings(n, p) for n, p in settings.policies.items()},
            # Text bound off the premises: a mistyped ID still identifies a person.
            residency=Policy.from_settings(
                "residency", settings.residency, near_misses_default=True
            ),
        )

    def reload(self, settings: PrivacySettings) -> None:
        """Swap in new policies and custom rules; requests in flight finish on the old.

        Raises ConfigError (naming the rule) and keeps the old configuration if a
        custom rule does not compile. The vault and its pseudonyms are kept.
        """
        self._runtime = self._build(settings)

    @property
    def settings(self) -> PrivacySettings:
        """The settings currently in force."""
        return self._runtime.settings

    @property
    def analyzer(self) -> Analyzer:
        """The analyzer currently in force (for the library and the API)."""
        return self._runtime.analyzer

    def policy(self, name: str | None = None, *, force: bool = False) -> Policy:
        """The named policy (the default when None), plus residency when ``force``."""
        rt = self._runtime
        chosen = name or rt.settings.default_policy
        found = rt.policies.get(chosen)
        if found is None:
            raise PIIUnavailableError(f"pii: unknown PII policy {chosen!r}")
        return found.with_residency(rt.residency) if force else found

    async def protect_text(
        self,
        text: str,
        *,
        policy: str | None = None,
        conversation_id: str,
        owner: PseudonymOwner | None = None,
        force: bool = False,
    ) -> ProtectedInput:
        """Protect one text (completions prompt, embeddings input, a document).

        ``owner`` binds the conversation's pseudonyms to one API key (see
        ``protect_messages``).

        Raises:
            PIIBlockedError: the text holds an entity the policy blocks.
            PIIUnavailableError: detection failed or timed out.
        """
        pol = self.policy(policy, force=force)
        done, result = await self._protect([text], pol, conversation_id, owner, force=force)
        result.text = done[0].text
        return result

    async def protect_json(
        self,
        value: Any,
        *,
        policy: str | None = None,
        conversation_id: str,
        owner: PseudonymOwner | None = None,
        force: bool = False,
    ) -> ProtectedInput:
        """Protect every string leaf of a JSON value (tool definitions, a response_format
        schema, stop strings, template arguments); keys and structure are kept.

        A leaf without findings comes back unchanged, so schema vocabulary ("object",
        "string") passes as it is. ``ProtectedInput.value`` is the masked copy.

        Raises:
            PIIBlockedError: a leaf holds an entity the policy blocks.
            PIIUnavailableError: detection failed or timed out.
        """
        box = [copy.deepcopy(value)]
        holes: list[tuple[Any, Any]] = []
        _collect_leaves(box, 0, holes)
        result = await self._fill(holes, [], policy, conversation_id, owner, force=force)
        result.value = box[0]
        return result

    async def protect_messages(
        self,
        messages: list[dict[str, Any]],
        *,
        policy: str | None = None,
        conversation_id: str,
        owner: PseudonymOwner | None = None,
        force: bool = False,
    ) -> ProtectedInput:
        """Protect OpenAI chat messages: every string a message carries but its ``role``
        and parts' ``type`` (contents, text parts, ``name``, ``reasoning_content``,
        tool-call ids and names, ``function.arguments`` by its JSON string leaves).

        The input list is not modified; ``ProtectedInput.messages`` holds masked copies.

        Pseudonyms are kept per (``owner``, ``conversation_id``): the restorer gives back
        only values this owner sent in this conversation, so another key that names the
        same conversation id and sends ``<PHONE_1>`` gets its own value or the bare tag,
        never this one's. The gateway passes the request's ``Principal``; ``None`` (a
        document, a CLI run) is one shared scope and must not be used for client traffic.

        Raises:
            PIIBlockedError: a message holds an entity the policy blocks.
            PIIUnavailableError: detection failed or timed out.
        """
        copies = copy.deepcopy(messages)
        holes: list[tuple[Any, Any]] = []
        finishers: list[Callable[[], None]] = []
        for message in copies:
            _collect_message(message, holes, finishers)
        result = await self._fill(holes, finishers, policy, conversation_id, owner, force=force)
        result.messages = copies
        return result

    async def _fill(
        self,
        holes: list[tuple[Any, Any]],
        finishers: list[Callable[[], None]],
        policy: str | None,
        conversation_id: str,
        owner: PseudonymOwner | None,
        *,
        force: bool,
    ) -> ProtectedInput:
        """Protect the text at each (container, key) hole in place, then run finishers."""
        pol = self.policy(policy, force=force)
        done, result = await self._protect(
            [str(c[k]) for c, k in holes], pol, conversation_id, owner, force=force
        )
        for (container, key), new in zip(holes, done, strict=True):
            container[key] = new.text
        for finish in finishers:
            finish()
        return result

    async def analyze(
        self, text: str, *, policy: str | None = None, entities: Sequence[str] | None = None
    ) -> list[Finding]:
        """Findings in ``text`` for the policy's entities (or ``entities``), fail-closed."""
        pol = self.policy(policy)
        wanted = list(entities) if entities is not None else sorted(pol.entities)
        (found,) = await self._detect(self._runtime.analyzer, [text], wanted, pol)
        return found

    async def anonymize(
        self,
        text: str,
        *,
        policy: str | None = None,
        operators: Mapping[str, str] | None = None,
        conversation_id: str | None = None,
        owner: PseudonymOwner | None = None,
    ) -> tuple[AnonymizedText, dict[str, int]]:
        """Anonymize one text for another system (the ``/v1/pii/anonymize`` API).

        Args:
            text: the text.
            policy: policy whose entities, blocks and budget apply (default policy if None).
            operators: entity type -> operator, replacing the policy's choice (and its
                entity list) when given.
            conversation_id: needed by the ``pseudonym`` operator, whose tags it scopes.
            owner: the caller; its conversations are its own, so a conversation id
                cannot be used to probe what another key's conversation holds.

        Returns:
            The anonymized text with its replacements, and the counts of findings.

        Raises:
            InvalidRequestError: ``pseudonym`` requested without a conversation id.
            PIIBlockedError, PIIUnavailableError: as for ``protect_text``.
        """
        pol = self.policy(policy)
        if operators is not None:
            pol = dataclasses.replace(pol, operators=dict(operators), on_input=True)
        if "pseudonym" in pol.operators.values() and not conversation_id:
            raise InvalidRequestError(
                "the pseudonym operator needs a conversation_id", param="conversation_id"
            )
        pol = dataclasses.replace(pol, on_input=True, on_output=False)
        done, result = await self._protect([text], pol, conversation_id or "", owner, force=True)
        return done[0], result.findings

    async def close(self) -> None:
        """Release the vault's connections."""
        await self.vault.close()

    async def _protect(
        self,
        texts: list[str],
        pol: Policy,
        conversation_id: str,
        owner: PseudonymOwner | None,
        *,
        force: bool,
    ) -> tuple[list[AnonymizedText], ProtectedInput]:
        rt = self._runtime
        result = ProtectedInput(None, None, {}, pol.name, conversation_id)
        if not rt.settings.enabled and not force:
            return [AnonymizedText(t) for t in texts], result
        per_text = await self._detect(rt.analyzer, texts, sorted(pol.entities), pol)
        counts: Counter[str] = Counter(f.entity_type for fs in per_text for f in fs)
        result.findings = dict(counts)
        blocked = sorted(pol.block.intersection(counts))
        if blocked:
            raise PIIBlockedError(blocked, policy=pol.name)
        ctx = self._context(pol)
        scope = self.vault.scope(owner, conversation_id)
        done = [AnonymizedText(t) for t in texts]
        if pol.on_input:
            pairs = [
                (f.entity_type, text[f.start : f.end])
                for text, fs in zip(texts, per_text, strict=True)
                for f in fs
                if pol.operators.get(f.entity_type) == "pseudonym"
            ]
            if pairs:
                ctx.pseudonymizer = _Table(await self.vault.assign(scope, pairs))
            anonymizer = Anonymizer(ctx)
            done = [
                anonymizer.anonymize(text, fs, pol.operators)
                for text, fs in zip(texts, per_text, strict=True)
            ]
        if "pseudonym" in pol.operators.values():
            result._mapping = await self.vault.mapping(scope)
        if pol.on_output:
            result._masker = self._output_masker(rt.analyzer, pol)
        return done, result

    async def _detect(
        self, analyzer: Analyzer, texts: list[str], entities: list[str], pol: Policy
    ) -> list[list[Finding]]:
        def run() -> list[list[Finding]]:
            return [
                analyzer.analyze(
                    t, entities=entities, min_score=pol.min_score, near_misses=pol.near_misses
                )
                for t in texts
            ]

        if not any(texts):
            return [[] for _ in texts]
        chars = sum(len(t) for t in texts)
        budget = pol.budget_s(chars)
        try:
            return await asyncio.wait_for(asyncio.to_thread(run), budget)
        except TimeoutError as exc:
            raise PIIUnavailableError(
                f"pii: detection exceeded its {budget * 1000:.0f} ms budget for "
                f"{chars} characters; request refused rather than sent unmasked",
                retry_after=1.0,
            ) from exc
        except LuodiError:
            raise
        except Exception as exc:  # fail closed: any detector bug refuses the request
            raise PIIUnavailableError(
                f"pii: detection failed ({type(exc).__name__}); request refused"
            ) from exc

    def _context(self, pol: Policy) -> OperatorContext:
        secret = self._runtime.settings.hash_secret
        return OperatorContext(
            mask_keep_start=pol.mask_keep_start,
            mask_keep_end=pol.mask_keep_end,
            mask_char=pol.mask_char,
            hash_secret=secret.get_secret_value().encode() if secret else None,
        )

    def _output_masker(self, analyzer: Analyzer, pol: Policy) -> OutputMasker:
        operators = {e: _OUTPUT_OPERATOR.get(op, op) for e, op in pol.operators.items()}
        ctx = self._context(pol)
        entities = sorted(pol.operators)

        def mask(segment: str) -> tuple[str, dict[str, int]]:
            try:
                found = analyzer.analyze(
                    segment,
                    entities=entities,
                    min_score=pol.min_score,
                    near_misses=pol.near_misses,
                )
                done: AnonymizedText = Anonymizer(ctx).anonymize(segment, found, operators)
            except LuodiError:
                raise
            except Exception as exc:  # fail closed on output too: stop the stream
                raise PIIUnavailableError(
                    f"pii: output masking failed ({type(exc).__name__})"
                ) from exc
            return done.text, done.counts()

        return mask


_VOCABULARY = frozenset({"role", "type"})
"""Message and part keys whose values are protocol words, not client text."""


def _collect_message(
    message: dict[str, Any], holes: list[tuple[Any, Any]], finishers: list[Callable[[], None]]
) -> None:
    """Record every text-bearing place of one chat message as (container, key).

    Everything but ``role`` and a part's ``type``: a field the gateway does not know
    (a new OpenAI field) is masked too rather than let through unseen.
    """
    for key, value in message.items():
        if key == "role":
            continue
        if key == "tool_calls" and isinstance(value, list):
            for call in value:
                if not isinstance(call, dict):
                    continue
                for ck, cv in call.items():
                    fn = cv if ck == "function" and isinstance(cv, dict) else None
                    if fn is None:
                        if ck != "type":
                            _collect_leaves(call, ck, holes)
                        continue
                    for fk in fn:
                        if fk == "arguments" and isinstance(fn[fk], str):
                            _collect_json(fn, "arguments", holes, finishers)
                        else:
                            _collect_leaves(fn, fk, holes)
            continue
        if key == "content" and isinstance(value, list):
            for part in value:
                if isinstance(part, dict):
                    for pk in part:
                        if pk not in _VOCABULARY:
                            _collect_leaves(part, pk, holes)
            continue
        _collect_leaves(message, key, holes)


def _collect_leaves(container: Any, key: Any, holes: list[tuple[Any, Any]]) -> None:
    """Record every string leaf under ``container[key]``."""
    stack: list[tuple[Any, Any]] = [(container, key)]
    while stack:
        parent, k = stack.pop()
        value = parent[k]
        if isinstance(value, str):
            holes.append((parent, k))
        elif isinstance(value, dict):
            stack.extend((value, kk) for kk in value)
        elif isinstance(value, list):
            stack.extend((value, i) for i in range(len(value)))


def _collect_json(
    container: dict[str, Any],
    key: str,
    holes: list[tuple[Any, Any]],
    finishers: list[Callable[[], None]],
) -> None:
    """Protect the string leaves of a JSON document held as a string (tool arguments),
    so escaped characters are seen decoded and the result is still valid JSON."""
    try:
        doc = json.loads(container[key])
    except ValueError:
        holes.append((container, key))
        return
    box = [doc]
    _collect_leaves(box, 0, holes)

    def finish() -> None:
        container[key] = json.dumps(box[0], ensure_ascii=False)

    finishers.append(finish)
