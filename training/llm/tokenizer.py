"""A byte-level BPE tokenizer trained on the corpus, saved in Hugging Face's format for vLLM.

Special tokens follow Mistral's numbering (`<unk>` 0, `<s>` 1, `</s>` 2) and make `[INST]` /
`[/INST]` single tokens, as Mistral's v3 tokenizer does. Encoding adds `<s>` in front (the
post-processor), as vLLM does for a completion prompt; the chat template renders a user turn
as `[INST] ... [/INST]`, the same text the model was fine-tuned on. Byte-level means no
input is ever unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlops.datasets.ragqa import INST_CLOSE, INST_OPEN

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (UNK, BOS, EOS, INST_OPEN, INST_CLOSE)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% elif message['role'] == 'assistant' %} {{ message['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}"
)
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # the byte alphabet and the special tokens


def train_bpe(texts: Iterable[str], vocab_size: int) -> Any:
    """A `tokenizers.Tokenizer`: byte-level BPE with the special tokens first (ids 0..4)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size {vocab_size} is below {MIN_VOCAB} (256 bytes + special tokens)")
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return tokenizer


def to_transformers(tokenizer: Any, model_max_length: int) -> Any:
    """Wrap a trained `tokenizers.Tokenizer` as a transformers fast tokenizer with the chat template."""
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=EOS,
        additional_special_tokens=[INST_OPEN, INST_CLOSE],
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped
