import torch
from transformers import AutoModelForCausalLM

from rlt.cli import main as cli
from rlt.formats import TAG_SETS
from rlt.models import TINY_SIZES, char_tokenizer, load_tokenizer, tiny_config, tiny_model


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
    for name in TINY_SIZES:
        cfg = tiny_config(name, vocab_size=100)
        assert cfg.hidden_size % cfg.num_attention_heads == 0


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
    out = model.generate(**tok("12", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == 5


def test_tiny_model_default_size_and_bad_size(tmp_path, capsys):
    assert cli(["tiny-model", "--out", str(tmp_path / "m")]) == 0
    assert "tiny" in capsys.readouterr().out
    assert cli(["tiny-model", "--out", str(tmp_path / "x"), "--size", "huge"]) == 2
    assert "unknown tiny model size 'huge'" in capsys.readouterr().err
