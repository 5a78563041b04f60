"""PII detection quality and speed: a Chinese corpus and an English one, luodi vs Presidio.

* **Chinese corpus**: zh_CN Faker values in this file's templates (names, resident IDs,
  mobiles, UnionPay and international cards, addresses, e-mails, international phones,
  IBANs) plus hard negatives (order numbers, timestamps, amounts, IDs with a wrong check
  digit, Luhn-failing cards, ticket numbers, words that start with a surname).
* **English corpus**: every template of presidio-evaluator (``corpora/``, copied from
  its 0.3.2 wheel, MIT) filled with Faker en_US values the way presidio-evaluator does
  (any card brand, phone numbers in all of Faker's formats, GB IBANs), plus hard
  negatives written here (order, invoice and ticket numbers, versions, timestamps).

Both corpora are scored per entity (exact span match; ``BANK_CARD`` and
``CREDIT_CARD`` as one ``CARD`` class) for luodi and, on the same texts, for Microsoft
Presidio when it is installed (the ``bench`` extra). Presidio's NER needs a spaCy model
that only installs from a model hub, so it runs with its pattern and phonenumbers-based
recognizers (an NLP engine that returns nothing): it finds no names, and it has no
Chinese recognizers (its English ones run on the Chinese texts).

Throughput is measured on mixed Chinese text in one process (one core), and on one
100 KB document through the gateway stage with its default, length-scaled budget.

A third, near-miss corpus measures the two checksum settings (``near_misses`` off:
strict checksums, as analytics wants; on: the default for text bound off the premises).
It holds valid IDs, cards and mobiles next to their context words, look-alikes failing
their checksum next to the same words (a wrong check digit, a Luhn-failing card, a
mobile on an unallocated prefix or one digit short or long), and look-alikes with no
word naming them (order numbers, serials, timestamps). Each setting is scored against
two answer keys: *strict* (only valid values are personal data) and *privacy* (a
mistyped identifier named as one still identifies a person).

    python benchmarks/pii.py [--sentences 4000] [--en-rounds 20] [--near-miss-sentences 3000]
                             [--seed 7] [--out bench-results/pii.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faker import Faker

from luodi.config.privacy import PrivacySettings
from luodi.privacy import Analyzer, PIIStage
from luodi.privacy.checksums import luhn_valid

Span = tuple[int, int, str]  # start, end, class

# Entity types as scored: both card rules count as one "CARD" class.
CLASS_OF = {"BANK_CARD": "CARD", "CREDIT_CARD": "CARD"}
PRESIDIO_CLASS = {
    "PERSON": "PERSON",
    "EMAIL_ADDRESS": "EMAIL",
    "CREDIT_CARD": "CARD",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
}
# Gold classes scored apart but matched by a prediction of the second class.
ALIAS = {"PHONE_INTL": "PHONE", "CARD_INTL": "CARD"}

PRESIDIO_TEMPLATES = Path(__file__).parent / "corpora" / "presidio_evaluator_templates.txt"
# presidio-evaluator slot -> scoring class (None: filled, not scored).
EN_CLASS: dict[str, str] = {
    "credit_card_number": "CARD",
    "phone_number": "PHONE",
    "email": "EMAIL",
    "iban": "IBAN",
    "ssn": "US_SSN",
    "ip_address": "IP_ADDRESS",
    **{
        slot: "PERSON_EN"
        for slot in (
            "person",
            "name",
            "name_female",
            "name_male",
            "first_name",
            "first_name_male",
            "first_name_female",
            "first_name_nonbinary",
            "last_name",
            "last_name_male",
            "last_name_female",
        )
    },
}
NATIONS = ("American", "French", "Chinese", "Indian", "Brazilian", "German", "Kenyan")

ZH_TEMPLATES = [
    "客户{PERSON}于昨天下午来电，称其手机{PHONE}无法接收验证码。",
    "请核实身份证号{ID_CARD}与预留手机号{PHONE}是否一致。",
    "{PERSON}的银行卡{CARD}于今日凌晨发生一笔境外消费。",
    "收货地址：{ADDRESS}，联系人{PERSON}，电话{PHONE}。",
    "您好，我叫{PERSON}，邮箱是{EMAIL}，麻烦把对账单发给我。",
    "经核查，{PERSON}名下账户{CARD}余额充足，身份证{ID_CARD}。",
    "申请人{PERSON}，现住{ADDRESS}，联系电话{PHONE}。",
    "转账给{PERSON}（卡号{CARD}），备注：房租。",
    "如有疑问请发邮件至{EMAIL}或拨打{PHONE}咨询。",
    "{PERSON}先生您好，您的贷款申请已受理，请保持{PHONE}畅通。",
    "据{PERSON}反映，寄往{ADDRESS}的信用卡至今未收到。",
    "持卡人{PERSON}，证件号码{ID_CARD}，卡号{CARD}，请复核。",
    "今天和{PERSON}一起去了营业厅，她的新号码是{PHONE}。",
    "户籍地址{ADDRESS}与身份证{ID_CARD}登记信息不符。",
    "{PERSON}：我的卡{CARD}被冻结了，邮箱{EMAIL}收到了通知。",
    "海外客户{PERSON}的联系电话是{PHONE_INTL}，请尽快回电。",
    "美国分行来电{PHONE_INTL}，请转告{PERSON}。",
    "请将款项汇入IBAN {IBAN}，户名{PERSON}。",
    "客户{PERSON}的信用卡{CARD_INTL}在境外被盗刷。",
    "境外账户{IBAN}已冻结，详情请联系{EMAIL}或{PHONE_INTL}。",
]
ZH_NEGATIVES = [
    "订单号{ORDER}已于{TS}发货，金额{AMOUNT}元。",
    "流水号{ORDER}，交易时间{TS}，手续费{AMOUNT}元。",
    "身份证号{BAD_ID}校验失败，请重新输入。",
    "卡号{BAD_CARD}无效，请检查后重试。",
    "系统于{TS}完成升级，本次共处理{AMOUNT}笔业务。",
    "提高额度需要经理审批，由于系统升级明天暂停服务。",
    "黄金价格今天上涨了百分之二，白银价格保持稳定。",
    "本周末方便的话请回电，文件已经发送到您的邮箱。",
    "万一遇到诈骗电话请立即挂断并报警。",
    "高度重视客户隐私保护工作是我们的责任。",
    "程序员正在修复这个问题，预计两小时内恢复。",
    "任何问题都可以咨询在线客服，我们全天服务。",
    "方便的时候请到柜台办理，常见问题见帮助中心。",
    "石油和天然气价格波动较大，注意投资风险。",
    "城市发展很快，上海的天气很好，北京也不错。",
    "利率调整后，月供减少了{AMOUNT}元。",
    "版本{VERSION}已经发布，修复了若干问题。",
    "江苏的客户可以到附近网点办理业务。",
    "马上就到期了，请于三个工作日内完成还款。",
    "周一到周五营业时间为九点到五点。",
    "工单{TICKET}已关闭，处理时间{TS}。",
    "发票号码{INVOICE8}已开具，金额{AMOUNT}元。",
    # A shop's service desk: words jieba tags as names (顾客, 顾问, 明白) or lacks (包邮).
    "顾客您好，满99元包邮，偏远地区除外。",
    "顾客可以在七天内申请退货，包邮商品的退货运费自理。",
    "如需帮助请联系您的专属顾问，我们明白您的着急。",
    "这款阳光玉米包邮吗？明天能发货吗？",
    "温馨提示：包退包换，顾客满意是我们的追求。",
]
EN_NEGATIVES = [  # written for this benchmark, not from presidio-evaluator
    "Order {ORDER} shipped on {TS} for ${AMOUNT}.",
    "Build {VERSION} fixed the login bug.",
    "Transaction reference {ORDER} was settled at {TS}.",
    "The meeting is on Monday at 10 am in room 4.",
    "Card {BAD_CARD} was rejected by the terminal.",
    "Your order number is {TICKET} and it ships on {TS}.",
    "Invoice {INVOICE} is due on {TS}.",
    "Ticket {TICKET} was closed at {TS}.",
    "The export took {AMOUNT} seconds and wrote {TICKET} bytes.",
]

# The near-miss corpus: the same context words in front of valid values, of look-alikes
# failing their checksum, and (unnamed) in front of neither.
NEAR_MISS_VALID = [
    "请核实身份证号{ID_CARD}与预留信息是否一致。",
    "客户的证件号码是{ID_CARD}，已完成实名认证。",
    "银行卡{CARD}已绑定，可以正常转账。",
    "卡号{CARD}的账单已寄出。",
    "手机{PHONE}已验证，请留意短信。",
    "联系电话{PHONE}，工作日可拨打。",
    "Card {CARD} was charged yesterday.",
]
NEAR_MISS_NAMED = [
    "身份证号{BAD_ID}校验失败，请重新输入。",
    "客户提供的身份证号码是{BAD_ID}，与系统记录不符。",
    "证件号{BAD_ID}，请再核对一遍。",
    "卡号{BAD_CARD}无效，请检查后重试。",
    "请向银行卡{BAD_CARD}转账，户名见附件。",
    "手机{BAD_PHONE}打不通，请核实。",
    "联系电话{BAD_PHONE}，工作日可拨打。",
    "Card {BAD_CARD} was rejected by the terminal.",
]
NEAR_MISS_UNNAMED = [
    "订单号{BAD_ID}已发货，请注意查收。",
    "流水号{BAD_CARD}，交易成功。",
    "包裹 {BAD_CARD} 已签收，共{AMOUNT}元。",
    "设备序列{BAD_PHONE}已登记。",
    "时间戳{TS10}对应的日志已上传。",
    "档案编号{BAD_ID}已归档。",
    "Transaction reference {BAD_CARD} was settled at {TS}.",
]
NEAR_CLASS = {"BAD_ID": "ID_CARD", "BAD_CARD": "CARD", "BAD_PHONE": "PHONE"}
"""Scoring class of each look-alike slot."""
NEAR_MISS_ENTITIES = ["ID_CARD", "BANK_CARD", "CREDIT_CARD", "PHONE"]


def union_pay(rng: random.Random) -> str:
    """A Luhn-valid 16 or 19 digit UnionPay debit card number."""
    body = "62" + "".join(str(rng.randrange(10)) for _ in range(rng.choice((13, 16))))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def grouped(number: str, sep: str) -> str:
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


@dataclass
class Sample:
    text: str
    gold: list[Span]
    lang: str
    near: list[Span] = field(default_factory=list)
    """Look-alikes failing their checksum that a context word names: personal data for
    the privacy answer key, not for the strict one."""


@dataclass
class Corpus:
    samples: list[Sample] = field(default_factory=list)


class Values:
    """Slot values drawn from one random stream (the corpus is a function of the seed)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.zh, self.en = Faker("zh_CN"), Faker("en_US")
        self.zh.seed_instance(seed)
        self.en.seed_instance(seed + 1)

    def zh_value(self, slot: str) -> str:
        rng, zh = self.rng, self.zh
        if slot == "PERSON":
            return zh.name()
        if slot == "PHONE":
            p = zh.phone_number()
            form = rng.random()
            if form < 0.2:
                return f"+86 {p[:3]} {p[3:7]} {p[7:]}"
            if form < 0.4:
                return f"{p[:3]}-{p[3:7]}-{p[7:]}"
            return p
        if slot == "ID_CARD":
            return zh.ssn()
        if slot == "CARD":
            c = union_pay(rng)
            return grouped(c, " ") if rng.random() < 0.3 else c
        if slot == "ADDRESS":
            if rng.random() < 0.5:
                return zh.address()
            # Street-level form with real province/city/district names and a room.
            return (
                f"{zh.province()}{zh.city_name()}市{zh.district()}区{zh.street_name()}"
                f"{rng.randint(1, 999)}号{rng.randint(1, 30)}栋{rng.randint(101, 2899)}室"
            )
        if slot == "EMAIL":
            return zh.email()
        if slot == "PHONE_INTL":
            form = rng.random()
            if form < 0.7:
                return self.en.phone_number()
            if form < 0.85:  # a Hong Kong mobile
                return (
                    f"+852 {rng.choice('569')}{rng.randrange(1000):03d} {rng.randrange(10000):04d}"
                )
            return f"+44 20 7{rng.randrange(1000):03d} {rng.randrange(10000):04d}"  # London
        if slot == "CARD_INTL":
            return self.en.credit_card_number()
        if slot == "IBAN":
            iban = self.iban_faker().iban()
            return grouped(iban, " ") if rng.random() < 0.3 else iban
        raise KeyError(slot)

    def iban_faker(self) -> Faker:
        if not hasattr(self, "_ibans"):
            self._ibans = [Faker(loc) for loc in ("de_DE", "fr_FR", "en_GB", "nl_NL", "es_ES")]
            for i, f in enumerate(self._ibans):
                f.seed_instance(self.rng.randrange(1 << 30) + i)
        return self.rng.choice(self._ibans)

    def presidio_value(self, slot: str) -> str:
        """A value for a presidio-evaluator slot, as its Faker-based generator draws it."""
        rng, en = self.rng, self.en
        if slot == "ip_address":
            return en.ipv4_public() if rng.random() < 0.7 else en.ipv6()
        if slot == "iban":
            return en.iban()
        if slot == "age":
            return str(rng.randint(18, 90))
        if slot in ("nationality", "nation_woman", "nation_plural"):
            return rng.choice(NATIONS)
        if slot == "person":
            return en.name()
        if slot == "organization":
            return en.company()
        if slot in ("date_time", "date_of_birth"):
            return en.date_time().strftime(rng.choice(("%B %d, %Y", "%Y-%m-%d %H:%M", "%m/%d/%Y")))
        if slot == "us_driver_license":
            return en.bothify("?#######").upper()
        return str(getattr(en, slot)())

    def negative_value(self, slot: str) -> str:
        rng, zh = self.rng, self.zh
        if slot == "ORDER":
            return str(rng.choice((2023, 2024))) + "".join(
                str(rng.randrange(10)) for _ in range(rng.choice((10, 12, 14, 16)))
            )
        if slot == "TS":
            return zh.date_time().strftime(rng.choice(("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S")))
        if slot == "AMOUNT":
            return f"{rng.uniform(1, 99999):,.2f}"
        if slot == "BAD_ID":
            good = zh.ssn()
            return good[:-1] + rng.choice([c for c in "0123456789X" if c != good[-1]])
        if slot == "BAD_CARD":
            c = union_pay(rng)
            return c[:-1] + str((int(c[-1]) + 1 + rng.randrange(8)) % 10)
        if slot == "VERSION":
            return ".".join(str(rng.randrange(20)) for _ in range(rng.choice((3, 5))))
        if slot == "TICKET":  # ten digits in the North American phone shape
            return f"{rng.randint(2, 9)}{rng.randrange(100):02d}{rng.randint(2, 9)}" + "".join(
                str(rng.randrange(10)) for _ in range(6)
            )
        if slot == "INVOICE":
            t = self.negative_value("TICKET")
            return f"{t[:3]}-{t[3:6]}-{t[6:]}"
        if slot == "INVOICE8":
            return "".join(str(rng.randrange(10)) for _ in range(8))
        raise KeyError(slot)

    def near_miss_value(self, slot: str) -> str:
        """Values of the near-miss corpus: valid ones, look-alikes, and other numbers."""
        rng = self.rng
        if slot in ("ID_CARD", "CARD", "PHONE"):
            return self.zh_value(slot)
        if slot == "BAD_ID":
            good = self.zh.ssn()
            if rng.random() < 0.5:  # a wrong check character
                return good[:-1] + rng.choice([c for c in "0123456789X" if c != good[-1]])
            # One digit of the sequence mistyped (the check character no longer fits).
            i = rng.randrange(14, 17)
            return good[:i] + str((int(good[i]) + 1 + rng.randrange(9)) % 10) + good[i + 1 :]
        if slot == "BAD_CARD":
            c = self.negative_value("BAD_CARD")
            return grouped(c, " ") if rng.random() < 0.3 else c
        if slot == "BAD_PHONE":
            p = self.zh.phone_number()
            form = rng.random()
            if form < 0.4:  # one digit dropped
                i = rng.randrange(3, 11)
                return p[:i] + p[i + 1 :]
            if form < 0.7:  # one digit doubled
                i = rng.randrange(3, 11)
                return p[: i + 1] + p[i:]
            return "1" + rng.choice("012") + p[2:]  # an unallocated prefix
        if slot == "TS10":
            return str(rng.randrange(1_500_000_000, 1_800_000_000))
        return self.negative_value(slot)


