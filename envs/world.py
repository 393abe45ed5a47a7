"""The world of a scenario: catalog, embeddings, projection and personas, built once and shared.

A ``World`` is read-only after construction; every env and batched env of the same scenario in a
process shares one (``build_world`` memoises by scenario hash), so a catalog is encoded once per
process and, through the on-disk cache, once per machine.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from lmrecsim.exceptions import LmrecsimError

from ..encoders import EmbeddingCache, Encoder, EncoderError, load_encoder
from ..encoders.base import token_budget
from ..scenarios import Scenario, scenario_hash
from .ann import IVFIndex, default_lists
from .blas import one_blas_thread
from .candidates import nearest_slots
from .catalog import Catalog, CatalogError, load_catalog, load_default_catalog
from .personas import (
    Persona,
    PersonaError,
    load_default_personas,
    load_personas,
    persona_by_name,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


class WorldError(LmrecsimError):
    """A scenario whose world cannot be built (one line naming the key and the problem)."""


@dataclass(frozen=True)
class Projection:
    """PCA projection of d-dimensional embeddings to p dimensions.

    ``project(x) = (x - mean) @ components * scale``, with components of shape (d, p) ordered by
    explained variance, each sign fixed so that its largest-magnitude loading is positive (so the
    result is deterministic), and ``scale`` chosen so catalog items have mean squared norm p
    (per-dimension variance about 1, a good input range for networks).
    """

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (d, p)
    scale: float
    explained_variance_ratio: float

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    def project(self, x: np.ndarray) -> np.ndarray:
        """Project rows of ``x`` (n, d) -> (n, p) float32 (on one BLAS thread: the result must not
        depend on the thread settings, see :mod:`lmrecsim.envs.blas`)."""
        with one_blas_thread():
            return (((x - self.mean) @ self.components) * self.scale).astype(np.float32)

    @staticmethod
    def fit(embeddings: np.ndarray, dim: int | None) -> Projection:
        """Fit on catalog embeddings (n, d); ``dim=None`` keeps all d dims (identity, rescaled)."""
        with one_blas_thread():
            return Projection._fit(np.asarray(embeddings, dtype=np.float64), dim)

    @staticmethod
    def _fit(x: np.ndarray, dim: int | None) -> Projection:
        n, d = x.shape
        mean = x.mean(axis=0)
        if dim is None or dim >= d:
            comps = np.eye(d)
            ratio = 1.0
        else:
            cov = (x - mean).T @ (x - mean) / max(n - 1, 1)
            evals, evecs = np.linalg.eigh(cov)
            order = np.argsort(evals)[::-1]
            evals, evecs = evals[order], evecs[:, order]
            comps = evecs[:, :dim]
            rows = np.argmax(np.abs(comps), axis=0)
            signs = np.sign(comps[rows, np.arange(dim)])
            signs[signs == 0] = 1.0
            comps = comps * signs
            total = float(evals.clip(min=0).sum())
            ratio = float(evals[:dim].clip(min=0).sum() / total) if total > 0 else 1.0
        proj = (x - mean) @ comps
        msq = float((proj**2).sum(axis=1).mean())
        scale = float(np.sqrt(comps.shape[1] / msq)) if msq > 0 else 1.0
        return Projection(
            mean=mean.astype(np.float32),
            components=comps.astype(np.float32),
            scale=scale,
            explained_variance_ratio=ratio,
        )


@dataclass
class World:
    """Everything about a scenario that does not change during simulation.

    Shapes: n items, d embedding dims, p projected dims, P personas, T topics.
    """

    scenario: Scenario
    catalog: Catalog
    encoder: Encoder
    item_emb: np.ndarray  # (n, d) float32, unit rows
    item_proj: np.ndarray  # (n, p) float32
    projection: Projection
    popularity: np.ndarray  # (n,) float64, sums to 1 (new items 0)
    log_pop_rel: np.ndarray  # (n,) float32, log(max(pop * n, floor))
    pop_cdf: np.ndarray  # (n,) float64 cumulative popularity, for inverse-CDF sampling
    pop_rank: np.ndarray  # (n,) int64, 0 = most popular
    head_rank: int  # items with pop_rank < head_rank are the head
    arrival: np.ndarray  # (n,) int64 episode step an item becomes available (0 = from the start)
    new_order: np.ndarray  # (n_new,) int64 indices of new items sorted by arrival
    new_arrival_sorted: np.ndarray  # (n_new,) int64 their arrival steps, ascending
    primary_topic: np.ndarray  # (n,) int64
    personas: list[Persona]
    persona_emb: np.ndarray  # (P, d) float32
    onboarding_emb: np.ndarray  # (P, d) float32
    topic_names: tuple[str, ...]
    key: str = ""
    # The approximate index of the nearest-candidate source (``candidates.index: ivf``), or None.
    nearest_index: IVFIndex | None = field(default=None, repr=False)
    # ``state.mode: events``: encodings of the history text's sentences, (E, n, d) float32 with
    # row r - 1 for "Clicked ... (rated r/5)." and row 5 (``text_events: all``) for "Skipped ...";
    # and (P, d) for each persona's "At sign-up said: ..." sentence. None in the other modes.
    event_emb: np.ndarray | None = field(default=None, repr=False)
    event_onboarding_emb: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        return int(self.item_emb.shape[0])

    @property
    def dim(self) -> int:
        return int(self.item_emb.shape[1])

    @property
    def project_dim(self) -> int:
        return self.projection.dim

    @property
    def n_topics(self) -> int:
        return len(self.topic_names)

    @cached_property
    def item_unit_proj(self) -> np.ndarray:
        """Projected item vectors scaled to unit length, (n, p) float32 (for cosines)."""
        norm = np.linalg.norm(self.item_proj, axis=1, keepdims=True)
        return (self.item_proj / np.maximum(norm, 1e-12)).astype(np.float32)

    @cached_property
    def event_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """PCA coordinates (without centring or scale) of the event tables: (E, n, p) and (P, p)
        float32, for ``state.mode: events`` (computed once per world)."""
        if self.event_emb is None or self.event_onboarding_emb is None:
            raise ValueError("state.mode 'events' needs a world built with its event tables")
        comps = self.projection.components
        e = self.event_emb
        with one_blas_thread():
            coords = (e.reshape(-1, e.shape[2]) @ comps).astype(np.float32)
            onboarding = (self.event_onboarding_emb @ comps).astype(np.float32)
        return coords.reshape(e.shape[0], e.shape[1], -1), onboarding

    @cached_property
    def event_tokens(self) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Token counts of the history text's sentences, laid out as the event tables: (E, n) int32
        and (P,) int64 for each persona's sign-up sentence, and the encoder's token limit; None
        when the encoder embeds texts of any length. History texts keep their newest events that
        fit (:func:`~lmrecsim.envs.simulator.fit_history`)."""
        budget = token_budget(self.encoder)
        if budget is None:
            return None
        from .simulator import event_sentences, onboarding_event_text

        counts, limit = budget
        titles = self.catalog.titles
        texts = event_sentences(titles, self.scenario.state.text_events)
        texts += [onboarding_event_text(p.onboarding) for p in self.personas]
        n = np.asarray(counts(texts), dtype=np.int64)
        table = n[: -len(self.personas)].reshape(-1, len(titles)).astype(np.int32)
        return table, n[-len(self.personas) :], limit


