"""The one module that reads the config: it checks it and turns it into objects (data, model, optimizer, schedule,
loss, trainer settings). Models, datasets and losses never see the config; what they need arrives here."""
from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import traceback
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from .data.common import DataBundle, TensorSplit
from .engine import LoopSettings
from .errors import ConfigError, find_config_error, first_line
from .losses import SquaredError
from .schema import TrainerConfig
from .tasks import TASKS

log = logging.getLogger("cnnlab")


def _config_dir() -> str:
    """configs/ inside the installed package (wheel), else the repository's top-level configs/ (editable)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "configs", here.parents[1] / "configs"):
        if (cand / "train.yaml").is_file():
            return str(cand)
    raise RuntimeError(f"cnnlab configs not found next to {here}: reinstall the package")


CONFIG_DIR = _config_dir()
AMP_DTYPES = {None: None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
RUN_CONTROL_KEYS = ("resume", "ckpt_path", "init_from")  # how a run was started, not what it is
# model options that load weights others trained (a download or a file): unset when a checkpoint's weights follow
PRETRAINED_KEYS = ("weights", "encoder_weights", "backbone_weights")


def parse_override(item: str) -> "tuple[str, str]":
    """'+trainer.epochs=5' -> ('trainer.epochs', '5')."""
    key, _, value = item.lstrip("+~").partition("=")
    return key, value


def is_setting(item: str) -> bool:
    """True for an override that changes the run's config (not resume/ckpt_path, not hydra.*)."""
    key = parse_override(item)[0]
    return key not in RUN_CONTROL_KEYS and not key.startswith("hydra")


def model_overrides(overrides: list[str]) -> list[str]:
    """The command line's `model=...` and `model.*=...` items (they change the model a checkpoint is loaded into)."""
    return [o for o in overrides if parse_override(o)[0].split(".")[0] == "model"]


def plain(node: Any) -> Any:
    """A config node as plain Python (dicts, lists, scalars), interpolations resolved."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _checkable(hint: Any) -> Any:
    """`hint` where OmegaConf can check a value against it, else Any (the target itself judges those)."""
    # a union with one type a config can hold (torch.optim's `lr: float | Tensor`) is checked as that type
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        held = [a for a in members if _checkable(a) is not Any]
        objects = [a for a in members if a not in held and isinstance(a, type) and typing.get_origin(a) is None
                   and not issubclass(a, (list, tuple, dict))]  # what a config cannot hold (a Tensor)
        if len(held) == 1 and len(held) + len(objects) == len(members) > 1:
            return typing.Optional[held[0]] if type(None) in typing.get_args(hint) else held[0]
    items = set(typing.get_args(hint)) - {Ellipsis}
    if typing.get_origin(hint) is tuple and len(items) == 1:  # checked as a list (OmegaConf 2.4's tuple messages
        hint = list[items.pop()]                               # name no key); its length is the target's to judge
    try:
        OmegaConf.structured(dataclasses.make_dataclass("Probe", [("x", hint, dataclasses.field(default=MISSING))]))
        return hint
    except (OmegaConfBaseException, TypeError, ValueError):
        return Any


@functools.lru_cache(maxsize=None)
def signature_schema(target: Callable) -> "type | None":
    """A dataclass of `target`'s keyword parameters and their types for OmegaConf; None if it takes **kwargs."""
    names, takes_any = takes(target)
    if takes_any:
        return None
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except (NameError, TypeError):  # unresolvable forward references in a library's annotations
        if getattr(target, "__module__", "").startswith("cnnlab"):
            raise
        hints = {}
    fields = [(n, _checkable(hints.get(n, Any)), dataclasses.field(default=MISSING))
              for n in inspect.signature(target).parameters if n in names and n != "self"]
    return dataclasses.make_dataclass(getattr(target, "__name__", "Target"), fields)