def fill(
    template: str, value: Callable[[str], str], lang: str, label: Callable[[str], str | None]
) -> Sample:
    """A sample from a template; ``label(slot)`` says whether a slot's value is personal
    data (``"gold"``), a near-miss (``"near"``) or neither (``None``)."""
    out: list[str] = []
    gold: list[Span] = []
    near: list[Span] = []
    pos = 0
    length = 0
    while True:
        start = template.find("{", pos)
        if start < 0:
            out.append(template[pos:])
            break
        end = template.index("}", start)
        out.append(template[pos:start])
        length += start - pos
        slot = template[start + 1 : end]
        v = value(slot)
        kind = label(slot)
        if kind is not None:
            cls = f"PERSON_{lang.upper()}" if slot == "PERSON" else NEAR_CLASS.get(slot, slot)
            (gold if kind == "gold" else near).append((length, length + len(v), cls))
        out.append(v)
        length += len(v)
        pos = end + 1
    return Sample("".join(out), gold, lang, near)


def build_zh_corpus(n: int, seed: int) -> Corpus:
    """Chinese sentences: 70% from ZH_TEMPLATES, 30% hard negatives."""
    values = Values(seed)
    rng = values.rng

    def every(slot: str) -> str:
        return "gold"

    def none(slot: str) -> None:
        return None

    corpus = Corpus()
    for _ in range(n):
        if rng.random() < 0.7:
            corpus.samples.append(fill(rng.choice(ZH_TEMPLATES), values.zh_value, "zh", every))
        else:
            corpus.samples.append(fill(rng.choice(ZH_NEGATIVES), values.negative_value, "zh", none))
    return corpus