_WORLDS: dict[str, World] = {}


def _select_items(catalog: Catalog, scenario: Scenario, rng: np.random.Generator) -> Catalog:
    cfg = scenario.catalog
    index = np.arange(len(catalog))
    if cfg.topics is not None:
        unknown = sorted(set(cfg.topics) - set(catalog.topic_names))
        if unknown:
            raise WorldError(
                f"{scenario.source}: catalog.topics: {unknown[0]!r} is not a topic of the catalog "
                f"(expected some of: {', '.join(catalog.topic_names[:8])}, ...)"
            )
        keep = np.isin(np.asarray(catalog.topic_names)[catalog.primary_topic], cfg.topics)
        index = index[keep]
        if index.size == 0:
            # The filter keeps items by their first (primary) topic; a topic that only ever
            # comes second selects nothing.
            raise WorldError(
                f"{scenario.source}: catalog.topics: no item has {', '.join(map(repr, cfg.topics))} "
                "as its primary (first) topic (expected topics that some item lists first)"
            )
    if cfg.n_items is not None:
        if cfg.n_items > len(index):
            raise WorldError(
                f"{scenario.source}: catalog.n_items: {cfg.n_items} is more than the "
                f"{len(index)} items available (expected <= {len(index)})"
            )
        index = np.sort(rng.choice(index, size=cfg.n_items, replace=False))
    if len(index) < scenario.candidates.k:
        raise WorldError(
            f"{scenario.source}: candidates.k: {scenario.candidates.k} is more than the "
            f"{len(index)} items in the catalog"
        )
    return catalog if len(index) == len(catalog) else catalog.subset(index)


