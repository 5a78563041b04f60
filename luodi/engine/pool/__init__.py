"""Several embedded models in one server: loaded on demand, within one memory budget.

``state.py`` (one model's entry and ``ModelState``), ``memory.py`` (what a model
takes, the budget), ``pool.py`` (``ModelPool``: load, evict, keep-alive) and
``engine.py`` (``PooledEngine``: the Engine the API sees for one pooled model).
"""

from luodi.engine.pool.engine import OnDemand, PooledEngine
from luodi.engine.pool.memory import MemoryBudget, MemoryEstimate, estimate_memory
from luodi.engine.pool.pool import AdapterHost, EngineBuilder, EngineStarter, ModelPool
from luodi.engine.pool.state import ModelState, PoolEntry

__all__ = [
    "AdapterHost",
    "EngineBuilder",
    "EngineStarter",
    "MemoryBudget",
    "MemoryEstimate",
    "ModelPool",
    "ModelState",
    "OnDemand",
    "PoolEntry",
    "PooledEngine",
    "estimate_memory",
]