def _checked(group: str, node: Any) -> Callable:
    """`node`'s target, its keys and value types (and those of nested targets) checked against its signature."""
    name = node.get("_target_") if node is not None else None
    if not name:
        raise ConfigError(f"the {group} config has no _target_: choose one with {group}=<option>")
    try:
        target = get_object(str(name))
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{group}._target_={name} cannot be imported ({first_line(e)}): check the name") from None
    values = {k: v for k, v in plain(node).items() if not str(k).startswith("_")}
    schema = signature_schema(target)
    if schema is not None:
        given = {k: v for k, v in values.items() if not (isinstance(v, dict) and "_target_" in v)}
        try:
            OmegaConf.merge(OmegaConf.structured(schema), given)
        except OmegaConfBaseException as e:
            raise ConfigError(f"{group}.{e.full_key}: {first_line(e)} ({node.get('_target_')} takes "
                              f"{', '.join(schema.__dataclass_fields__)})") from None
    for key, value in values.items():
        if isinstance(value, dict) and "_target_" in value:
            _checked(f"{group}.{key}", node[key])
    return target


def takes(target: Callable) -> "tuple[set[str], bool]":
    """(keyword names `target` takes, whether it takes any keyword)."""
    params = inspect.signature(target).parameters
    return ({n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)},
            any(p.kind is p.VAR_KEYWORD for p in params.values()))


def named_arguments(target: Callable, **values: Any) -> dict[str, Any]:
    """The `values` that are not None and that `target` has a parameter of that name for (not `**kwargs`)."""
    return {k: v for k, v in values.items() if v is not None and k in takes(target)[0]}


def raised_in_cnnlab(exc: BaseException) -> bool:
    """Whether the innermost Python frame of `exc`'s traceback is cnnlab's own code (not torch's, numpy's, ...)."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    return bool(frames) and frames[-1][0].f_globals.get("__name__", "").split(".")[0] == "cnnlab"


def _call(group: str, make: Callable[[], Any]) -> Any:
    """`make()`, with a library's ValueError/TypeError about its values (nn.Dropout's p) as a one-line ConfigError."""
    # a ValueError raised in cnnlab's own code is a bug (bad values there are ConfigErrors): it keeps its traceback
    try:
        return make()
    except InstantiationException as e:
        inner = find_config_error(e)
        if inner is not None:
            raise inner from None
        cause = e.__cause__
        if not isinstance(cause, (ValueError, TypeError)) or raised_in_cnnlab(cause):
            raise
    except (ValueError, TypeError) as e:  # from a target called outside instantiate (`_partial_`)
        if raised_in_cnnlab(e):
            raise
        cause = e
    raise ConfigError(f"{group} config: {first_line(cause)}: check the {group}=... choice and its {group}.* values")


def _built(node: DictConfig, **extra: Any) -> Any:
    """The object `node` names, called with `extra` as they are."""
    # not config nodes: OmegaConf 2.4 would make a data state's tuples TupleConfig, which Hydra 1.3 cannot pass on
    return instantiate(node, _partial_=True, _convert_="all")(**extra)


def build_data(data_cfg: DictConfig, state: Optional[dict] = None, only: Optional[str] = None) -> DataBundle:
    """The DataBundle the data config describes; a builder that takes them gets a checkpoint's `state` and `only`."""
    target = _checked("data", data_cfg)
    extra = named_arguments(target, state=state, only=only)
    bundle = _call("data", lambda: _built(data_cfg, **extra))
    if not isinstance(bundle, DataBundle):
        raise ConfigError(f"data._target_={data_cfg._target_} did not return a DataBundle")
    if bundle.task not in TASKS:
        raise ConfigError(f"data._target_={data_cfg._target_} returned task {bundle.task!r}: use one of {TASKS}")
    return bundle


def _offer_hint(key: str, takes: set[str]) -> str:
    if key == "in_channels" and "in_features" in takes:
        return "it takes feature vectors: use a features data config (e.g. data=digits_features) or an image model"
    if key == "in_features" and "in_channels" in takes:
        return "it takes images: use an image data config (e.g. data=digits) or model=linear"
    return f"it takes {', '.join(sorted(takes)) or 'nothing'}: choose a model made for this data"