def load_presidio_templates() -> list[str]:
    """presidio-evaluator's templates, with its escaped newlines and commas undone."""
    lines = PRESIDIO_TEMPLATES.read_text(encoding="utf-8").splitlines()
    return [t.replace("\\n", "\n").replace("\\,", ",") for t in lines if t.strip()]


_SLOT = re.compile(r"\{\{(\w+)\}\}")


def fill_presidio(template: str, value: Callable[[str], str]) -> Sample:
    """A sample from a ``{{slot}}`` template; slots in EN_CLASS are gold spans."""
    out: list[str] = []
    gold: list[Span] = []
    length = pos = 0
    for m in _SLOT.finditer(template):
        out.append(template[pos : m.start()])
        length += m.start() - pos
        v = value(m.group(1))
        cls = EN_CLASS.get(m.group(1))
        if cls is not None:
            gold.append((length, length + len(v), cls))
        out.append(v)
        length += len(v)
        pos = m.end()
    out.append(template[pos:])
    return Sample("".join(out), gold, "en")


def build_en_corpus(rounds: int, negatives: int, seed: int) -> Corpus:
    """Every presidio-evaluator template filled ``rounds`` times, plus ``negatives``
    hard negatives from EN_NEGATIVES."""
    values = Values(seed + 2000)  # its own stream
    templates = load_presidio_templates()
    corpus = Corpus()
    for _ in range(rounds):
        for t in templates:
            corpus.samples.append(fill_presidio(t, values.presidio_value))
    for _ in range(negatives):
        template = values.rng.choice(EN_NEGATIVES)
        corpus.samples.append(fill(template, values.negative_value, "en", lambda slot: None))
    return corpus


