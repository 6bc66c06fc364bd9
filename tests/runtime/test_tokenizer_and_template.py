"""Tokenizer round-trips and chat-template rendering against transformers on the same GGUF."""

from __future__ import annotations

import json

import pytest

from dsv4.runtime.chat_template import render_chat_template

TEXTS = [
    "Hello world",
    "  leading spaces and\ttabs\n\nand blank lines\n",
    "def f(x):\n    return x ** 2  # square\n",
    "Unicode: café, naïve, Ærøskøbing, 東京, Привет, emoji 🚀👍🏽",
    "<|im_start|>user\nspecial tokens stay whole<|im_end|>\n",
    'JSON {"a": [1, 2.5e-3, null], "b": "q\\"uote"}',
    "Numbers 2024 and 3.14159 and 1,000,000",
]

MESSAGES = [
    {"role": "system", "content": "You are a careful coding assistant."},
    {"role": "user", "content": "List the files."},
    {"role": "assistant", "content": "Here they are."},
    {"role": "user", "content": "Thanks! Now read main.py"},
]

TOOLS = [{"type": "function", "function": {"name": "read_file", "description": "Read a file",
          "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]

# A template that renders tools itself (Qwen2.5-style, shortened), to check tool-aware rendering.
TOOL_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- endif %}{{- '\\n\\n# Tools\\n<tools>' }}{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (tools and message.role == 'system') %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}{{- '<|im_start|>assistant\\n' }}"
    "{%- for tool_call in message.tool_calls %}{{- '<tool_call>\\n{\"name\": \"' + tool_call.function.name + '\", \"arguments\": ' }}"
    "{{- tool_call.function.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(smollm_path):
    from dsv4.runtime.loaders import open_checkpoint

    return open_checkpoint(smollm_path).tokenizer


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_ids_match_transformers(tokenizer, hf_reference):
    _, ref = hf_reference
    for text in TEXTS:
        if any(ch.isdigit() for ch in text):
            continue  # see test_digits_are_split_one_by_one
        assert tokenizer.encode(text) == ref(text, add_special_tokens=False)["input_ids"], text


def test_digits_are_split_one_by_one(tokenizer):
    # SmolLM2 was trained with every digit a token of its own (llama.cpp pre-tokenizer "smollm", and the
    # Digits(individual_digits) step of the original tokenizer.json); transformers' GGUF converter drops that step.
    ids = tokenizer.encode("2024")
    assert [tokenizer.decode([i]) for i in ids] == ["2", "0", "2", "4"]


def test_special_tokens_and_stops(tokenizer):
    assert tokenizer.encode("<|im_end|>") == [tokenizer.token_to_id("<|im_end|>")]
    assert tokenizer.token_to_id("<|im_end|>") in tokenizer.stop_token_ids
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template


@pytest.mark.parametrize("with_tools", [False, True])
def test_model_template_matches_transformers(tokenizer, hf_reference, with_tools):
    _, ref = hf_reference
    tools = TOOLS if with_tools else None
    for messages in (MESSAGES, MESSAGES[1:]):  # with and without a system message (the template adds a default)
        expected = ref.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        got = render_chat_template(tokenizer.chat_template, messages, tools=tools, add_generation_prompt=True,
                                   special_tokens=tokenizer.special_tokens_map())
        assert got == expected


@pytest.mark.parametrize("with_tools", [False, True])
def test_tool_aware_template_matches_transformers(hf_reference, with_tools):
    _, ref = hf_reference
    messages = MESSAGES + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "read_file", "arguments": {"path": "main.py"}}}]},
        {"role": "tool", "content": "print('hi')"},
    ]
    tools = TOOLS if with_tools else None
    expected = ref.apply_chat_template(messages, tools=tools, chat_template=TOOL_TEMPLATE, tokenize=False, add_generation_prompt=True)
    got = render_chat_template(TOOL_TEMPLATE, messages, tools=tools, add_generation_prompt=True)
    assert got == expected
    assert ("# Tools" in got) == with_tools


def test_chat_format_injects_hermes_tools_for_plain_templates(tokenizer):
    from dsv4.runtime.chat import ChatFormat

    fmt = ChatFormat(tokenizer)
    assert not fmt.native_tools
    history = MESSAGES + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "main.py"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "print('hi')"},
    ]
    text = fmt.render(history, TOOLS)
    assert text.startswith("<|im_start|>system\nYou are a careful coding assistant.\n\n# Tools")
    assert json.dumps(TOOLS[0]) in text
    assert '<tool_call>\n{"name": "read_file", "arguments": {"path": "main.py"}}\n</tool_call>' in text
    assert "<|im_start|>user\n<tool_response>\nprint('hi')\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    # without tools the prompt is exactly the model's own template
    assert fmt.render(MESSAGES) == render_chat_template(tokenizer.chat_template, MESSAGES, add_generation_prompt=True)


def test_sentencepiece_gguf_vocabulary_matches_transformers(tmp_path):
    """A llama-style (sentencepiece BPE, byte fallback, merges derived from scores) vocabulary in a tiny GGUF."""
    gguf = pytest.importorskip("gguf")
    transformers = pytest.importorskip("transformers")
    import numpy as np

    from dsv4.runtime.loaders.gguf_file import GGUFFile
    from dsv4.runtime.tokenizer import Tokenizer

    pieces = ["\u2581", "e", "t", "a", "o", "n", "h", "s", "r", "l", "d", "i", "c", "w", "\u2581t", "he", "\u2581the", "\u2581a",
              "in", "er", "\u2581w", "or", "an", "ll", "\u2581h", "\u2581he", "llo", "\u2581hello", "\u2581wor", "ld", "\u2581world",
              "at", "\u2581c", "\u2581cat", "on", "\u2581on", "\u2581th", "\u2581that"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + pieces
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    path = tmp_path / "spm.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ref = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file="spm.gguf")
    ours = Tokenizer.from_gguf_metadata(GGUFFile(path).metadata, str(path))
    for text in ["hello world", "the cat on that", "h\u00e9llo w\u00f6rld", "hello\nworld", "that"]:
        ids = ours.encode(text)
        assert ids == ref(text, add_special_tokens=False)["input_ids"], text
        assert ours.decode(ids) == text
    # sentencepiece keeps a leading space as its own piece (llama.cpp too); transformers' converter drops it
    assert ours.decode(ours.encode(" hello  world")) == " hello  world"
    assert ours.encode("hi", add_bos=True)[0] == 1 and ours.add_bos
