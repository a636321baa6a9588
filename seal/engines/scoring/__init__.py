"""The reward-model scorer: (context messages, response) items in, one float per text out. It knows nothing of
the store, so the `score` stage, the re-scoring of perturbed variants, a notebook or a Ray worker use it alike.

- `reward_model`: `RewardModel` (load, batch, score), `score_texts`, the batch-size and prefix-sharing policy;
- `checkpoint`: config, tokenizer, commit and head of a checkpoint (`ModelError`);
- `inputs`: rendering (pair / chat), tokenising and truncating the items;
- `shared_prefix`, `pooled_layer`, `model_output`: the forward-pass shortcuts and the reward in a model's output.
"""

from seal.engines.scoring.checkpoint import ModelError, resolve_commit, warn_unpinned
from seal.engines.scoring.inputs import (
    INPUT_FORMATS,
    TRUNCATION_SIDES,
    Encoded,
    Item,
    chat_messages,
    render_transcript,
)
from seal.engines.scoring.reward_model import (
    PADDING_SIDE,
    SHARING_MIN_FLOP_PER_KV_BYTE,
    RewardModel,
    ScoringStats,
    parse_batch_size,
    score_texts,
)

__all__ = [
    "INPUT_FORMATS",
    "PADDING_SIDE",
    "SHARING_MIN_FLOP_PER_KV_BYTE",
    "TRUNCATION_SIDES",
    "Encoded",
    "Item",
    "ModelError",
    "RewardModel",
    "ScoringStats",
    "chat_messages",
    "parse_batch_size",
    "render_transcript",
    "resolve_commit",
    "score_texts",
    "warn_unpinned",
]
