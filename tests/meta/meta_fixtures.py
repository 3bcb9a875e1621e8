"""A meta-training config small enough for tests (digits, a few episodes)."""

from fewshot_kd.meta.config import MetaTrainConfig


def make_tiny_config(**overrides) -> MetaTrainConfig:
    settings = dict(tasks=("digits",), episodes=4, meta_batch=2, ways=3, shots=(5, 10), query_per_class=5,
                    views=2, inner_steps=2, checkpoint_every=1)
    settings.update(overrides)
    return MetaTrainConfig(**settings)
