import pytest
import torch
from transformers import AutoModelForCausalLM

from rlt.cli import main as cli
from rlt.errors import ConfigError
from rlt.formats import TAG_SETS
from rlt.loading import load_model_and_tokenizer, load_tokenizer
from rlt.models import TINY_SIZES, char_tokenizer, tiny_config, tiny_model
from rlt.models import main as models_main
from rlt.qwen import VOCAB_SIZE


def test_tokenizer_covers_tasks_and_tags():
    tok = char_tokenizer()
    for tag in {t for ts in TAG_SETS.values() for t in ts.all_tags}:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    text = "start 7; +5; *3; -4 (mod 10)\n7+5=2; 2*3=6"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    # Tags survive decoding, as they do in real tokenizers.
    assert tok.decode(tok("<think>x</think>", add_special_tokens=False)["input_ids"]) == "<think>x</think>"


def test_named_sizes():
    want = {"nano": (32, 64, 1, 2, 1), "tiny": (64, 128, 2, 4, 2), "small": (128, 384, 4, 4, 2),
            "base": (256, 768, 6, 8, 4), "tiny64": (128, 256, 2, 2, 1)}  # fmt: skip
    assert set(TINY_SIZES) == set(want)
    for name, shape in want.items():
        cfg = tiny_config(name, vocab_size=100)
        got = (cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads,
               cfg.num_key_value_heads)  # fmt: skip
        assert got == shape, name
        assert (
            cfg.vocab_size == 100
            and cfg.tie_word_embeddings
            and cfg.hidden_size % cfg.num_attention_heads == 0
        )
    assert tiny_config("tiny64").hidden_size // tiny_config("tiny64").num_attention_heads == 64  # vLLM on CPU
    model, tok = tiny_model("nano", seed=0)
    assert model.config.vocab_size == len(tok) and model.get_input_embeddings().weight.shape == (len(tok), 32)
    # One layer by hand (head_dim 16): q 32·32+32, k and v 32·16+16 each, o 32·32, MLP 3·32·64,
    # three RMSNorms of 32; the LM head is tied to the embedding.
    layer = (32 * 32 + 32) + 2 * (32 * 16 + 16) + 32 * 32 + 3 * 32 * 64 + 3 * 32
    assert sum(p.numel() for p in model.parameters()) == len(tok) * 32 + layer


def test_save_load_round_trip_with_chat_template(tmp_path):
    assert cli(["tiny-model", "--out", str(tmp_path), "--size", "nano", "--seed", "3"]) == 0
    tok = load_tokenizer(str(tmp_path))
    text = "start 7; +5 (mod 10)\n7+5=2"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # spaces survive a reload
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ref, ref_tok = tiny_model("nano", seed=3)
    assert tok.get_vocab() == ref_tok.get_vocab()
    msgs = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    prompt = tok("12", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=3, do_sample=False)
    want = ref.generate(**prompt, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 5) and out.tolist() == want.tolist()  # the reloaded model decodes the same
    with torch.no_grad():
        assert torch.equal(model(**prompt).logits, ref(**prompt).logits)


def test_tiny_model_default_size_and_bad_size(tmp_path, capsys):
    assert cli(["tiny-model", "--out", str(tmp_path / "m")]) == 0
    assert "wrote tiny model 'tiny'" in capsys.readouterr().err  # logged (rlt's messages go to stderr)
    assert cli(["tiny-model", "--out", str(tmp_path / "x"), "--size", "huge"]) == 2
    assert "unknown tiny model size 'huge'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the real Qwen2.5 tokenizer

QWEN_SPECIALS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|file_sep|>": 151664,
}


def test_qwen_tokenizer_ids(qwen_tok):
    assert qwen_tok("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    assert len(qwen_tok) == 151665
    for token, i in QWEN_SPECIALS.items():
        assert qwen_tok.convert_tokens_to_ids(token) == i
        assert qwen_tok(token, add_special_tokens=False)["input_ids"] == [i]  # atomic
    assert (qwen_tok.eos_token, qwen_tok.pad_token, qwen_tok.bos_token) == (
        "<|im_end|>",
        "<|endoftext|>",
        None,
    )


@pytest.fixture(scope="module")
def qwen_tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen_tiny")
    assert models_main(["--out", str(out), "--tokenizer", "qwen2.5", "--size", "nano"]) == 0
    return out


def test_qwen_tiny_model_saved_with_its_tokenizer(qwen_tiny_dir, qwen_tok):
    model, tok = load_model_and_tokenizer(str(qwen_tiny_dir))
    assert model.get_input_embeddings().weight.shape == (VOCAB_SIZE, TINY_SIZES["nano"].hidden_size)
    assert VOCAB_SIZE == 151936
    cfg, gen = model.config, model.generation_config
    assert (cfg.pad_token_id, cfg.eos_token_id, cfg.bos_token_id) == (151643, 151645, None)
    assert (gen.pad_token_id, gen.eos_token_id) == (151643, 151645)
    assert len(tok) == len(qwen_tok) and tok.chat_template == qwen_tok.chat_template
    for text in (
        "Hello world",
        "<|im_start|>user\nstart 7; +5 (mod 10)<|im_end|>\n",
        "héllo  12345\n\n<think>",
        "",
    ):
        assert (
            tok(text, add_special_tokens=False)["input_ids"]
            == qwen_tok(text, add_special_tokens=False)["input_ids"]
        )
    reloaded = load_tokenizer(str(qwen_tiny_dir))
    assert reloaded.get_vocab() == qwen_tok.get_vocab()
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hello world"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nYou are Qwen")  # Qwen2.5-Instruct's default system prompt
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == 151644
    assert ids[0, -3:].tolist() == [151644, 77091, 198]  # <|im_start|>assistant\n
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], VOCAB_SIZE) and torch.isfinite(logits).all()


def test_tiny_model_in_memory_with_qwen_tokenizer():
    model, tok = tiny_model("nano", seed=0, tokenizer="qwen2.5")
    assert model.config.vocab_size == VOCAB_SIZE and tok.eos_token_id == 151645


def test_tiny_model_unknown_tokenizer(tmp_path):
    with pytest.raises(ConfigError, match=r"tokenizer: unknown tokenizer 'bogus'.*char.*qwen2\.5"):
        models_main(["--out", str(tmp_path), "--tokenizer", "bogus"])
    assert not (tmp_path / "config.json").exists()
    with pytest.raises(ValueError, match="unknown tokenizer 'bogus'"):
        tiny_model("nano", tokenizer="bogus")
