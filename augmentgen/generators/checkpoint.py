"""Checkpoints without pickle: ``config.json`` + ``model.safetensors`` for models, plus trainer state.

Layout of a model folder (``save_model``)::

    config.json          {"format": "augmentgen", "version": 1, "kind": "cgan", "config": {...}, "meta": {...}}
    model.safetensors    the module's state_dict

A trainer checkpoint adds ``trainer_state.json`` (step, optimizer hyperparameters, anything
JSON-able) and ``trainer_state.safetensors`` (optimizer moments, grad-scaler state).
Files are written under a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import TypeAdapter, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from typing_extensions import TypedDict

from augmentgen.core.registry import did_you_mean

logger = logging.getLogger(__name__)

FORMAT = "augmentgen"
VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"

C = TypeVar("C")


def config_from_dict(cls: type[C], data: Mapping[str, Any], where: str) -> C:
    """Build the dataclass ``cls`` from ``data``; unknown keys and bad values are errors naming ``where``.

    Example:
        >>> config_from_dict(CGANConfig, {"latent_dim": 64}, "recipe.generators[0].model")  # doctest: +SKIP
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"config_from_dict: {cls!r} is not a dataclass")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}{did_you_mean(unknown, names)}; allowed: {sorted(names)}"
        )
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    try:
        adapter, typed = _field_types(cls)
        kwargs.update(adapter.validate_python({k: v for k, v in kwargs.items() if k in typed}))
        return cls(**kwargs)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']} (got {err['input']!r})" for err in e.errors()
        )
        raise ValueError(f"{where}: {problems}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from e


@functools.cache
def _field_types(cls: type) -> tuple[TypeAdapter[Any], frozenset[str]]:
    """A pydantic validator of ``cls``'s field annotations (lax: "5" and 5 both give int 5; "" or {} do not)
    and the fields it checks.

    The dataclass's own ``__post_init__`` still checks ranges and choices; this catches a value of
    the wrong type (a recipe's ``latent_dim: ''``) before it reaches a layer's constructor.
    """
    hints = typing.get_type_hints(cls)
    loose: frozenset[str] = getattr(cls, "LOOSE_FIELDS", frozenset())  # fields whose __post_init__ takes more than the annotation says
    fields = {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if f.init and f.name not in loose and hints.get(f.name, Any) is not Any
    }
    return TypeAdapter(TypedDict(f"{cls.__name__}Fields", fields, total=False)), frozenset(fields)  # type: ignore[operator]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_save_tensors(
    path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_model(
    directory: str | Path,
    kind: str,
    config: Mapping[str, Any],
    module: nn.Module,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``module`` into ``directory``.

    Args:
        directory: created if missing.
        kind: registry name of the model (``"cgan"``, ``"cvae"``, ``"reference_classifier"``).
        config: JSON-able constructor config.
        module: its ``state_dict`` is saved.
        meta: JSON-able extras (training step, metrics).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _atomic_save_tensors(d / WEIGHTS_NAME, dict(module.state_dict()), metadata={"kind": kind})
    return write_config(d, kind, config, meta)


def write_config(
    directory: str | Path, kind: str, config: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> Path:
    """Write a model folder's ``config.json`` atomically (last, so a half-written folder does not load)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    body = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": dict(config),
        "meta": dict(meta or {}),
    }
    write_json_atomic(d / CONFIG_NAME, body)
    return d


def write_json_atomic(path: Path, body: Any) -> None:
    """``body`` as indented, key-sorted JSON, written whole or not at all."""
    _atomic_write_bytes(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())


def read_config(directory: str | Path, kind: str | None = None) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder, checked for format and (when given) ``kind``."""
    d = Path(directory)
    path = d / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{d} is not a model folder: {CONFIG_NAME} is missing")
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(body, dict) or body.get("format") != FORMAT or "kind" not in body:
        raise ValueError(f"{path} is not an augmentgen model config (need format='{FORMAT}' and 'kind')")
    if int(body.get("version", 0)) > VERSION:
        raise ValueError(
            f"{path}: format version {body['version']} is newer than this augmentgen ({VERSION})"
        )
    if kind is not None and body["kind"] != kind:
        raise ValueError(f"{d} holds a '{body['kind']}' checkpoint, not a '{kind}'")
    return body


def load_state_strict(module: nn.Module, tensors: Mapping[str, Tensor], where: str) -> None:
    """Load ``tensors`` into ``module``; missing, unexpected or mis-shaped tensors are a ValueError naming ``where``."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"shape mismatch ({len(shapes)}): " + "; ".join(shapes[:5]))
        if missing:
            parts.append(f"missing ({len(missing)}): {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected ({len(unexpected)}): {unexpected[:5]}")
        raise ValueError(f"{where} does not match the model built from its config: " + " | ".join(parts))
    module.load_state_dict(dict(tensors), strict=True)


def read_weights(directory: str | Path, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """The tensors of ``model.safetensors`` in ``directory``, on ``device``."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise ValueError(f"{Path(directory)} has no {WEIGHTS_NAME}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} cannot be read as safetensors: {e}") from e


def load_model(
    directory: str | Path,
    kind: str,
    make: Callable[[dict[str, Any]], nn.Module],
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``make(config)`` from a model folder of ``kind`` and load its weights exactly.

    Returns:
        the module (on ``device``) and the whole ``config.json`` body.
    """
    body = read_config(directory, kind)
    module = make(body["config"]).to(device)
    load_state_strict(module, read_weights(directory, device), f"{Path(directory) / WEIGHTS_NAME}")
    return module, body


def load_generator(directory: str | Path, **kwargs: Any) -> Any:
    """Load any registered generator from its folder, dispatching on ``config.json``'s ``kind``."""
    from augmentgen.core.registry import GENERATORS

    body = read_config(directory)
    return GENERATORS.get(str(body["kind"])).from_pretrained(directory, **kwargs)


# ---- trainer state ------------------------------------------------------------------------------


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            name = f"{prefix}.state.{pid}.{key}"
            if isinstance(val, Tensor):
                tensors[name] = val
            else:
                scalars[name] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(
    prefix: str,
    opt: torch.optim.Optimizer,
    tensors: Mapping[str, Tensor],
    info: Mapping[str, Any],
    where: str,
) -> None:
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for name, val in tensors.items():
        if name.startswith(head):
            pid, key = name[len(head) :].split(".", 1)
            state.setdefault(int(pid), {})[key] = val
    for name, val in info.get("scalars", {}).items():
        pid, key = name[len(head) :].split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in info["param_groups"]]
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise ValueError(f"{where}: optimizer '{prefix}' state does not fit this model: {e}") from e


def save_trainer_state(
    directory: str | Path,
    optimizers: Mapping[str, torch.optim.Optimizer],
    scalers: Mapping[str, Any],
    info: Mapping[str, Any],
) -> None:
    """Write optimizer and grad-scaler state plus JSON-able ``info`` (step, seed, ...) next to a model."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    body: dict[str, Any] = {"info": dict(info), "optimizers": {}, "scalers": {}}
    for name, opt in optimizers.items():
        t, meta = _flatten_optimizer(f"opt.{name}", opt)
        tensors.update(t)
        body["optimizers"][name] = meta
    for name, scaler in scalers.items():
        sd = scaler.state_dict()
        body["scalers"][name] = {k: (v.item() if isinstance(v, Tensor) else v) for k, v in sd.items()}
    _atomic_save_tensors(d / STATE_TENSORS, tensors)
    write_json_atomic(d / STATE_JSON, body)


def load_trainer_state(
    directory: str | Path,
    optimizers: Mapping[str, torch.optim.Optimizer],
    scalers: Mapping[str, Any],
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Restore what ``save_trainer_state`` wrote into ``optimizers`` and ``scalers``; returns ``info``."""
    d = Path(directory)
    jpath, tpath = d / STATE_JSON, d / STATE_TENSORS
    if not jpath.is_file() or not tpath.is_file():
        raise ValueError(f"{d} is not a trainer checkpoint: {STATE_JSON} or {STATE_TENSORS} is missing")
    try:
        body = json.loads(jpath.read_text())
        tensors = load_file(str(tpath), device=str(device))
    except (OSError, json.JSONDecodeError, SafetensorError) as e:
        raise ValueError(f"{d}: trainer state cannot be read: {e}") from e
    saved = set(body.get("optimizers", {}))
    if saved != set(optimizers):
        raise ValueError(
            f"{d}: trainer state has optimizers {sorted(saved)}, the model needs {sorted(optimizers)}"
        )
    for name, opt in optimizers.items():
        _unflatten_optimizer(f"opt.{name}", opt, tensors, body["optimizers"][name], str(d))
    for name, scaler in scalers.items():
        if name in body.get("scalers", {}):
            scaler.load_state_dict(body["scalers"][name])
    return dict(body.get("info", {}))
