"""GGUF model files: what they hold, what they need in memory, quantising and training them.

A library: it reads GGUF headers itself and calls llama.cpp (through llama-cpp-python)
for quantisation and training; the CLI (``luodi model``), the 3C cost report and the
engine's memory budget build on it.
"""

from luodi.models.gguf_file import GGUFHeader, TensorInfo, read_gguf_header
from luodi.models.inspection import ModelInfo, TypeShare, inspect_model
from luodi.models.memory import KV_TYPE_BYTES, ModelMemory, memory_of, model_memory

__all__ = [
    "KV_TYPE_BYTES",
    "GGUFHeader",
    "ModelInfo",
    "ModelMemory",
    "TensorInfo",
    "TypeShare",
    "inspect_model",
    "memory_of",
    "model_memory",
    "read_gguf_header",
]