def build_near_miss_corpus(n: int, seed: int) -> Corpus:
    """Valid values, named look-alikes and unnamed look-alikes, one third each."""
    values = Values(seed + 1000)  # its own stream: the main corpus stays as it was
    rng = values.rng

    def valid(slot: str) -> str | None:
        return "gold" if slot in ("ID_CARD", "CARD", "PHONE") else None

    def named(slot: str) -> str | None:
        return "near" if slot in NEAR_CLASS else None

    def unnamed(slot: str) -> None:
        return None

    groups = ((NEAR_MISS_VALID, valid), (NEAR_MISS_NAMED, named), (NEAR_MISS_UNNAMED, unnamed))
    corpus = Corpus()
    for i in range(n):
        templates, label = groups[i % 3]
        template = rng.choice(templates)
        lang = "en" if template.isascii() else "zh"
        corpus.samples.append(fill(template, values.near_miss_value, lang, label))
    return corpus


def score(
    samples: list[Sample],
    predict: Callable[[str], list[tuple[int, int, str]]],
    *,
    near_is_pii: bool = False,
) -> dict[str, dict[str, float]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for s in samples:
        gold = set(s.gold) | (set(s.near) if near_is_pii else set())
        aliased = {(a, b, ALIAS[c]): c for a, b, c in gold if c in ALIAS}
        pred = set()
        for start, end, etype in predict(s.text):
            cls = CLASS_OF.get(etype, etype)
            if cls == "PERSON":
                cls = f"PERSON_{s.lang.upper()}"
            cls = aliased.get((start, end, cls), cls)
            pred.add((start, end, cls))
        for span in pred:
            (tp if span in gold else fp)[span[2]] += 1
        for span in gold - pred:
            fn[span[2]] += 1
    table: dict[str, dict[str, float]] = {}
    for cls in sorted(set(tp) | set(fp) | set(fn)):
        p = tp[cls] / (tp[cls] + fp[cls]) if tp[cls] + fp[cls] else 0.0
        r = tp[cls] / (tp[cls] + fn[cls]) if tp[cls] + fn[cls] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        table[cls] = {
            "support": tp[cls] + fn[cls],
            "tp": tp[cls],
            "fp": fp[cls],
            "fn": fn[cls],
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f, 4),
        }
    return table


