"""Model inspection and DepGraph construction that copes with untraceable modules.

Torch-Pruning traces autograd and treats any op it does not know as element-wise. A custom
module that changes the channel count without parameters (the option-A shortcut of CIFAR
ResNets: subsample, then zero-pad channels) would then couple unrelated channels and
corrupt the model. Such modules, and unsupported layers the caller chose to ignore, become
*barriers*: during tracing each one runs as a single opaque autograd node registered with a
pruner that refuses to prune, and every channel group that touches a barrier is left
untouched (for ResNets: the residual streams keep their widths and only the channels
inside each block are pruned).

A barrier that knows how to lose channels on either side (``prune_in_channels_`` and
``prune_out_channels_``, as :class:`~fewshot_kd.models.cifar_resnet.PadChannelsShortcut`) is a
*placer*: with ``streams=True`` it gets a pruner that forwards to those methods, its input and
output channel groups are independent and prunable, and the residual streams narrow too.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.nn as nn

from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.prune._util import call_model, probe, torch_pruning

PRODUCERS = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class Inspection:
    """What one probing forward pass found."""

    barriers: dict[str, nn.Module] = field(default_factory=dict)
    unsupported: dict[str, nn.Module] = field(default_factory=dict)
    last_layer: str | None = None


def _own_parameters(module: nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters(recurse=False) if p.numel() > 1]


def _is_known(module: nn.Module) -> bool:
    tp = torch_pruning()
    return tp.ops.module2type(module) != tp.ops.OPTYPE.ELEMENTWISE


def _is_builtin(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn")


def _channels(x: Any) -> int | None:
    return int(x.shape[1]) if isinstance(x, torch.Tensor) and x.dim() >= 2 else None


def inspect_model(model: nn.Module, example_inputs: Any) -> Inspection:
    """Run ``model`` once (eval mode, restored after) and find channel-changing custom
    modules without parameters (barriers), modules with parameters that Torch-Pruning
    cannot resize (unsupported), and the last Conv/Linear layer executed (the classifier)."""
    found = Inspection()
    names = {m: n for n, m in model.named_modules()}
    order: list[str] = []
    hooks = []

    def watch(module: nn.Module, inputs: tuple, output: Any) -> None:
        name = names[module]
        if isinstance(module, PRODUCERS):
            order.append(name)
            return
        c_in = _channels(inputs[0]) if inputs else None
        c_out = _channels(output)
        if c_in is not None and c_out is not None and c_in != c_out:
            found.barriers[name] = module

    for name, module in model.named_modules():
        if _own_parameters(module) and not _is_known(module):
            found.unsupported[name] = module
        leaf = next(iter(module.children()), None) is None
        if isinstance(module, PRODUCERS) or (leaf and not _is_builtin(module) and not _own_parameters(module)):
            hooks.append(module.register_forward_hook(watch))
    try:
        probe(model, example_inputs, call_model)
    finally:
        for hook in hooks:
            hook.remove()
    found.last_layer = order[-1] if order else None
    return found


def check_supported(found: Inspection, ignored: list[nn.Module]) -> list[nn.Module]:
    """The ignored unsupported modules (they become barriers); raises
    :class:`UnsupportedLayerError` naming the first unsupported module not ignored."""
    ignored_ids = {id(m) for layer in ignored for m in layer.modules()}
    opaque = []
    for name, module in found.unsupported.items():
        if id(module) not in ignored_ids:
            raise UnsupportedLayerError(
                f"layer {name!r} ({type(module).__name__}) holds parameters "
                f"{_own_parameters(module)} that structured pruning cannot resize. Pass "
                f"ignored_layers=[{name!r}, ...] to keep it and every channel it touches "
                "unchanged, or build the model from standard layers (Conv, Linear, BatchNorm, "
                "LayerNorm, Embedding, MultiheadAttention, LSTM)."
            )
        opaque.append(module)
    return opaque


class _Opaque(torch.autograd.Function):
    """One autograd node standing for a whole barrier module (tracing only)."""

    @staticmethod
    def forward(ctx, run, x):
        out = run(x)
        return out.clone() if out is x else out

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - tracing never backpropagates
        return None, None


@contextmanager
def _opaque_forward(modules: list[nn.Module]) -> Iterator[None]:
    """Make each module's forward a single opaque autograd node while tracing."""
    patched = []
    for module in modules:
        original = module.forward

        def forward(x, *args, _original=original, **kwargs):
            if not isinstance(x, torch.Tensor):
                return _original(x, *args, **kwargs)
            return _Opaque.apply(lambda t: _original(t, *args, **kwargs), x)

        module.forward = forward
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _barrier_pruner():
    tp = torch_pruning()

    class BarrierPruner(tp.pruner.BasePruningFunc):
        """Couples its input and output channels (so groups through it are found) but is
        listed among the ignored layers, so those groups are never pruned."""

        TARGET_MODULES = None

        def prune_out_channels(self, layer: nn.Module, idxs):
            raise UnsupportedLayerError(f"{type(layer).__name__} cannot be pruned (it is a barrier)")

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: nn.Module):
            return None

        def get_in_channels(self, layer: nn.Module):
            return None

    return BarrierPruner()