def build_model(model_cfg: DictConfig, num_classes: int, offered: dict[str, Any], names: "tuple[str, str]",
                pretrained: bool = True) -> nn.Module:
    """The model, given num_classes and every value the data offers that its config does not set itself."""
    if not pretrained:
        model_cfg = OmegaConf.merge(model_cfg, {k: None for k in PRETRAINED_KEYS if k in model_cfg})
    target = _checked("model", model_cfg)
    names_taken, takes_any = takes(target)
    kwargs = {}
    for key, value in {"num_classes": num_classes, **offered}.items():
        if key in model_cfg:
            continue
        if not (takes_any or key in names_taken):
            shown = f"{key}={value}" if isinstance(value, (int, float, str)) else key
            raise ConfigError(f"data={names[1]} offers {shown}, which model={names[0]} ({model_cfg._target_}) does "
                              f"not take: {_offer_hint(key, names_taken)}"
                              + ("" if model_cfg._target_.startswith("cnnlab.") else
                                 f", or add a `{key}` parameter to its __init__ (or **kwargs) to accept it"))
        kwargs[key] = value
    return _call("model", lambda: _built(model_cfg, **kwargs))


def pretrained_inputs(cfg: DictConfig, overrides: list[str]) -> None:
    """The data's normalisation and image size from model.weights' metadata, unless the command line sets them."""
    from .models.pretrained import input_meta

    model = cfg.model
    meta = input_meta(str(model.arch), model.get("weights")) if "arch" in model and model.get("weights") else {}
    given = {parse_override(o)[0] for o in overrides}
    taken = {k: v for k, v in meta.items() if k in cfg.data and f"data.{k}" not in given}
    for key, value in taken.items():
        cfg.data[key] = value
    if taken:
        log.info(f"model.weights={model.weights}: the data's " + ", ".join(f"{k}={v}" for k, v in taken.items())
                 + " from the weights' metadata")


def _optimizer_node(optim_cfg: DictConfig) -> DictConfig:
    """The optim config without cnnlab's own key (backbone_lr_mult): what torch.optim's class takes."""
    node = optim_cfg.copy()
    with open_dict(node):
        node.pop("backbone_lr_mult", None)
    return node


def check_optim(optim_cfg: DictConfig) -> None:
    """The optimizer config's keys and value types, before anything is built (torch.optim checks the ranges)."""
    _checked("optim", _optimizer_node(optim_cfg))
    mult = optim_cfg.get("backbone_lr_mult", 1.0)
    if not (isinstance(mult, (int, float)) and mult >= 0):
        raise ConfigError(f"optim.backbone_lr_mult={mult} is not valid: give a factor >= 0 (1: the same rate)")


def backbone_ids(model: nn.Module, key: str) -> set[int]:
    """ids of the parameters a model names as its pretrained part, by its `backbone_parameters()` method."""
    get = getattr(model, "backbone_parameters", None)
    if get is None:
        raise ConfigError(f"{key}: model {type(model).__name__} has no pretrained part (backbone_parameters()): use "
                          f"model=unet model.encoder=resnet34, model=fcn model.backbone=vgg16 or "
                          f"model=torchvision_alexnet, or drop {key.split('=')[0]}")
    return {id(p) for p in get()}


def build_optimizer(optim_cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer; weight decay on weight matrices/kernels not in `no_weight_decay()`, backbone_lr_mult applied."""
    check_optim(optim_cfg)
    mult = float(optim_cfg.get("backbone_lr_mult", 1.0))
    exempt = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.ndim >= 2 and n not in exempt]
    no_decay = [p for n, p in named if p.ndim < 2 or n in exempt]
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    if mult != 1.0:
        back = backbone_ids(model, f"optim.backbone_lr_mult={mult:g}")
        groups = [{**g, "params": [p for p in g["params"] if (id(p) in back) == b],
                   **({"lr": float(optim_cfg.lr) * mult} if b else {})} for b in (False, True) for g in groups]
    make = _call("optim", lambda: instantiate(_optimizer_node(optim_cfg)))
    try:
        return make([g for g in groups if g["params"]])
    except ValueError as e:  # torch.optim's own range checks (lr, betas, momentum, ...): its message, one line
        raise ConfigError(f"optim config: {first_line(e)}: check the optim.* values") from None


def build_scheduler(sched_cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                    steps_per_epoch: int) -> Any:
    """The per-step learning-rate schedule over `total_steps`."""
    _checked("sched", sched_cfg)
    return _call("sched", lambda: instantiate(sched_cfg)(optimizer, total_steps=total_steps,
                                                          steps_per_epoch=steps_per_epoch))


def loss_takes_class_counts(loss_cfg: DictConfig) -> bool:
    """Whether the configured loss wants the training labels' class counts (for `loss.weight=balanced`)."""
    return not loss_cfg.get("auto") and "class_counts" in inspect.signature(_checked("loss", loss_cfg)).parameters


def train_class_counts(bundle: DataBundle) -> Optional[list[int]]:
    """Samples (or mask pixels) per class in the training split, or None without integer training labels in memory."""
    split = bundle.train
    if not isinstance(split, TensorSplit) or split.targets.is_floating_point():
        return None
    counts = torch.bincount(split.targets.flatten().long().cpu(), minlength=bundle.num_classes)
    return counts[:bundle.num_classes].tolist()


def build_loss(loss_cfg: DictConfig, model: nn.Module, bundle: Optional[DataBundle] = None,
               class_counts: Optional[list[int]] = None) -> nn.Module:
    """The configured criterion (`loss=auto`: the model's `criterion`, or cross-entropy), with class counts if taken."""
    if loss_cfg.get("auto"):
        if bundle is not None and bundle.task == "regression":
            return SquaredError()
        return getattr(model, "criterion", nn.CrossEntropyLoss)()
    target = _checked("loss", loss_cfg)
    needs = getattr(target, "needs_model", None)
    if needs is not None and type(model).__name__ != needs:
        raise ConfigError(f"loss={target.__name__} needs model {needs} (its outputs are RBF penalties): use "
                          f"model=lenet5_classic, or loss=cross_entropy for {type(model).__name__}")
    counts = None
    if loss_takes_class_counts(loss_cfg):  # a checkpoint's, as training counted them, else the training split's
        counts = class_counts if class_counts is not None or bundle is None else train_class_counts(bundle)
    given = {} if counts is None else {"class_counts": list(counts)}
    loss = _call("loss", lambda: instantiate(loss_cfg, **given))
    weights = [m.weight for m in loss.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)]
    if bundle is not None and any(w.numel() != bundle.num_classes for w in weights):
        raise ConfigError(f"loss.weight gives {weights[0].numel()} class weight(s), and data={bundle.name} has "
                          f"{bundle.num_classes} classes: give one weight per class "
                          f"({', '.join(map(str, bundle.class_names[:10]))}), or loss.weight=balanced")
    return loss


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16): elsewhere it is slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def loop_settings(t: TrainerConfig, device: torch.device, ckpt_dir: Optional[Path]) -> LoopSettings:
    """What the loop needs; AMP off with a notice where it cannot run."""
    amp = AMP_DTYPES[t.amp]
    if amp is torch.bfloat16 and device.type == "cpu" and cpu_has_native_bf16():
        log.info("trainer.amp=bf16: bfloat16 autocast on the CPU (its AMX / AVX512-BF16 units)")
    elif amp is not None and device.type != "cuda":
        log.info(f"trainer.amp={t.amp} ignored: mixed precision is used on CUDA, and bf16 on CPUs with native "
                 f"bfloat16 (AMX or AVX512-BF16) only (device is {device})")
        amp = None
    # native from compute capability 8 (Ampere) and on ROCm; torch.cuda.is_bf16_supported() also accepts emulation
    if amp is torch.bfloat16 and device.type == "cuda" and not torch.version.hip \
            and torch.cuda.get_device_capability(device)[0] < 8:
        log.info("trainer.amp=bf16: this GPU has no bfloat16, fp16 with a gradient scaler is used instead")
        amp = torch.float16
    values = {f.name: getattr(t, f.name) for f in dataclasses.fields(TrainerConfig)}
    return LoopSettings(**{**values, "device": device, "amp_dtype": amp, "ckpt_dir": ckpt_dir})