def presidio_predictor() -> tuple[Callable[[str], list[tuple[int, int, str]]], str] | None:
    """Presidio's analyzer with its regex recognizers (no spaCy model installs offline)."""
    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
    except ImportError:
        return None
    # Use tldextract's bundled suffix list instead of fetching it over the network.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

    class NoNlp(NlpEngine):
        """An NLP engine that finds nothing: leaves Presidio's pattern recognizers only."""

        def load(self) -> None:
            return None

        def is_loaded(self) -> bool:
            return True

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            return NlpArtifacts(
                entities=[],
                tokens=[],
                tokens_indices=[],
                lemmas=[],
                nlp_engine=self,
                language=language,
            )

        def process_batch(
            self, texts: Any, language: str, batch_size: int = 1, n_process: int = 1, **kwargs: Any
        ) -> Any:
            for t in texts:
                yield t, self.process_text(t, language)

        def is_stopword(self, word: str, language: str) -> bool:
            return False

        def is_punct(self, word: str, language: str) -> bool:
            return False

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(languages=["en"])
    engine = AnalyzerEngine(nlp_engine=NoNlp(), registry=registry, supported_languages=["en"])
    entities = list(PRESIDIO_CLASS)

    def predict(text: str) -> list[tuple[int, int, str]]:
        results = engine.analyze(text, language="en", entities=entities, score_threshold=0.3)
        return [(r.start, r.end, PRESIDIO_CLASS[r.entity_type]) for r in results]

    from importlib.metadata import version

    return predict, f"presidio-analyzer {version('presidio-analyzer')} (pattern recognizers only)"


