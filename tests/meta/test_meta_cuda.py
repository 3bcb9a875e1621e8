"""The meta-training step on CUDA gives the CPU's loss and meta-gradient (skipped without a GPU)."""

import pytest
import torch

from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.objective import episode_loss
from fewshot_kd.meta.policy_net import PolicyNet


def _step(device: str):
    config = MetaTrainConfig(ways=3, shots=(5,), views=2, inner_steps=2)
    family = load_family("digits", config.ways, device=device)
    torch.manual_seed(0)
    net = PolicyNet().to(device)
    loss, _ = episode_loss(net, make_episode([family], 0, config.episode_spec, 0), config.inner)
    loss.backward()
    return loss.item(), [(p.grad if p.grad is not None else torch.zeros_like(p)).cpu() for p in net.parameters()]


@pytest.mark.gpu
def test_cuda_meta_step_matches_cpu(monkeypatch):
    # cuDNN's default TF32 convolutions moved the loss by 1e-3 relative on an H200: compare fp32 with fp32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cpu_loss, cpu_grads = _step("cpu")
    gpu_loss, gpu_grads = _step("cuda")
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-3)
    for a, b in zip(gpu_grads, cpu_grads):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-4)
