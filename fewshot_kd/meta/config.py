"""Meta-training settings: one typed config, stored next to every policy it produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from fewshot_kd.config_keys import check_known_keys
from fewshot_kd.errors import FewShotKDError, UnknownNameError
from fewshot_kd.meta.backends import INNER_BACKENDS
from fewshot_kd.meta.episodes import EpisodeSpec
from fewshot_kd.meta.layer_choice import BLOCK_PRIORS
from fewshot_kd.meta.objective import ORDERS, InnerConfig

BACKENDS = tuple(INNER_BACKENDS.names())
"""How the inner loop runs the student (:data:`~fewshot_kd.meta.backends.INNER_BACKENDS`)."""
PRECISIONS = ("fp32", "bf16")
"""The student's inner-loop precision (``MetaTrainConfig.precision``)."""


@dataclass(frozen=True)
class MetaTrainConfig:
    """``episodes`` episodes in meta-batches of ``meta_batch``, each from one of ``tasks``
    (task-family names or files), ``ways``-way, K drawn from ``shots``, a MACs budget from
    ``macs_range`` and an average weight bit width from ``bits``; ``inner_*`` steps of
    differentiable distillation; Adam on the policy at ``outer_lr``. ``validate``: families
    held out of training, scored on ``validate_episodes`` fixed episodes every
    ``validate_every`` meta-steps; the best-scoring policy is kept, and the run stops after
    ``patience`` scorings without improvement (0: runs to the end). ``precision``: ``"fp32"``, or
    ``"bf16"`` for the student's inner loop under bf16 autocast (the policy and the budget
    projection stay fp32). bf16 is faster on GPUs but, with adapt()'s Adam epsilon (1e-8), the
    meta-gradient through the sign-like early Adam steps is very sensitive to rounding: on a CPU
    with native bf16 (AMX) its cosine with the fp32 meta-gradient measured 0.09 on a digits
    episode (0.997 with an epsilon of 1e-3). fp32 is the default on every device. ``vmap``: run
    the meta-batch's episodes of one family and K in one ``torch.func.vmap`` call
    (:mod:`fewshot_kd.meta.vmapped`; first order and fp32 only). ``block_prior``: which blocks an
    untrained policy keeps (:func:`~fewshot_kd.meta.layer_choice.depth_prior`); ``"auto"``: every
    other one when every family is extractive QA or a causal LM (what adapt() keeps there), else
    the last ones."""

    tasks: tuple[str, ...] = ("digits",)
    episodes: int = 400
    meta_batch: int = 4
    ways: int = 5
    shots: tuple[int, ...] = (5, 10, 20)
    query_per_class: int = 10
    views: int = 12
    macs_range: tuple[float, float] = (0.35, 0.7)
    bits: tuple[int, ...] = (8, 6)
    inner_steps: int = InnerConfig.steps
    inner_lr: float = InnerConfig.lr
    backend: str = "func"
    order: str = InnerConfig.order
    truncate: int = InnerConfig.truncate
    budget_weight: float = 50.0
    outer_lr: float = 3e-3
    hidden: int = 32
    seed: int = 0
    checkpoint_every: int = 10
    classes: dict = field(default_factory=dict)  # family -> meta-training classes (default: all)
    validate: tuple[str, ...] = ()
    validate_every: int = 10
    validate_episodes: int = 8
    patience: int = 0
    precision: str = "fp32"
    vmap: bool = False
    block_prior: str = "auto"

    def __post_init__(self) -> None:
        try:
            INNER_BACKENDS.get(self.backend)
        except UnknownNameError as error:
            raise UnknownNameError(
                f"{error}. The inner loop is adapt()'s Adam loop run through torch.func; the SGD unrolls of "
                f"higher / learn2learn live in fewshot_kd.meta.inner") from None
        if self.order not in ORDERS:
            raise FewShotKDError(f"order must be one of {ORDERS}, got {self.order!r}")
        for name in ("episodes", "meta_batch", "ways", "views", "inner_steps", "checkpoint_every", "validate_every",
                     "validate_episodes"):
            if getattr(self, name) < 1:
                raise FewShotKDError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.tasks:
            raise FewShotKDError("meta-training needs at least one task family (--tasks)")
        lo, hi = self.macs_range
        if not 0 < lo <= hi <= 1:
            raise FewShotKDError(f"macs_range must satisfy 0 < low <= high <= 1, got {self.macs_range}")
        if self.precision not in PRECISIONS:
            raise FewShotKDError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.block_prior not in ("auto",) + BLOCK_PRIORS:
            raise FewShotKDError(f"block_prior must be one of {('auto',) + BLOCK_PRIORS}, got {self.block_prior!r}")
        if self.vmap and self.order != "first":
            raise FewShotKDError(f"vmap over episodes runs the first-order inner loop only, but order is "
                                 f"{self.order!r}; use --order first, or drop --vmap")
        if self.vmap and self.precision != "fp32":
            raise FewShotKDError("vmap over episodes runs in fp32 only (torch.func.vmap's BatchNorm backward fails on "
                                 "the bf16 activations autocast feeds fp32 BatchNorm weights); use --precision fp32, "
                                 "or drop --vmap")
        if self.patience < 0:
            raise FewShotKDError(f"patience must be >= 0 (0: no early stopping), got {self.patience}")
        for name in ("tasks", "shots", "macs_range", "bits", "validate"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        both = sorted(set(self.tasks) & set(self.validate))
        if both:
            raise FewShotKDError(f"{both} are both meta-trained on (--tasks) and validated on (--validate); "
                                 f"validation families must be held out of training")

    @property
    def episode_spec(self) -> EpisodeSpec:
        return EpisodeSpec(self.shots, self.query_per_class, self.views, self.macs_range, self.bits)

    @property
    def inner(self) -> InnerConfig:
        return InnerConfig(steps=self.inner_steps, lr=self.inner_lr, order=self.order, truncate=self.truncate,
                           budget_weight=self.budget_weight)

    @property
    def steps(self) -> int:
        return -(-self.episodes // self.meta_batch)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MetaTrainConfig":
        check_known_keys(cls, data, "meta-train config")
        return cls(**data)  # keys added later take their defaults, so older runs' configs still read