def throughput(
    analyzer: Analyzer,
    samples: list[Sample],
    chunk: int = 2000,
    repeats: int = 3,
    *,
    near_misses: bool = False,
) -> dict[str, float]:
    text = "".join(s.text for s in samples if s.lang == "zh")
    while len(text.encode()) < 2_000_000:
        text += text
    chunks = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    runs = []
    for _ in range(repeats):  # best of N: the machine may be shared
        t0 = time.perf_counter()
        for c in chunks:
            analyzer.analyze(c, near_misses=near_misses)
        runs.append(time.perf_counter() - t0)
    dt = min(runs)
    msgs = [s.text for s in samples if s.lang == "zh"][:2000]
    lat = []
    for m in msgs:
        t = time.perf_counter()
        analyzer.analyze(m, near_misses=near_misses)
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return {
        "bytes": len(text.encode()),
        "seconds": round(dt, 3),
        "mb_per_s": round(len(text.encode()) / dt / 1e6, 3),
        "mb_per_s_median": round(len(text.encode()) / statistics.median(runs) / 1e6, 3),
        "message_p50_ms": round(statistics.median(lat), 3),
        "message_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 3),
    }


def print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'entity':<12}{'support':>8}{'tp':>7}{'fp':>6}{'fn':>6}{'P':>8}{'R':>8}{'F1':>8}")
    for cls, row in table.items():
        print(
            f"{cls:<12}{row['support']:>8}{row['tp']:>7}{row['fp']:>6}{row['fn']:>6}"
            f"{row['precision']:>8.3f}{row['recall']:>8.3f}{row['f1']:>8.3f}"
        )


