"""Fake quantizers: round-to-grid in float with a straight-through estimator (STE) and
learnable step sizes (LSQ, Esser et al. 2020).

``fake_quantize(x, step, zero_point, qmin, qmax, grad_scale)`` returns
``(clamp(round(x / step) + zero_point, qmin, qmax) - zero_point) * step``. Its gradient is

* w.r.t. ``x``: 1 where ``qmin <= x / step + zero_point <= qmax`` (inside the range),
  0 where the value is clipped (the clipped STE);
* w.r.t. ``step`` (LSQ): ``round(x/s) - x/s`` inside, ``qmin - z`` below, ``qmax - z``
  above, multiplied by ``grad_scale`` and summed over the elements sharing that step.

Weights use per-channel symmetric steps on the narrow grid ``[-(2^(b-1)-1), 2^(b-1)-1]``
(zero is exact, the grid is symmetric, and it matches onnxruntime's symmetric int8).
Activations use one step per tensor, asymmetric (unsigned grid ``[0, 2^b-1]`` with a
zero point) or symmetric.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

MIN_BITS, MAX_BITS = 2, 8


def check_bits(bits: int, what: str = "bits") -> int:
    """``bits`` as an int in 2..8, else a ValueError saying what is allowed."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{what} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


def weight_range(bits: int) -> tuple[int, int]:
    """Integer grid of symmetric weights: ``(-(2^(b-1)-1), 2^(b-1)-1)``, e.g. -127..127."""
    qmax = 2 ** (check_bits(bits) - 1) - 1
    return -qmax, qmax


def activation_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer grid of activations: ``0..2^b-1`` (asymmetric) or ``-2^(b-1)..2^(b-1)-1``."""
    check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)


def lsq_grad_scale(numel_per_step: int, qmax: int) -> float:
    """LSQ's step-gradient scale ``1 / sqrt(numel * Qp)``."""
    return 1.0 / math.sqrt(max(numel_per_step, 1) * max(qmax, 1))


def _per_channel_view(t: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """Reshape a per-channel ``[C]`` tensor (or a scalar) to broadcast against ``x``."""
    if t.numel() == 1:
        return t.reshape([1] * x.dim())
    shape = [1] * x.dim()
    shape[axis] = -1
    return t.reshape(shape)


class _FakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step, zero_point, qmin, qmax, grad_scale, axis):
        s = _per_channel_view(step, x, axis)
        z = _per_channel_view(zero_point, x, axis)
        scaled = x / s
        out = (torch.clamp(torch.round(scaled) + z, qmin, qmax) - z) * s
        ctx.save_for_backward(scaled, z)
        ctx.meta = (qmin, qmax, grad_scale, axis, step.shape)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        scaled, z = ctx.saved_tensors
        qmin, qmax, grad_scale, axis, step_shape = ctx.meta
        shifted = scaled + z  # clipping is decided before rounding, as in LSQ
        below, above = shifted < qmin, shifted > qmax
        inside = ~(below | above)
        grad_x = grad_out * inside if ctx.needs_input_grad[0] else None
        grad_step = None
        if ctx.needs_input_grad[1]:
            d_step = torch.where(inside, torch.round(scaled) - scaled, torch.where(below, qmin - z, qmax - z))
            per_element = grad_out * d_step * grad_scale
            if step_shape.numel() == 1:
                grad_step = per_element.sum().reshape(step_shape)
            else:
                dims = [d for d in range(per_element.dim()) if d != axis]
                grad_step = per_element.sum(dim=dims).reshape(step_shape)
        return grad_x, grad_step, None, None, None, None, None


def fake_quantize(
    x: torch.Tensor,
    step: torch.Tensor,
    zero_point: torch.Tensor | float = 0.0,
    qmin: int = -127,
    qmax: int = 127,
    grad_scale: float = 1.0,
    axis: int = 0,
) -> torch.Tensor:
    """Round ``x`` to the grid ``(q - zero_point) * step``, ``q`` in ``qmin..qmax``, with the
    clipped STE for ``x`` and the LSQ gradient for ``step``. ``step``/``zero_point`` are
    scalars or per-channel ``[C]`` tensors along ``axis``."""
    zero_point = torch.as_tensor(zero_point, dtype=x.dtype, device=x.device)
    return _FakeQuantize.apply(x, step, zero_point, qmin, qmax, grad_scale, axis)


