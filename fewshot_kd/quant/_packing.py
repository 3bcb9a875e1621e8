"""Pack small signed integers into bytes: 8-bit codes one per byte, 3-4-bit codes two per
byte (low nibble first), 2-bit codes four per byte (lowest bits first), two's complement."""

from __future__ import annotations

import torch


def container_bits(bits: int) -> int:
    """Bits each code occupies in the file: 2, 4 or 8."""
    return 2 if bits <= 2 else 4 if bits <= 4 else 8


def pack_signed(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Flatten signed integer ``codes`` (each fitting in ``bits``) into a uint8 (or int8 for
    8-bit containers) tensor of ``ceil(numel * container / 8)`` bytes."""
    width = container_bits(bits)
    flat = codes.flatten().to(torch.int32)
    low, high = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    if flat.numel() and (int(flat.min()) < low or int(flat.max()) > high):
        raise ValueError(f"codes span {int(flat.min())}..{int(flat.max())}, outside the {width}-bit range {low}..{high}")
    if width == 8:
        return flat.to(torch.int8)
    per_byte = 8 // width
    pad = (-flat.numel()) % per_byte
    unsigned = (flat & (2**width - 1)).to(torch.uint8)
    unsigned = torch.cat([unsigned, unsigned.new_zeros(pad)]).reshape(-1, per_byte)
    packed = torch.zeros(unsigned.shape[0], dtype=torch.uint8, device=codes.device)
    for slot in range(per_byte):
        packed |= unsigned[:, slot] << (slot * width)
    return packed


def unpack_signed(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    """Inverse of :func:`pack_signed`: the first ``numel`` codes as int32."""
    width = container_bits(bits)
    if width == 8:
        return packed.to(torch.int32)[:numel]
    per_byte = 8 // width
    mask = 2**width - 1
    as_int = packed.to(torch.int32)
    slots = torch.stack([(as_int >> (slot * width)) & mask for slot in range(per_byte)], dim=1).flatten()[:numel]
    return torch.where(slots >= 2 ** (width - 1), slots - 2**width, slots)