def _resolve_personas(scenario: Scenario) -> list[Persona]:
    spec = scenario.users.personas
    if isinstance(spec, list):
        shipped = load_default_personas()
        out = []
        for i, name in enumerate(spec):
            try:
                out.append(persona_by_name(shipped, name))
            except PersonaError as exc:
                detail = str(exc).removeprefix("persona: ")
                raise WorldError(f"{scenario.source}: users.personas[{i}]: {detail}") from None
        return out
    if spec == "default":
        return load_default_personas()
    path = scenario.resolve_path(spec)
    if not os.path.exists(path) and not spec.lower().endswith((".csv", ".yaml", ".yml")):
        raise WorldError(
            f"{scenario.source}: users.personas: {spec!r} is not a file (expected 'default', a "
            f"persona file (.csv or .yaml), or a list of shipped persona names such as [{spec}])"
        )
    try:
        return load_personas(path)
    except PersonaError as exc:
        raise PersonaError(f"{scenario.error_prefix}users.personas: {exc}") from None


def _check_persona_topics(personas: list[Persona], scenario: Scenario, catalog: Catalog) -> None:
    """Refuse a persona file whose ``liked``/``avoided`` name topics the catalog lacks.

    Only persona files are checked: the shipped personas describe the shipped catalog (a test
    checks them against it) and stay usable, as descriptions, with a catalog of your own.
    """
    spec = scenario.users.personas
    if not isinstance(spec, str) or spec == "default":
        return
    known = set(catalog.topic_names)
    for row, persona in enumerate(personas, start=1):
        for key in ("liked", "avoided"):
            unknown = [t for t in getattr(persona, key) if t not in known]
            if unknown:
                close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else (f"expected topics of the catalog, such as {', '.join(sorted(known)[:5])}")
                )
                raise WorldError(
                    f"{scenario.resolve_path(spec)}: persona {row} ({persona.name!r}): {key}: "
                    f"{unknown[0]!r} is not a topic of the catalog ({hint})"
                )


def _load_projection(cache: EmbeddingCache, key: str) -> Projection | None:
    mean = cache.get_array(key + "|mean")
    comps = cache.get_array(key + "|components")
    meta = cache.get_array(key + "|meta")
    if mean is None or comps is None or meta is None or meta.shape != (2,):
        return None
    return Projection(
        mean=mean.astype(np.float32),
        components=comps.astype(np.float32),
        scale=float(meta[0]),
        explained_variance_ratio=float(meta[1]),
    )


def _nearest_index(
    cache: EmbeddingCache, proj_key: str, item_proj: np.ndarray, scenario: Scenario, progress: bool
) -> IVFIndex:
    """The ivf index of the nearest source, from the embedding cache when it holds it.

    Clustering 1,000,000 items takes 10-20 s; every process that builds the same world (training,
    evaluation, benchmark workers) loads the saved index instead. The key names everything the
    index depends on: the projected items (``proj_key``: model, catalog, projection size), the
    number of lists and the seed; a stale or damaged entry is rebuilt and replaced.
    """
    cand = scenario.candidates
    lists = cand.ivf_lists if cand.ivf_lists is not None else default_lists(item_proj.shape[0])
    key = f"ivf|{proj_key}|lists={lists}|seed={scenario.seed}"
    saved = cache.get_array(key)
    index = IVFIndex(
        item_proj,
        lists=lists,
        probe=cand.ivf_probe,
        seed=scenario.seed,
        progress=progress,
        serialized=saved,
    )
    if not index.from_serialized:
        cache.put_array(key, index.serialize())
    return index