def quantize_to_int(x: torch.Tensor, step: torch.Tensor, zero_point, qmin: int, qmax: int, axis: int = 0) -> torch.Tensor:
    """The integers ``clamp(round(x / step) + zero_point)`` (as int32) behind :func:`fake_quantize`."""
    s = _per_channel_view(step.detach(), x, axis)
    z = _per_channel_view(torch.as_tensor(zero_point, dtype=x.dtype, device=x.device), x, axis)
    return torch.clamp(torch.round(x.detach() / s) + z, qmin, qmax).to(torch.int32)


def minmax_weight_steps(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel (axis 0) symmetric steps ``max|w_c| / qmax`` (nothing clipped;
    ``1e-8`` for an all-zero channel), detached: the steps every deployed weight quantizer
    starts from (``WeightQuantizer.init_from_(w, "minmax")``)."""
    qmax = weight_range(bits)[1]
    step = weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1) / qmax
    return torch.where(step > 0, step, torch.full_like(step, 1e-8))


def quantize_weight_ste(weight: torch.Tensor, bits: int, step: torch.Tensor | None = None) -> torch.Tensor:
    """``weight`` rounded to the symmetric per-channel grid ``q * step``, ``q`` in
    ``-qmax..qmax`` (``step``: default :func:`minmax_weight_steps`), with a straight-through
    gradient (identity w.r.t. ``weight``, none to the step). Plain tensor ops, so it works
    under ``torch.func`` transforms and ``create_graph``. The integers are
    :func:`quantize_to_int` ``(weight, step, 0, -qmax, qmax)``, the codes the export writes."""
    qmin, qmax = weight_range(bits)
    step = minmax_weight_steps(weight, bits) if step is None else step.detach()
    s = _per_channel_view(step, weight, 0)
    rounded = torch.clamp(torch.round(weight.detach() / s), qmin, qmax) * s
    return weight + (rounded - weight).detach()


class WeightQuantizer(nn.Module):
    """Per-channel (axis 0) symmetric fake quantizer of a weight with one learnable step per
    output channel. ``init_from_`` sets the steps: ``"minmax"`` (``max|w_c| / qmax``, nothing
    clipped), ``"mse"`` (clip ratio per channel minimising the squared error) or ``"lsq"``
    (``2 mean|w_c| / sqrt(qmax)``, the LSQ paper's init)."""

    def __init__(self, bits: int, channels: int, learnable: bool = True) -> None:
        super().__init__()
        self.bits = check_bits(bits, "weight bits")
        self.qmin, self.qmax = weight_range(bits)
        self.step = nn.Parameter(torch.ones(channels), requires_grad=learnable)
        self.register_buffer("initialized", torch.tensor(False))
        self.enabled = True

    def extra_repr(self) -> str:
        return f"bits={self.bits}, channels={self.step.numel()}, per_channel=True, symmetric=True"

    @torch.no_grad()
    def init_from_(self, weight: torch.Tensor, method: str = "minmax") -> None:
        w = weight.detach().reshape(weight.shape[0], -1)
        absmax = w.abs().amax(dim=1)
        if method == "minmax":
            step = minmax_weight_steps(weight, self.bits)
        elif method == "lsq":
            step = 2 * w.abs().mean(dim=1) / math.sqrt(self.qmax)
        elif method == "mse":
            step = self._mse_steps(w, absmax)
        else:
            raise ValueError(f"unknown weight init {method!r}; use 'minmax', 'mse' or 'lsq'")
        step = torch.where(step > 0, step, torch.full_like(step, 1e-8))  # all-zero channels
        self.step.copy_(step.to(self.step))
        self.initialized.fill_(True)

    def _mse_steps(self, w: torch.Tensor, absmax: torch.Tensor, candidates: int = 40) -> torch.Tensor:
        best_err = torch.full_like(absmax, float("inf"))
        best_step = absmax / self.qmax
        for ratio in torch.linspace(1.0, 0.3, candidates).tolist():
            step = (absmax * ratio / self.qmax).clamp_min(1e-12)
            q = torch.clamp(torch.round(w / step[:, None]), self.qmin, self.qmax) * step[:, None]
            err = (q - w).pow(2).sum(dim=1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_step = torch.where(better, step, best_step)
        return best_step

    def grad_scale(self, weight: torch.Tensor) -> float:
        return lsq_grad_scale(weight.numel() // weight.shape[0], self.qmax)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return weight
        if not bool(self.initialized):
            self.init_from_(weight)
        return fake_quantize(weight, self.step, 0.0, self.qmin, self.qmax, self.grad_scale(weight), axis=0)

    def integer_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """The integer codes (int32, in ``qmin..qmax``) of ``weight``."""
        if not bool(self.initialized):
            self.init_from_(weight)
        return quantize_to_int(weight, self.step, 0.0, self.qmin, self.qmax, axis=0)


class ActivationQuantizer(nn.Module):
    """Per-tensor fake quantizer of an activation with one learnable step and a fixed
    integer zero point (asymmetric) or none (symmetric).

    While ``observing`` it records the range of what flows through (``"minmax"``: running
    min/max; ``"percentile"``: numel-weighted mean of each batch's lower/upper percentile)
    and passes values through unchanged; :meth:`init_from_range_` then sets the step.
    Used uninitialised outside observation, it initialises itself from the first batch."""

    def __init__(self, bits: int, symmetric: bool = False, learnable: bool = True) -> None:
        super().__init__()
        self.bits = check_bits(bits, "activation bits")
        self.symmetric = bool(symmetric)
        self.qmin, self.qmax = activation_range(bits, self.symmetric)
        self.step = nn.Parameter(torch.tensor(1.0), requires_grad=learnable)
        self.register_buffer("zero_point", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("observed_min", torch.tensor(float("inf")), persistent=False)
        self.register_buffer("observed_max", torch.tensor(float("-inf")), persistent=False)
        self.enabled = True
        self.observing: str | None = None  # None, "minmax" or "percentile"
        self.percentile = 99.99
        self._weight_seen = 0

    def extra_repr(self) -> str:
        return f"bits={self.bits}, symmetric={self.symmetric}, per_tensor=True"

    def reset_observer_(self) -> None:
        self.observed_min.fill_(float("inf"))
        self.observed_max.fill_(float("-inf"))
        self._weight_seen = 0

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        x = x.detach().float().flatten()
        if self.observing == "percentile" and x.numel() > 1:
            lo_k = max(1, int(round(x.numel() * (100 - self.percentile) / 100)))
            hi_k = min(x.numel(), max(1, int(round(x.numel() * self.percentile / 100))))
            lo, hi = torch.kthvalue(x, lo_k).values, torch.kthvalue(x, hi_k).values
            total = self._weight_seen + x.numel()
            if self._weight_seen == 0:
                self.observed_min.copy_(lo)
                self.observed_max.copy_(hi)
            else:
                self.observed_min.mul_(self._weight_seen / total).add_(lo * (x.numel() / total))
                self.observed_max.mul_(self._weight_seen / total).add_(hi * (x.numel() / total))
            self._weight_seen = total
        else:
            self.observed_min.copy_(torch.minimum(self.observed_min, x.min()))
            self.observed_max.copy_(torch.maximum(self.observed_max, x.max()))

    @torch.no_grad()
    def init_from_range_(self, low: float | torch.Tensor | None = None, high: float | torch.Tensor | None = None) -> None:
        """Set step and zero point so that ``[low, high]`` (default: the observed range,
        widened to include 0) maps onto the grid."""
        low = float(self.observed_min if low is None else low)
        high = float(self.observed_max if high is None else high)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("activation range is not set: observe some data first (calibrate_) or pass low/high")
        low, high = min(low, 0.0), max(high, 0.0)
        if self.symmetric:
            step = max(abs(low), abs(high)) / max(abs(self.qmin), self.qmax)
            zero_point = 0.0
        else:
            step = (high - low) / (self.qmax - self.qmin)
        step = step if step > 0 else 1e-8
        if not self.symmetric:
            zero_point = float(min(max(round(self.qmin - low / step), self.qmin), self.qmax))
        self.step.fill_(step)
        self.zero_point.fill_(zero_point)
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.observe(x)
            return x
        if not self.enabled:
            return x
        if not bool(self.initialized):
            self.reset_observer_()
            self.observe(x)
            self.init_from_range_()
        grad_scale = lsq_grad_scale(x.numel(), self.qmax)
        return fake_quantize(x, self.step, self.zero_point, self.qmin, self.qmax, grad_scale)
