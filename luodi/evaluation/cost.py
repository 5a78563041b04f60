"""Cost (TCO): cost per million tokens per deployment mode, from measured throughput.

The private server's yearly cost is fixed (capex over its life, hosting, staff share,
software) plus power, which is paid whether or not tokens flow (a server kept on). Its
capacity comes from a ``luodi bench`` JSON file: the best aggregate output tokens/s over
the measured concurrency levels, at a target utilisation. The API costs a list price
per million input and output tokens; a workload sends ``input_tokens_per_output_token``
prompt tokens per generated one. Hybrid runs the private server up to its capacity and
sends the overflow to the API.

Throughput is measured, never assumed: ``luodi bench`` counts output tokens over wall
time with prompt processing included, for its own short prompts; a workload with long
prompts has less capacity than that and should be benched with them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from luodi.errors import ConfigError

__all__ = [
    "DEFAULT_PRICES",
    "CostModel",
    "PriceSheet",
    "best_level",
    "load_prices",
    "measured_throughput",
]

DEFAULT_PRICES = Path(__file__).parent / "prices" / "default.yaml"
SECONDS_PER_DAY = 86_400.0


class _Sheet(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrivatePrices(_Sheet):
    hardware_capex: float = Field(ge=0)
    """Purchase price of one server, accelerators included."""
    life_years: float = Field(gt=0)
    """Years the capex is spread over (straight line)."""
    power_kw: float = Field(ge=0)
    """The server's draw at load, kW."""
    pue: float = Field(ge=1.0)
    """Power usage effectiveness of the room (total / IT power)."""
    tariff_per_kwh: float = Field(ge=0)
    hosting_per_month: float = Field(ge=0)
    staff_fte_share: float = Field(ge=0)
    """Share of one engineer's time the server takes."""
    staff_fte_cost_per_year: float = Field(ge=0)
    software_per_year: float = Field(ge=0)


class ApiPrices(_Sheet):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Workload(_Sheet):
    input_tokens_per_output_token: float = Field(ge=0)
    target_utilisation: float = Field(gt=0, le=1)


class PriceSheet(_Sheet):
    """A dated price sheet (YAML); see ``prices/default.yaml`` for what each means."""

    taken_on: str
    currency: str = "USD"
    private: PrivatePrices
    api: ApiPrices
    workload: Workload


def load_prices(path: Path | None = None) -> PriceSheet:
    """Read a price sheet; the bundled default when ``path`` is None."""
    path = path or DEFAULT_PRICES
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return PriceSheet.model_validate(raw)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such price sheet") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


def measured_throughput(bench_json: Path) -> tuple[float, int, str]:
    """Best aggregate output tokens/s in a ``luodi bench`` file, its concurrency, model."""
    try:
        data = json.loads(bench_json.read_text(encoding="utf-8"))
        return best_level(data)
    except FileNotFoundError:
        raise ConfigError(f"{bench_json}: no such bench file") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{bench_json}: not a luodi bench JSON file ({exc!r})") from None


def best_level(data: dict[str, Any]) -> tuple[float, int, str]:
    """Best aggregate output tokens/s of ``luodi bench`` results, its concurrency, model.

    Raises ValueError when no level answered a request.
    """
    levels = [lv for lv in data["levels"] if lv.get("requests", 0) > 0]
    if not levels:
        raise ValueError("no concurrency level answered a request")
    best = max(levels, key=lambda lv: float(lv["throughput_tok_s"]))
    return float(best["throughput_tok_s"]), int(best["concurrency"]), str(data.get("model"))


class CostModel:
    """Costs of one private server against an API, per day and per million tokens."""

    def __init__(self, prices: PriceSheet, peak_output_tok_s: float) -> None:
        if peak_output_tok_s <= 0:
            raise ConfigError("measured throughput must be positive")
        self.prices = prices
        self.peak_output_tok_s = peak_output_tok_s

    @property
    def capacity_per_day(self) -> float:
        """Output tokens one server serves a day at the target utilisation."""
        return self.peak_output_tok_s * self.prices.workload.target_utilisation * SECONDS_PER_DAY

    def private_per_year(self) -> dict[str, float]:
        """One server's yearly cost by line."""
        p = self.prices.private
        return {
            "capex": p.hardware_capex / p.life_years,
            "power": p.power_kw * p.pue * p.tariff_per_kwh * 24 * 365,
            "hosting": p.hosting_per_month * 12,
            "staff": p.staff_fte_share * p.staff_fte_cost_per_year,
            "software": p.software_per_year,
        }

    def private_per_day(self) -> float:
        return sum(self.private_per_year().values()) / 365

    def api_per_output_token(self) -> float:
        """What the API charges per generated token, its share of prompt tokens included."""
        a, w = self.prices.api, self.prices.workload
        return (a.output_per_mtok + w.input_tokens_per_output_token * a.input_per_mtok) / 1e6

    def daily_cost(self, mode: str, output_tokens_per_day: float) -> float:
        """Cost of a day's volume: private (enough servers), api, or hybrid (one + overflow)."""
        v = output_tokens_per_day
        if mode == "api":
            return v * self.api_per_output_token()
        servers = max(1, math.ceil(v / self.capacity_per_day))
        if mode == "private":
            return servers * self.private_per_day()
        if mode == "hybrid":
            overflow = max(0.0, v - self.capacity_per_day)
            return self.private_per_day() + overflow * self.api_per_output_token()
        raise ConfigError(f"unknown deployment mode {mode!r}; known: private, hybrid, api")

    def per_million_at_capacity(self) -> float:
        """Private cost per million output tokens with the server at target utilisation."""
        return self.private_per_day() / self.capacity_per_day * 1e6

    def break_even_per_day(self) -> float | None:
        """Output tokens a day from which one private server costs less than the API.

        None when even a server at full target utilisation costs more than the API
        would for the same tokens: more servers never help, each costs the same again.
        """
        point = self.private_per_day() / self.api_per_output_token()
        return point if point <= self.capacity_per_day else None

    def summary(self, volumes: list[float]) -> dict[str, Any]:
        """Everything the report shows, as JSON."""
        return {
            "prices_taken_on": self.prices.taken_on,
            "currency": self.prices.currency,
            "peak_output_tok_s": self.peak_output_tok_s,
            "target_utilisation": self.prices.workload.target_utilisation,
            "capacity_output_tokens_per_day": self.capacity_per_day,
            "private_per_year": self.private_per_year(),
            "private_per_day": self.private_per_day(),
            "per_million_output_tokens": {
                "private": self.per_million_at_capacity(),
                "api": self.api_per_output_token() * 1e6,
            },
            "break_even_output_tokens_per_day": self.break_even_per_day(),
            "daily_cost_by_volume": [
                {"output_tokens_per_day": v}
                | {m: self.daily_cost(m, v) for m in ("private", "hybrid", "api")}
                for v in volumes
            ],
        }