def micro(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """Precision, recall and F1 over every class of a table (micro-averaged)."""
    tp = sum(int(r["tp"]) for r in table.values())
    fp = sum(int(r["fp"]) for r in table.values())
    fn = sum(int(r["fn"]) for r in table.values())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "support": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f, 4),
    }


def near_miss_report(analyzer: Analyzer, near: Corpus, main: Corpus) -> dict[str, Any]:
    """Both checksum settings on the near-miss corpus, against both answer keys, and the
    lenient setting on the main corpus (what it costs on ordinary text)."""
    report: dict[str, Any] = {
        "sentences": len(near.samples),
        "valid_values": sum(len(s.gold) for s in near.samples),
        "named_look_alikes": sum(len(s.near) for s in near.samples),
    }
    print(
        f"\nnear-miss corpus: {report['sentences']} sentences, {report['valid_values']} valid "
        f"values, {report['named_look_alikes']} named look-alikes, the rest unnamed"
    )
    print(
        f"{'entity':<10}{'setting':<9}{'key':<9}{'support':>8}{'tp':>6}{'fp':>6}{'fn':>6}"
        f"{'P':>8}{'R':>8}{'F1':>8}"
    )
    for setting, lenient in (("strict", False), ("lenient", True)):

        def predict(text: str, lenient: bool = lenient) -> list[tuple[int, int, str]]:
            found = analyzer.analyze(text, entities=NEAR_MISS_ENTITIES, near_misses=lenient)
            return [(f.start, f.end, f.entity_type) for f in found]

        report[setting] = {}
        for key, near_is_pii in (("strict", False), ("privacy", True)):
            table = score(near.samples, predict, near_is_pii=near_is_pii)
            table["ALL"] = micro(table)
            report[setting][key] = table
            for cls, row in table.items():
                print(
                    f"{cls:<10}{setting:<9}{key:<9}{row['support']:>8}{row['tp']:>6}"
                    f"{row['fp']:>6}{row['fn']:>6}{row['precision']:>8.3f}"
                    f"{row['recall']:>8.3f}{row['f1']:>8.3f}"
                )

    def lenient_predict(text: str) -> list[tuple[int, int, str]]:
        return [(f.start, f.end, f.entity_type) for f in analyzer.analyze(text, near_misses=True)]

    whole = score(main.samples, lenient_predict)
    print_table("luodi, near_misses on: whole main corpus (strict answer key)", whole)
    report["main_corpus_lenient"] = whole
    return report


def print_side_by_side(
    title: str, ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]] | None
) -> None:
    """One row per class: support, luodi P/R/F1, Presidio P/R/F1 (– where it has none)."""
    print(f"\n{title}")
    print(
        f"{'entity':<12}{'support':>8}{'luodi P':>9}{'R':>7}{'F1':>7}{'fp':>5}{'fn':>5}"
        f"{'Presidio P':>12}{'R':>7}{'F1':>7}{'fp':>5}{'fn':>5}"
    )
    for cls in sorted(set(ours) | set(theirs or {})):
        row = ours.get(cls)
        other = (theirs or {}).get(cls)
        support = int((row or other or {"support": 0})["support"])
        left = (
            f"{row['precision']:>9.3f}{row['recall']:>7.3f}{row['f1']:>7.3f}"
            f"{int(row['fp']):>5}{int(row['fn']):>5}"
            if row
            else f"{'–':>9}{'–':>7}{'–':>7}{'':>5}{'':>5}"
        )
        right = (
            f"{other['precision']:>12.3f}{other['recall']:>7.3f}{other['f1']:>7.3f}"
            f"{int(other['fp']):>5}{int(other['fn']):>5}"
            if other
            else f"{'–':>12}{'–':>7}{'–':>7}{'':>5}{'':>5}"
        )
        print(f"{cls:<12}{support:>8}{left}{right}")


