"""A small GBNF interpreter for tests: does a grammar accept a string?

llama.cpp enforces the grammars during sampling; here we check, without a model,
that the grammars luodi builds accept the outputs they should and refuse the rest.
It covers the GBNF that llama.cpp's JSON-schema converter writes: literals, character
classes, ``.``, rule references, groups, alternation and ``* + ? {m,n}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-"}


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class CharSet:
    ranges: tuple[tuple[str, str], ...]
    negated: bool


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Rep:
    node: object
    low: int
    high: int | None


@dataclass(frozen=True)
class Seq:
    items: tuple[object, ...]


@dataclass(frozen=True)
class Alt:
    options: tuple[Seq, ...]


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.src):
            if self.src[self.i] in " \t\n\r":
                self.i += 1
            elif self.src[self.i] == "#":
                while self.i < len(self.src) and self.src[self.i] != "\n":
                    self.i += 1
            else:
                return

    def char(self) -> str:
        c = self.src[self.i]
        self.i += 1
        if c != "\\":
            return c
        e = self.src[self.i]
        self.i += 1
        if e == "x":
            code, self.i = self.src[self.i : self.i + 2], self.i + 2
            return chr(int(code, 16))
        if e == "u":
            code, self.i = self.src[self.i : self.i + 4], self.i + 4
            return chr(int(code, 16))
        return _ESCAPES[e]

    def alt(self) -> Alt:
        options = [self.seq()]
        while self.i < len(self.src) and self.src[self.i] == "|":
            self.i += 1
            options.append(self.seq())
        return Alt(tuple(options))

    def seq(self) -> Seq:
        items: list[object] = []
        while True:
            self.ws_inline()
            if self.i >= len(self.src) or self.src[self.i] in "|)\n":
                return Seq(tuple(items))
            items.append(self.postfix(self.atom()))

    def ws_inline(self) -> None:
        while self.i < len(self.src) and self.src[self.i] in " \t":
            self.i += 1
        # A rule body continues on the next line only inside parentheses (not used here).

    def atom(self) -> object:
        c = self.src[self.i]
        if c == '"':
            self.i += 1
            out = []
            while self.src[self.i] != '"':
                out.append(self.char())
            self.i += 1
            return Lit("".join(out))
        if c == "[":
            self.i += 1
            negated = self.src[self.i] == "^"
            if negated:
                self.i += 1
            ranges = []
            while self.src[self.i] != "]":
                lo = self.char()
                hi = lo
                if self.src[self.i] == "-" and self.src[self.i + 1] != "]":
                    self.i += 1
                    hi = self.char()
                ranges.append((lo, hi))
            self.i += 1
            return CharSet(tuple(ranges), negated)
        if c == ".":
            self.i += 1
            return CharSet((), True)
        if c == "(":
            self.i += 1
            self.ws()
            inner = self.alt()
            self.ws()
            assert self.src[self.i] == ")", self.src[self.i :][:20]
            self.i += 1
            return inner
        m = re.compile(r"[A-Za-z0-9_-]+").match(self.src, self.i)
        assert m, f"unexpected {self.src[self.i :][:20]!r}"
        self.i = m.end()
        return Ref(m.group())

    def postfix(self, node: object) -> object:
        while self.i < len(self.src):
            c = self.src[self.i]
            if c in "*+?":
                self.i += 1
                node = Rep(node, 1 if c == "+" else 0, 1 if c == "?" else None)
            elif c == "{":
                end = self.src.index("}", self.i)
                body, self.i = self.src[self.i + 1 : end], end + 1
                low, _, high = body.partition(",")
                node = Rep(
                    node, int(low), int(low) if "," not in body else int(high) if high else None
                )
            else:
                return node
        return node


class Grammar:
    """A parsed GBNF grammar; :meth:`accepts` runs it from ``root``."""

    def __init__(self, rules: dict[str, Alt]) -> None:
        self.rules = rules

    @classmethod
    def parse(cls, source: str) -> Grammar:
        """Parse GBNF source, raising ``AssertionError``/``ValueError`` on malformed text."""
        rules: dict[str, Alt] = {}
        for line in source.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, body = line.partition("::=")
            assert sep, f"not a rule: {line!r}"
            p = _Parser(body.strip())
            rules[name.strip()] = p.alt()
            assert p.i == len(p.src), f"trailing text in {line!r}"
        assert "root" in rules, "no root rule"
        for alt in rules.values():
            for ref in _refs(alt):
                assert ref in rules, f"undefined rule {ref!r}"
        return cls(rules)

    def accepts(self, text: str) -> bool:
        """Whether the whole of ``text`` matches ``root``."""

        @cache
        def rule(name: str, pos: int) -> frozenset[int]:
            return frozenset(match(self.rules[name], pos))

        def match(node: object, pos: int) -> set[int]:
            if isinstance(node, Lit):
                return {pos + len(node.text)} if text.startswith(node.text, pos) else set()
            if isinstance(node, CharSet):
                if pos >= len(text):
                    return set()
                inside = any(lo <= text[pos] <= hi for lo, hi in node.ranges)
                return {pos + 1} if inside != node.negated else set()
            if isinstance(node, Ref):
                return set(rule(node.name, pos))
            if isinstance(node, Alt):
                return set().union(*(match(o, pos) for o in node.options))
            if isinstance(node, Seq):
                ends = {pos}
                for item in node.items:
                    ends = set().union(*(match(item, e) for e in ends)) if ends else set()
                return ends
            assert isinstance(node, Rep)
            ends, frontier, count = (set() if node.low else {pos}), {pos}, 0
            while frontier and (node.high is None or count < node.high):
                frontier = set().union(*(match(node.node, e) for e in frontier)) - {pos}
                count += 1
                if count >= node.low:
                    ends |= frontier
                if count > len(text) + 1:
                    break
            return ends

        return len(text) in rule("root", 0)


def _refs(node: object) -> set[str]:
    if isinstance(node, Ref):
        return {node.name}
    if isinstance(node, Alt):
        return set().union(*(_refs(o) for o in node.options))
    if isinstance(node, Seq):
        return set().union(*(_refs(i) for i in node.items)) if node.items else set()
    if isinstance(node, Rep):
        return _refs(node.node)
    return set()
