"""A meta-training config small enough for tests (digits, a few episodes), and the check that an
episode's meta-loss is its query loss and reaches the policy."""

import math

from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.objective import InnerConfig, episode_loss
from fewshot_kd.meta.policy_net import PolicyNet


def make_tiny_config(**overrides) -> MetaTrainConfig:
    settings = dict(tasks=("digits",), episodes=4, meta_batch=2, ways=3, shots=(5, 10), query_per_class=5,
                    views=2, inner_steps=2, checkpoint_every=1)
    settings.update(overrides)
    return MetaTrainConfig(**settings)


def check_meta_loss_reaches(episode, heads: tuple[str, ...]) -> None:
    """A small policy's meta-loss on ``episode`` (3 inner steps, the last 2 differentiated) is
    finite, equals the query cross-entropy plus the penalty, and its gradient reaches every head
    named in ``heads`` (a parameter-name prefix of :class:`PolicyNet`)."""
    net = PolicyNet(hidden=8)
    loss, metrics = episode_loss(net, episode, InnerConfig(steps=3, order="truncated", truncate=2))
    assert math.isfinite(loss.item()) and 0.0 <= metrics["query_acc"] <= 1.0
    assert abs(metrics["meta_loss"] - metrics["query_ce"] - metrics["penalty"]) < 1e-5
    loss.backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    for head in heads:
        assert any(g is not None and float(g.abs().sum()) > 0 for n, g in grads.items() if n.startswith(head)), head