# The largest event table ``state.mode: events`` builds (E x n x d float32).
EVENT_TABLE_MAX_BYTES = 4 << 30


def _event_tables(
    encoder: Encoder, titles: Sequence[str], onboarding: Sequence[str], scenario: Scenario
) -> tuple[np.ndarray, np.ndarray]:
    """The language model's encodings of every sentence a history text can hold.

    Each click sentence once per item and rating, each skip sentence once per item (``text_events:
    all``), and each persona's sign-up sentence; through the scenario's (disk-cached) encoder, so
    a second world over the same catalog and model reads them from the cache.

    Raises:
        WorldError: the table would exceed :data:`EVENT_TABLE_MAX_BYTES`.
    """
    from .simulator import event_sentences, event_table_rows, onboarding_event_text

    rows = event_table_rows(scenario.state.text_events)
    n = len(titles)
    need = rows * n * encoder.dim * 4
    if need > EVENT_TABLE_MAX_BYTES:
        raise WorldError(
            f"{scenario.source}: state.mode: 'events' needs {rows} encodings of {encoder.dim} "
            f"floats per item, {need / 2**30:.1f} GiB for {n} items (expected at most "
            f"{EVENT_TABLE_MAX_BYTES / 2**30:.0f} GiB; use 'pooled' or 'text' for this catalog)"
        )
    texts = event_sentences(titles, scenario.state.text_events)
    texts += [onboarding_event_text(o) for o in onboarding]
    emb = np.asarray(encoder.encode(texts), dtype=np.float32)
    table = np.ascontiguousarray(emb[: rows * n].reshape(rows, n, -1))
    return table, np.ascontiguousarray(emb[rows * n :])