def long_document(samples: list[Sample], size: int = 100_000) -> str:
    """A document of ``size`` characters from the corpora's sentences, one a line."""
    lines = [s.text for s in samples]
    text = "\n".join(lines)
    while len(text) < size:
        text += "\n" + text
    return text[:size]


def document_report(analyzer: Analyzer, document: str, repeats: int = 3) -> dict[str, Any]:
    """Detection on one 100 KB document: the analyzer alone (best of ``repeats``), and
    the gateway stage with its default policy, whose budget grows with the length."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        found = analyzer.analyze(document)
        runs.append(time.perf_counter() - t0)
    settings = PrivacySettings()
    stage = PIIStage.from_settings(settings)
    policy = stage.policy()

    async def protect() -> float:
        t0 = time.perf_counter()
        await stage.protect_text(document, conversation_id="bench")
        return time.perf_counter() - t0

    stage_s = asyncio.run(protect())
    size = len(document.encode())
    out = {
        "chars": len(document),
        "bytes": size,
        "findings": len(found),
        "analyze_s": round(min(runs), 3),
        "mb_per_s": round(size / min(runs) / 1e6, 3),
        "stage_s": round(stage_s, 3),
        "budget_s": round(policy.budget_s(len(document)), 3),
        "fixed_budget_s": round(policy.timeout_s, 3),
    }
    print(
        f"\n100 KB document ({out['chars']} characters, {size} bytes, {out['findings']} "
        f"findings): analyze {out['analyze_s']} s ({out['mb_per_s']} MB/s, best of "
        f"{repeats}); through PIIStage {out['stage_s']} s against a budget of "
        f"{out['budget_s']} s (a fixed {out['fixed_budget_s']} s before)"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=4000, help="Chinese sentences")
    parser.add_argument(
        "--en-rounds", type=int, default=20, help="times each presidio template is filled"
    )
    parser.add_argument("--en-negatives", type=int, default=600)
    parser.add_argument("--near-miss-sentences", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench-results/pii.json"))
    args = parser.parse_args()

    chinese = build_zh_corpus(args.sentences, args.seed)
    english = build_en_corpus(args.en_rounds, args.en_negatives, args.seed)
    t0 = time.perf_counter()
    analyzer = Analyzer()
    analyzer.analyze("预热 王磊")  # load jieba's dictionary outside the timings
    load_s = time.perf_counter() - t0

    def luodi_predict(text: str) -> list[tuple[int, int, str]]:
        return [(f.start, f.end, f.entity_type) for f in analyzer.analyze(text)]

    result: dict[str, Any] = {
        "seed": args.seed,
        "zh_sentences": len(chinese.samples),
        "en_sentences": len(english.samples),
        "analyzer_load_s": round(load_s, 2),
    }
    presidio = presidio_predictor()
    if presidio is None:
        print("\npresidio-analyzer not installed (pip install -e '.[bench]'): comparison skipped")
    else:
        result["presidio"] = presidio[1]
        print(f"\nPresidio: {presidio[1]}")
    for name, corpus in (("zh", chinese), ("en", english)):
        ours = score(corpus.samples, luodi_predict)
        theirs = score(corpus.samples, presidio[0]) if presidio else None
        label = {"zh": "Chinese corpus", "en": "English corpus (presidio-evaluator templates)"}
        print_side_by_side(f"{label[name]}: {len(corpus.samples)} sentences", ours, theirs)
        result[f"luodi_{name}"] = ours
        if theirs is not None:
            result[f"presidio_{name}"] = theirs

    both = Corpus(chinese.samples + english.samples)
    near = build_near_miss_corpus(args.near_miss_sentences, args.seed)
    result["near_misses"] = near_miss_report(analyzer, near, both)

    for key, lenient in (("throughput", False), ("throughput_near_misses", True)):
        speed = throughput(analyzer, chinese.samples, near_misses=lenient)
        print(
            f"\n{key} (mixed Chinese, one core, 2000-char chunks): best {speed['mb_per_s']} "
            f"MB/s, median {speed['mb_per_s_median']} MB/s; "
            f"per message p50 {speed['message_p50_ms']} ms, p99 {speed['message_p99_ms']} ms"
        )
        result[key] = speed
    result["document_100kb"] = document_report(analyzer, long_document(both.samples))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
