"""ctypes bindings for the training half of llama.cpp that llama-cpp-python leaves out.

llama-cpp-python 0.3.36 binds ``llama_opt_init`` and ``llama_opt_epoch`` but not the
ggml-opt functions they need (datasets, results, optimizer parameters), and its
``llama_opt_params`` lacks the last field of the C struct (``optimizer_type``), so a
call through it passes a struct 8 bytes short, by value: llama.cpp reads the
optimizer type from whatever follows on the stack. Here the struct is declared as
llama.h declares it and the functions are bound from the already loaded libraries.
"""

from __future__ import annotations

import ctypes

from luodi.models.native_libraries import shared_library

__all__ = [
    "ADAMW",
    "EPOCH_CALLBACK",
    "OptimizerParams",
    "ggml",
    "llama",
    "llama_opt_params",
]

ADAMW, SGD = 0, 1
GGML_TYPE_I32 = 26


class _AdamW(ctypes.Structure):
    _fields_ = [
        ("alpha", ctypes.c_float),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("wd", ctypes.c_float),
    ]


class _SGD(ctypes.Structure):
    _fields_ = [("alpha", ctypes.c_float), ("wd", ctypes.c_float)]


class OptimizerParams(ctypes.Structure):
    """``struct ggml_opt_optimizer_params``: AdamW's and SGD's settings."""

    _fields_ = [("adamw", _AdamW), ("sgd", _SGD)]


class llama_opt_params(ctypes.Structure):
    """``struct llama_opt_params`` as llama.h declares it, ``optimizer_type`` included."""

    _fields_ = [
        ("n_ctx_train", ctypes.c_uint32),
        ("param_filter", ctypes.c_void_p),
        ("param_filter_ud", ctypes.c_void_p),
        ("get_opt_pars", ctypes.c_void_p),
        ("get_opt_pars_ud", ctypes.c_void_p),
        ("optimizer_type", ctypes.c_int),
    ]


# void (*)(bool train, opt_ctx, dataset, result, int64 ibatch, int64 ibatch_max, int64 t_start_us)
EPOCH_CALLBACK = ctypes.CFUNCTYPE(
    None,
    ctypes.c_bool,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_int64,
)

ggml = shared_library("ggml-base")
llama = shared_library("llama")

_P = ctypes.c_void_p
for _name, _args, _ret in (
    ("ggml_opt_dataset_init", [ctypes.c_int, ctypes.c_int] + [ctypes.c_int64] * 4, _P),
    ("ggml_opt_dataset_free", [_P], None),
    ("ggml_opt_dataset_ndata", [_P], ctypes.c_int64),
    ("ggml_opt_dataset_data", [_P], _P),
    ("ggml_opt_dataset_labels", [_P], _P),
    ("ggml_get_data", [_P], _P),
    ("ggml_get_name", [_P], ctypes.c_char_p),
    ("ggml_opt_result_init", [], _P),
    ("ggml_opt_result_free", [_P], None),
    ("ggml_opt_result_reset", [_P], None),
    ("ggml_opt_result_ndata", [_P, ctypes.POINTER(ctypes.c_int64)], None),
    (
        "ggml_opt_result_loss",
        [_P, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)],
        None,
    ),
):
    _fn = getattr(ggml, _name)
    _fn.argtypes, _fn.restype = _args, _ret

llama.llama_opt_init.argtypes = [_P, _P, llama_opt_params]
llama.llama_opt_init.restype = None
llama.llama_opt_epoch.argtypes = [_P, _P, _P, _P, ctypes.c_int64, _P, _P]
llama.llama_opt_epoch.restype = None
llama.llama_model_save_to_file.argtypes = [_P, ctypes.c_char_p]
llama.llama_model_save_to_file.restype = None

CONSTANT_OPTIMIZER_PARAMS = ctypes.cast(ggml.ggml_opt_get_constant_optimizer_params, _P).value
"""``ggml_opt_get_constant_optimizer_params``: reads its settings from the userdata pointer."""