def build_world(
    scenario: Scenario, *, encoder: Encoder | None = None, show_progress: bool = False
) -> World:
    """Build (or fetch from the per-process memo) the world of a scenario.

    Args:
        scenario: a validated scenario.
        encoder: use this encoder instead of the one the scenario names (tests, benchmarks).
        show_progress: show a progress bar while encoding the catalog.
    """
    enc_cfg = scenario.encoder
    # Relative to the scenario's folder, as every path in a scenario (a file's are made absolute
    # when it is loaded; a dict scenario's resolve against its base_dir).
    cache_dir = None if enc_cfg.cache_dir is None else scenario.resolve_path(enc_cfg.cache_dir)
    if encoder is None:
        model = None if enc_cfg.model == "default" else enc_cfg.model
        if model is not None and not model.startswith(("/", "~", ".")):
            resolved = scenario.resolve_path(model)
            if os.path.isdir(resolved):
                model = resolved
        try:
            encoder = load_encoder(
                model,
                pooling=enc_cfg.pooling,
                max_length=enc_cfg.max_length,
                batch_size=enc_cfg.batch_size,
                device=enc_cfg.device,
                cache_dir=cache_dir,
                show_progress=show_progress,
            )
        except EncoderError as exc:
            # A message naming a key (encoder.model, encoder.device, ...) gets the file too; one
            # about a folder (the cache) names that folder already.
            if not str(exc).startswith("encoder."):
                raise
            raise EncoderError(f"{scenario.source}: {exc}") from None
    wanted = scenario_hash(scenario)
    world_key = hashlib.sha256(f"{wanted}|{encoder.identity}".encode()).hexdigest()
    if world_key in _WORLDS:
        cached = _WORLDS[world_key]
        # An env's scenario is its world's: one changed in place (env.scenario.episode.horizon
        # = 3) no longer describes this world, and must not reach the next env or evaluation.
        if scenario_hash(cached.scenario) == wanted:
            return cached
        del _WORLDS[world_key]

    rng = np.random.default_rng(np.random.SeedSequence([scenario.seed, 0x5EED]))
    if scenario.catalog.source == "default":
        catalog = load_default_catalog()
    else:
        try:
            catalog = load_catalog(scenario.resolve_path(scenario.catalog.source))
        except CatalogError as exc:  # which scenario, and which of its keys, named the file
            raise CatalogError(f"{scenario.error_prefix}catalog.source: {exc}") from None
    catalog = _select_items(catalog, scenario, rng)
    n = len(catalog)

    item_emb = np.ascontiguousarray(encoder.encode(catalog.texts()), dtype=np.float32)
    cache = EmbeddingCache(cache_dir)
    # "blas1": fitted on one BLAS thread (envs/blas.py); fits cached before that depended on the
    # thread count of the run that filled the cache, and are retired.
    proj_key = f"projection|{encoder.identity}|{catalog.content_hash()}|{enc_cfg.project_dim}|blas1"
    projection = _load_projection(cache, proj_key)
    if projection is None:
        projection = Projection.fit(item_emb, enc_cfg.project_dim)
        cache.put_array(proj_key + "|mean", projection.mean)
        cache.put_array(proj_key + "|components", projection.components)
        cache.put_array(
            proj_key + "|meta",
            np.array([projection.scale, projection.explained_variance_ratio], dtype=np.float64),
        )
    item_proj = projection.project(item_emb)

    # Popularity prior (optionally re-drawn as Zipf over a seeded random order).
    pop_cfg = scenario.catalog.popularity
    if pop_cfg.zipf_exponent is not None:
        order = rng.permutation(n)
        ranks = np.empty(n, dtype=np.float64)
        ranks[order] = np.arange(1, n + 1)
        popularity = ranks ** (-pop_cfg.zipf_exponent)
    else:
        popularity = np.asarray(catalog.popularity, dtype=np.float64).copy()

    # New items: held back, zero prior, released over [arrival_start, arrival_end].
    new_cfg = scenario.catalog.new_items
    arrival = np.zeros(n, dtype=np.int64)
    n_new = int(round(new_cfg.fraction * n))
    if n_new > 0:
        new_idx = rng.choice(n, size=n_new, replace=False)
        steps = rng.integers(new_cfg.arrival_start, new_cfg.arrival_end + 1, size=n_new)
        arrival[new_idx] = steps
        popularity[new_idx] = 0.0
    total = popularity.sum()
    popularity = popularity / total if total > 0 else np.full(n, 1.0 / n)
    floor = scenario.response.popularity_floor
    log_pop_rel = np.log(np.maximum(popularity * n, floor)).astype(np.float32)
    pop_rank = np.empty(n, dtype=np.int64)
    pop_rank[np.argsort(-popularity, kind="stable")] = np.arange(n)
    head_rank = max(1, int(np.ceil(pop_cfg.head_fraction * n)))
    new_order = np.flatnonzero(arrival > 0)
    new_order = new_order[np.argsort(arrival[new_order], kind="stable")]

    personas = _resolve_personas(scenario)
    if not personas:
        raise WorldError(f"{scenario.source}: users.personas: no personas (expected at least one)")
    drift = scenario.users.drift
    if drift.kind != "none" and drift.target == "random" and len(personas) < 2:
        raise WorldError(
            f"{scenario.source}: users.drift.target: 'random' moves each user toward another "
            f"persona than their own, and users.personas gives {len(personas)} (expected at least "
            "2 personas, or a named target)"
        )
    for line in _setting_warnings(scenario, n_items=n, n_new=n_new):
        warnings.warn(f"{scenario.error_prefix}{line}", stacklevel=1)
    _check_persona_topics(personas, scenario, catalog)
    texts = [p.text for p in personas] + [p.onboarding for p in personas]
    emb = encoder.encode(texts).astype(np.float32)
    persona_emb, onboarding_emb = emb[: len(personas)], emb[len(personas) :]

    cand = scenario.candidates
    nearest_index = None
    # Only when the nearest source gets a slot: a share that rounds to none needs no index.
    if cand.index == "ivf" and nearest_slots(cand) > 0:
        if cand.ivf_lists is not None and cand.ivf_lists > n:
            raise WorldError(
                f"{scenario.source}: candidates.ivf_lists: expected at most the catalog size "
                f"({n} items), got {cand.ivf_lists}"
            )
        nearest_index = _nearest_index(
            cache, f"{proj_key}|n={n}", item_proj, scenario, show_progress
        )

    event_emb = event_onboarding_emb = None
    if scenario.state.mode == "events":
        event_emb, event_onboarding_emb = _event_tables(
            encoder, catalog.titles, [p.onboarding for p in personas], scenario
        )

    world = World(
        scenario=scenario,
        catalog=catalog,
        encoder=encoder,
        item_emb=item_emb,
        item_proj=item_proj,
        projection=projection,
        popularity=popularity,
        log_pop_rel=log_pop_rel,
        pop_cdf=np.cumsum(popularity),
        pop_rank=pop_rank,
        head_rank=head_rank,
        arrival=arrival,
        new_order=new_order,
        new_arrival_sorted=arrival[new_order],
        primary_topic=np.asarray(catalog.primary_topic, dtype=np.int64),
        personas=personas,
        persona_emb=persona_emb,
        onboarding_emb=onboarding_emb,
        topic_names=tuple(catalog.topic_names),
        key=world_key,
        nearest_index=nearest_index,
        event_emb=event_emb,
        event_onboarding_emb=event_onboarding_emb,
    )
    drift = scenario.users.drift
    if drift.kind != "none" and drift.target != "random":
        # Checked here, not only when users start, so `scenarios validate --build` sees it.
        persona_indices(world, [drift.target])
    _WORLDS[world_key] = world
    return world


