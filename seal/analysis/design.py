"""Design matrices from labelled features: which features a selection names, how each is encoded as numbers
(booleans 0/1, numbers as they are, categories by their codes or one-hot, lists multi-hot), and the score and
feature arrays of every pair read once from the store (shared by imprint and the labeler-regime cross-tab)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.catalog.featuresets import Feature, FeatureSet
from seal.catalog.models import score_column
from seal.errors import SealError
from seal.schema import IDENTICAL_FLAG, has_identical_flag
from seal.store import Store

CATEGORICAL = ("ordinal", "onehot")
DEFAULT_MIN_COUNT = 30


@dataclass(frozen=True)
class Regressor:
    """One design column built from a feature (a level of it for one-hot and multi-hot)."""

    name: str
    feature: str
    feature_set: str
    role: str
    sign: int
    type: str
    level: str | None = None
    side: str | None = None  # pair level: chosen / rejected


def resolve_features(
    sets: dict[str, FeatureSet], selection: str | Sequence[str] | None = None
) -> list[tuple[str, Feature]]:
    """(set name, feature) for a selection: None = every feature of every stored set; else names separated
    by commas, each a set name (all its features), ``set.feature``, a feature name, or a unique suffix
    (``harmless`` for ``last_response_is_harmless``)."""
    if not sets:
        raise SealError("the store has no labelled features", hint="run `seal label` or `seal import-features` first")
    if selection is None:
        return [(s, f) for s, fs in sets.items() for f in fs.features]
    tokens = [t.strip() for t in (selection.split(",") if isinstance(selection, str) else selection) if t.strip()]
    if not tokens:
        raise SealError("no features selected")
    out: list[tuple[str, Feature]] = []
    for token in tokens:
        if token in sets:
            out += [(token, f) for f in sets[token].features]
            continue
        if "." in token:
            set_name, _, feature = token.partition(".")
            if set_name not in sets:
                raise SealError(f"no labelled feature set `{set_name}`", hint=f"sets: {', '.join(sets)}")
            out.append((set_name, sets[set_name].feature(feature)))
            continue
        exact = [(s, f) for s, fs in sets.items() for f in fs.features if f.name == token]
        matches = exact or [(s, f) for s, fs in sets.items() for f in fs.features if f.name.endswith("_" + token)]
        if len(matches) == 1:
            out.append(matches[0])
            continue
        if not matches:
            known = ", ".join(f"{s}.{f.name}" for s, fs in sets.items() for f in fs.features)
            raise SealError(f"no labelled feature `{token}`", hint=f"features: {known}")
        raise SealError(
            f"feature `{token}` is ambiguous: {', '.join(f'{s}.{f.name}' for s, f in matches)}",
            hint="qualify it as set.feature",
        )
    seen: set[tuple[str, str]] = set()
    unique = []
    for s, f in out:
        if (s, f.name) not in seen:
            seen.add((s, f.name))
            unique.append((s, f))
    return unique


def column_array(table: pa.Table, name: str) -> pa.Array:
    """Column `name` of `table` as one array."""
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def to_float(arr: pa.Array) -> np.ndarray:
    """A numeric Arrow array as float64, NaN where null."""
    return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def side_values(struct: pa.Array, feature: Feature, side: str) -> pa.Array:
    """The labels of one feature and side (null where the pair is unlabelled)."""
    return pc.struct_field(pc.struct_field(struct, feature.name), side)


def encode_feature(
    struct: pa.Array, feature: Feature, categorical: str = "ordinal"
) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """(levels, chosen, rejected) numeric encodings of one feature: arrays (n, L) with NaN where missing.
    Levels are [None] for bool / number / ordinal categories, category labels after the reference
    (the first listed) for one-hot, allowed values for lists (multi-hot)."""
    out = []
    levels: list[str | None]
    for side in ("chosen", "rejected"):
        values = side_values(struct, feature, side)
        if feature.type in ("bool", "number"):
            levels = [None]
            out.append(to_float(values)[:, None])
        elif feature.type == "category":
            labels = list(feature.values)
            index = pc.index_in(values, value_set=pa.array(labels))
            idx = np.asarray(pc.fill_null(index, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
            if categorical == "ordinal":
                levels = [None]
                codes = np.array([float(feature.values[label]) for label in labels] + [np.nan])
                out.append(codes[idx][:, None])
            else:
                levels = labels[1:]
                onehot = (idx[:, None] == np.arange(1, len(labels))[None, :]).astype(np.float64)
                onehot[idx < 0] = np.nan
                out.append(onehot)
        else:
            allowed = list(feature.values)
            levels = list(allowed)
            n = len(values)
            matrix = np.zeros((n, len(allowed)))
            valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            flat = pc.list_flatten(values)
            parents = np.asarray(pc.list_parent_indices(values).to_numpy(zero_copy_only=False), dtype=np.int64)
            col = np.asarray(
                pc.fill_null(pc.index_in(flat, value_set=pa.array(allowed)), -1).to_numpy(zero_copy_only=False),
                dtype=np.int64,
            )
            ok = col >= 0
            matrix[parents[ok], col[ok]] = 1.0
            matrix[~valid] = np.nan
            out.append(matrix)
    return levels, out[0], out[1]


@dataclass
class PairData:
    """Scores and encoded features of the pairs, aligned by row (one row per pair)."""

    pair_ids: np.ndarray
    scores: dict[str, np.ndarray]  # alias -> (n, 2) [chosen, rejected]
    regressors: list[Regressor]  # one per column (side-free)
    chosen: np.ndarray  # (n, m)
    rejected: np.ndarray  # (n, m)
    dropped: list[dict[str, str]] = field(default_factory=list)
    pairs_version: int | None = None
    identical: np.ndarray | None = None  # flags.identical_responses per pair (None: the store has no such flag)


def load_pair_data(
    store: Store,
    aliases: Sequence[str],
    features: list[tuple[str, Feature]],
    sets: dict[str, FeatureSet],
    categorical: str = "ordinal",
    min_count: int = DEFAULT_MIN_COUNT,
) -> PairData:
    """Read the score and label columns once and encode every selected feature."""
    by_set: dict[str, list[Feature]] = {}
    for s, f in features:
        by_set.setdefault(s, []).append(f)
    columns = ["pair_id"] + [score_column(a) for a in aliases] + [sets[s].column for s in by_set]
    version = store.version()
    schema = store.schema()
    has_identical = has_identical_flag(schema)
    if has_identical:
        columns.append(IDENTICAL_FLAG)
    data = store.read(list(dict.fromkeys(columns)), version=version)
    scores = {}
    for alias in aliases:
        struct = column_array(data, score_column(alias))
        scores[alias] = np.column_stack(
            [to_float(pc.struct_field(struct, "chosen")), to_float(pc.struct_field(struct, "rejected"))]
        )
    bare = [f.name for _, f in features]
    regressors: list[Regressor] = []
    chosen_cols, rejected_cols = [], []
    dropped: list[dict[str, str]] = []
    for s, fs in by_set.items():
        struct = column_array(data, sets[s].column)
        for f in fs:
            base = f.name if bare.count(f.name) == 1 else f"{s}.{f.name}"
            levels, c, r = encode_feature(struct, f, categorical)
            for j, level in enumerate(levels):
                name = base if level is None else f"{base}={level}"
                if f.type == "list":
                    count = int(np.nansum(c[:, j]) + np.nansum(r[:, j]))
                    if count < min_count:
                        dropped.append({"name": name, "reason": f"in {count} texts, fewer than min_count {min_count}"})
                        continue
                regressors.append(Regressor(name, f.name, s, f.role, f.sign, f.type, level))
                chosen_cols.append(c[:, j])
                rejected_cols.append(r[:, j])
    n = data.num_rows
    stack = lambda cols: np.column_stack(cols) if cols else np.zeros((n, 0))  # noqa: E731
    return PairData(
        pair_ids=np.asarray(data.column("pair_id").to_pylist(), dtype=object),
        scores=scores,
        regressors=regressors,
        chosen=stack(chosen_cols),
        rejected=stack(rejected_cols),
        dropped=dropped,
        pairs_version=version,
        identical=(
            np.asarray(data.column(IDENTICAL_FLAG).fill_null(False).to_numpy(), dtype=bool) if has_identical else None
        ),
    )


def complete_rows(*arrays: np.ndarray) -> np.ndarray:
    """True for the rows where every array (vector or matrix) is finite."""
    mask = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        mask &= np.isfinite(a) if a.ndim == 1 else np.isfinite(a).all(axis=1)
    return mask


def pair_design(data: PairData) -> tuple[np.ndarray, list[Regressor]]:
    """One row per pair: the chosen-side and the rejected-side value of every regressor."""
    regs = []
    columns = []
    for j, r in enumerate(data.regressors):
        for side, values in (("chosen", data.chosen), ("rejected", data.rejected)):
            regs.append(Regressor(f"{r.name}[{side}]", r.feature, r.feature_set, r.role, r.sign, r.type, r.level, side))
            columns.append(values[:, j])
    return np.column_stack(columns), regs