def _placer_pruner():
    tp = torch_pruning()

    class PlacerPruner(tp.pruner.BasePruningFunc):
        """Forwards channel removal to the module's own ``prune_in_channels_`` /
        ``prune_out_channels_``; input and output channels are not coupled."""

        TARGET_MODULES = None

        def prune_out_channels(self, layer: nn.Module, idxs):
            layer.prune_out_channels_(idxs)
            return layer

        def prune_in_channels(self, layer: nn.Module, idxs):
            layer.prune_in_channels_(idxs)
            return layer

        def get_out_channels(self, layer: nn.Module):
            return getattr(layer, "out_channels", None)

        def get_in_channels(self, layer: nn.Module):
            return getattr(layer, "in_channels", None)

    return PlacerPruner()


@contextmanager
def traced(model: nn.Module, barriers: list[nn.Module], placed: list[nn.Module] = ()) -> Iterator[dict]:
    """Context for building a DepGraph/pruner on ``model``: barriers and placers are opaque and
    get the barrier / placer pruner (yielded as ``customized_pruners``), gradients are on,
    Torch-Pruning's warnings are silenced and the model's train/eval mode is restored."""
    frozen, placer = _barrier_pruner(), _placer_pruner()
    customized = {**{type(m): frozen for m in barriers}, **{type(m): placer for m in placed}}
    was_training = model.training
    try:
        with _opaque_forward([*barriers, *placed]), torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield customized
    finally:
        model.train(was_training)


def build_graph(model: nn.Module, example_inputs: Any, barriers: list[nn.Module]):
    """A Torch-Pruning ``DependencyGraph`` of ``model`` with the barriers opaque."""
    tp = torch_pruning()
    with traced(model, barriers) as customized:
        return tp.DependencyGraph().build_dependency(
            model,
            example_inputs=example_inputs,
            forward_fn=lambda m, x: call_model(m, x),
            customized_pruners=customized,
            verbose=False,
        )


def is_placer(module: nn.Module) -> bool:
    """Whether a channel-changing module can lose channels on either side (see the module docs)."""
    return callable(getattr(module, "prune_in_channels_", None)) and callable(getattr(module, "prune_out_channels_", None))


def frozen_layers(model: nn.Module, found: Inspection, ignored: list[nn.Module],
                  streams: bool = False) -> list[nn.Module]:
    """Barriers: the channel-changing custom modules (without the placers when ``streams``) plus
    the ignored unsupported ones."""
    custom = [m for m in found.barriers.values() if not (streams and is_placer(m))]
    return custom + check_supported(found, ignored)


def placers(found: Inspection, streams: bool) -> list[nn.Module]:
    """The channel-changing modules that are pruned with the streams they join (``streams``)."""
    return [m for m in found.barriers.values() if is_placer(m)] if streams else []