def _setting_warnings(scenario: Scenario, *, n_items: int, n_new: int) -> list[str]:
    """Lines for valid settings that do not do what they seem to: a drift or new items due at or
    after the episode's end, a catalog a user can use up within a session, more candidates than
    items before the new ones arrive, and more ivf lists than the catalog fills. Warnings, not
    errors (a one-step version of a drifting scenario is a fair bandit), since the report's drift
    or new-item figures then read n/a or 0 for a reason the scenario does not show."""
    out = []
    horizon = scenario.episode.horizon
    drift = scenario.users.drift
    if drift.kind in ("abrupt", "periodic") and drift.fraction > 0:
        key, when = ("step", drift.step) if drift.kind == "abrupt" else ("period", drift.period)
        if when >= horizon:
            out.append(
                f"users.drift.{key}: {when}, at or past episode.horizon {horizon}: no user drifts "
                "within an episode (the drift metrics read n/a)"
            )
    start = scenario.catalog.new_items.arrival_start
    if n_new > 0 and start >= horizon:
        out.append(
            f"catalog.new_items.arrival_start: {start}, at or past episode.horizon {horizon}: no "
            f"new item arrives within an episode, and the {n_new} held back are never shown"
        )
    cand = scenario.candidates
    advised = max(1, n_items // 39)
    lists = cand.ivf_lists
    if cand.index == "ivf" and lists is not None and advised < lists <= n_items:  # more: an error
        out.append(
            f"candidates.ivf_lists: {lists} clusters for {n_items} items (faiss's k-means "
            f"wants 39 items per cluster, so at most {advised}; fewer make coarse clusters and a "
            "poorer recall)"
        )
    hmax = scenario.users.history_max
    if cand.mask_consumed and n_items <= horizon + hmax:
        out.append(
            f"catalog.n_items: {n_items}, no more than episode.horizon {horizon} plus "
            f"users.history_max {hmax}: with candidates.mask_consumed a user who clicks often "
            "runs out of items within a session, and the steps after that have no valid "
            "candidate (expected more items, or candidates.mask_consumed: false)"
        )
    k = cand.k
    if n_new > 0 and k > n_items - n_new:
        out.append(
            f"candidates.k: {k}, more than the {n_items - n_new} items there are before new ones "
            "arrive (catalog.new_items.fraction): those steps show fewer valid candidates"
        )
    return out


def persona_indices(world: World, names: Sequence[str]) -> np.ndarray:
    """Indices of named drift-target personas in ``world.personas``.

    Raises:
        WorldError: a name that is no persona of the world (one line, with a close match).
    """
    lookup = {p.name: i for i, p in enumerate(world.personas)}
    out = []
    for name in names:
        if name not in lookup:
            known = sorted(lookup)
            close = difflib.get_close_matches(name, known, n=3)
            hint = (
                f"did you mean {', '.join(map(repr, close))}?"
                if close
                else f"expected 'random' or one of: {', '.join(known[:8])}, ..."
            )
            raise WorldError(
                f"{world.scenario.source}: users.drift.target: {name!r} is not a persona of this "
                f"scenario ({hint})"
            )
        out.append(lookup[name])
    return np.asarray(out, dtype=np.int64)
