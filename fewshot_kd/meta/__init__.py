"""Meta-learning the compression policy (``python -m fewshot_kd.meta_train``).

A :class:`PolicyNet` reads per-layer descriptors of a task and outputs adapt()'s decisions;
it is trained by bilevel optimisation over episodes (:func:`meta_train`) whose inner loop is
adapt()'s own distillation loop (:mod:`fewshot_kd.distill.loop`), run differentiably.
:func:`unroll` keeps plain SGD unrolls (backends ``func``, ``higher``, ``learn2learn``).
A trained :class:`MetaPolicy` plugs into ``fewshot_kd.adapt(..., policy=...)``.
"""

from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.inner import BACKENDS, ORDERS, unroll
from fewshot_kd.meta.meta_policy import MetaPolicy
from fewshot_kd.meta.policy_net import PolicyNet
from fewshot_kd.meta.train import meta_train

__all__ = ["BACKENDS", "ORDERS", "MetaPolicy", "MetaTrainConfig", "PolicyNet", "meta_train", "unroll"]
