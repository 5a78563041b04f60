"""A large bilingual service-desk corpus made from the material in benchmarks/corpora.

Nothing is downloaded: the shop's FAQ (``support/faq.md``), its labelled customer
utterances in Chinese and English (``support/labelled.jsonl``), Presidio's banking
request templates, the prose of ``quantization_text.txt`` and the knowledge-test
fixtures (``tests/fixtures/knowledge``) are recombined, deterministically, into the
two kinds of document a service desk's knowledge base holds:

* ticket digests: a day's tickets, each a heading (ticket number, intent), what the
  customer wrote (two or three utterances of one intent, a request template filled
  with a name, city, card or order number) and the agent's reply (an FAQ paragraph
  and a resolution line with amounts and dates). One ticket is one chunk, about
  100-200 MiniLM tokens.
* articles: FAQ sections, product rows and branch notes, with running prose, chunked
  at the configured size.

Real sentences, a realistic vocabulary (Chinese words, numbers that occur once), and
sizes chosen by the caller; every call with the same arguments returns the same text.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "benchmarks" / "corpora"
FIXTURES = ROOT / "tests" / "fixtures" / "knowledge"

__all__ = ["Material", "documents"]

_NAMES = [
    "张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周杰", "吴霞",
    "Emma Clarke", "Liam Patel", "Sofia Rossi", "Noah Becker", "Mia Dubois", "Lucas Silva",
]  # fmt: skip
_CITIES = [
    "上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "重庆",
    "Hamburg", "Lyon", "Porto", "Leeds", "Utrecht", "Graz",
]  # fmt: skip
_ORGS = ["顺丰速运", "中通快递", "京东物流", "Acme Retail", "Northwind Traders", "Globex"]
_RESOLUTIONS_ZH = [
    "已为客户登记，预计{days}个工作日内处理完毕，金额 {amount} 元。",
    "订单 {order} 已核实，补偿优惠券 {amount} 元已发放。",
    "客户接受方案，工单于 {date} 关闭。",
    "已转交仓库复核，{days} 天后回访客户。",
]
_RESOLUTIONS_EN = [
    "Logged for the customer; expect it within {days} business days, amount {amount} yuan.",
    "Order {order} verified; a {amount} yuan coupon was issued as compensation.",
    "The customer accepted the solution; ticket closed on {date}.",
    "Passed to the warehouse for review; follow-up call in {days} days.",
]


class Material:
    """The sentences and paragraphs the corpus is made of, read once."""

    def __init__(self) -> None:
        support = CORPORA / "support"
        self.utterances: dict[str, list[str]] = {}
        for line in (support / "labelled.jsonl").read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                self.utterances.setdefault(row["intent"], []).append(row["text"])
        self.faq: list[tuple[str, list[str]]] = []
        for section in (support / "faq.md").read_text("utf-8").split("\n# "):
            head, _, body = section.lstrip("# ").partition("\n")
            paragraphs = [p.strip() for p in body.split("\n") if p.strip()]
            if paragraphs:
                self.faq.append((head.strip(), paragraphs))
        self.templates = [
            t.strip()
            for t in (CORPORA / "presidio_evaluator_templates.txt").read_text("utf-8").splitlines()
            if t.strip()
        ]
        prose = (CORPORA / "quantization_text.txt").read_text("utf-8")
        self.prose = [p.strip() for p in prose.split("\n\n") if p.strip()]
        self.fixture_lines = [
            re.sub(r"<[^>]+>", " ", line).strip()
            for path in sorted(FIXTURES.iterdir())
            if path.name != "LICENSE.md"
            for line in path.read_text("utf-8").splitlines()
            if len(re.sub(r"<[^>]+>", "", line).strip()) > 8
        ]


def _fill(template: str, rng: random.Random) -> str:
    values = {
        "person": rng.choice(_NAMES),
        "name": rng.choice(_NAMES),
        "first_name": rng.choice(_NAMES).split()[0],
        "last_name": rng.choice(_NAMES).split()[-1],
        "city": rng.choice(_CITIES),
        "organization": rng.choice(_ORGS),
        "credit_card_number": " ".join(f"{rng.randrange(10000):04d}" for _ in range(4)),
        "phone_number": f"1{rng.randrange(30, 90)}{rng.randrange(10**8):08d}",
        "address": f"{rng.randrange(1, 300)} {rng.choice(_CITIES)} Road",
        "street_name": f"{rng.choice(_CITIES)} Road",
        "building_number": str(rng.randrange(1, 300)),
        "country": rng.choice(["China", "Germany", "France", "Portugal"]),
        "age": str(rng.randrange(18, 80)),
        "year": str(rng.randrange(1990, 2026)),
        "email": f"user{rng.randrange(10**5)}@example.com",
    }
    return re.sub(r"{{(\w+)}}", lambda m: values.get(m.group(1), rng.choice(_NAMES)), template)


def _ticket(m: Material, rng: random.Random, number: int) -> str:
    intent = rng.choice(sorted(m.utterances))
    said = rng.sample(m.utterances[intent], k=min(len(m.utterances[intent]), rng.randint(2, 3)))
    order = "".join(str(rng.randrange(10)) for _ in range(16))
    head, paragraphs = rng.choice(m.faq)
    zh = rng.random() < 0.5
    resolution = rng.choice(_RESOLUTIONS_ZH if zh else _RESOLUTIONS_EN).format(
        days=rng.randint(1, 15),
        amount=rng.randrange(5, 3000),
        order=order,
        date=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    )
    customer = " ".join(s if s[-1] in "。？！?.!" else s + "。" for s in said)
    reply = paragraphs[0] if zh else paragraphs[-1]
    return (
        f"## 工单 Ticket #{number} · {intent} · {head}\n\n"
        f"客户 {rng.choice(_NAMES)}（{rng.choice(_CITIES)}，订单 {order}）：{customer} "
        f"{_fill(rng.choice(m.templates), rng)}\n\n"
        f"客服回复 Reply: {reply} {resolution}\n"
    )


def _article(m: Material, rng: random.Random, number: int) -> str:
    parts = [f"# 知识文章 Article {number}\n"]
    for _ in range(rng.randint(3, 6)):
        head, paragraphs = rng.choice(m.faq)
        parts.append(f"## {head}\n")
        parts.append(" ".join(paragraphs))
        parts.append(" ".join(rng.sample(m.fixture_lines, k=3)))
        parts.append(rng.choice(m.prose))
        parts.append("")
    return "\n\n".join(parts)


def documents(
    n_docs: int, seed: int = 0, tickets_per_digest: int = 40
) -> Iterator[tuple[str, bytes]]:
    """``n_docs`` Markdown documents as ``(name, bytes)``: three ticket digests for
    every article. Documents and their order depend only on the arguments."""
    material = Material()
    rng = random.Random(seed)
    ticket = 0
    for d in range(n_docs):
        if d % 4 == 3:
            text = _article(material, rng, d)
            name = f"articles/article-{d:06d}.md"
        else:
            tickets = []
            for _ in range(tickets_per_digest):
                ticket += 1
                tickets.append(_ticket(material, rng, ticket))
            text = f"# 工单汇总 Ticket digest {d}\n\n" + "\n".join(tickets)
            name = f"tickets/digest-{d:06d}.md"
        yield name, text.encode("utf-8")
