"""Which tokens the reward scores on the real Qwen2.5 tokenizer: segments vs canonical, before vs now.

Run: ``.venv/bin/python benchmarks/student_tokenization.py [--rows 400] [--seed 0]``

Over generated Bespoke-Stratos-style rows (LaTeX, numbers, words, CJK; explanations that
end with the official "\\n\\n" padding, with punctuation, or with none), the teacher
"samples" the canonical tokenisation of its completion (what a trained model mostly
writes). It prints:

1. the close-tag split: how many explanations' last token merges with the tag (".<"), and
   how many tag fragments the previous split (before this change) left in the explanation;
2. the student sequence: how many of its tokens differ from the canonical tokenisation of
   the whole rendered text (the released code's reading), by ``difflib`` alignment;
3. the reward on a random-weight tiny Qwen2 (151,936-row vocabulary) under
   ``student_tokenization`` segments and canonical: mean |Δr| against the spread of r.

``--json`` prints only the numbers (the same section 3 also runs on an older checkout, whose
API it shares, for a before/after comparison: ``PYTHONPATH=old/src python ... --legacy``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import statistics

import torch

WORDS = ("so", "the", "answer", "is", "we", "get", "then", "since", "therefore", "sum", "product",
         "Let", "Now", "check", "root", "of", "and", "gives", "equal", "to")  # fmt: skip
PIECES = ("$x^2 + 1$", "$\\frac{1}{2}$", "\\(a+b\\)", "42", "3.14", "(i)", "x = 5", "数学", "=", "→")
ENDINGS = ("\n\n", ".\n\n", ".", "!", ")", ",", ":", " ", "$", "}", "7", "。", "\n", "")


def make_rows(n: int, seed: int) -> list[tuple[str, str, str]]:
    """``(question, padded solution, what the teacher wrote before its close tag)``."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS + PIECES) for _ in range(rng.randint(4, 40))]
        body = " ".join(words)
        if rng.random() < 0.5:
            body = body.replace(" then ", ".\n\nThen ", 1)
        question = f"Compute {rng.randint(2, 99)} + {rng.randint(2, 99)}. {rng.choice(PIECES)}?"
        solution = f"\n\nThe answer is $\\boxed{{{rng.randint(0, 999)}}}$.\n\n"
        rows.append((question, solution, body + rng.choice(ENDINGS)))
    return rows


def tiny_qwen(seed: int):
    """Random weights at Qwen2.5's 151,936-row vocabulary (hidden 32, one layer)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)  # written out (not rlt.models.tiny_model) so --legacy runs on older checkouts
    cfg = Qwen2Config(vocab_size=151_936, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)  # fmt: skip
    return Qwen2ForCausalLM(cfg).eval()


def rewards(reward, tok, tags, rows, prompts):
    completions = [w + tags.explanation_close + "<|im_end|>" for _, _, w in rows]
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions]
    out = reward(prompts=prompts, completions=completions, completion_ids=ids,
                 question=[q for q, _, _ in rows], solution=[s for _, s, _ in rows])  # fmt: skip
    return out, reward.last_components


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--legacy", action="store_true", help="only the reward section, with the default config")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from rlt.formats import get_tags, teacher_rl_prompt
    from rlt.rewards import RLTReward, RLTRewardConfig

    try:
        from rlt.qwen import qwen25_tokenizer

        tok = qwen25_tokenizer()
    except ImportError:  # an older checkout: the tokenizer this checkout cached (RLT_QWEN_TOKENIZER dir)
        import os

        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast.from_pretrained(os.environ["RLT_QWEN_TOKENIZER"])
    tags = get_tags("bespoke")
    rows = make_rows(args.rows, args.seed)
    student, teacher = tiny_qwen(1), tiny_qwen(0)
    prompts = [teacher_rl_prompt(tok, q, s, tags) for q, s, _ in rows]
    result: dict = {"rows": len(rows)}

    if args.legacy:
        reward = RLTReward(student, tok, RLTRewardConfig(), teacher=teacher, teacher_tokenizer=tok)
        out, comps = rewards(reward, tok, tags, rows, prompts)
        result["legacy"] = {"mean_reward": statistics.fmean(out),
                            "mean_explanation_tokens": statistics.fmean(c["num_explanation_tokens"] for c in comps)}  # fmt: skip
        print(json.dumps(result, indent=1))
        return

    from rlt.formats import split_completion_ids, student_segments

    # 1. the close-tag split
    merged = fragments = 0
    for _, _, w in rows:
        ids = tok(w + tags.explanation_close + "<|im_end|>", add_special_tokens=False)["input_ids"]
        split = split_completion_ids(ids, tok, tags)
        merged += len(split.ids) != split.sampled
        # the previous rule: the tag's own ids as a sub-list, else cut before the token that completes it
        close = tok(tags.explanation_close, add_special_tokens=False)["input_ids"]
        at = next((i for i in range(len(ids)) if ids[i : i + len(close)] == close), None)
        if at is None:
            at = next(k for k in range(1, len(ids) + 1) if tags.explanation_close in tok.decode(ids[:k])) - 1
        fragments += at - split.sampled
    result["close_tag_merged_rows"] = merged
    result["old_split_tag_fragment_tokens"] = fragments

    # 2. the student sequence vs the canonical tokenisation of the whole text
    differ_rows = differ_tokens = total = 0
    for q, s, w in rows:
        seg = student_segments(tok, q, s, tags)
        e = split_completion_ids(
            tok(w + tags.explanation_close, add_special_tokens=False)["input_ids"], tok, tags
        )
        ids, _, _ = seg.build(e.ids)
        canon = tok(tok.decode(ids), add_special_tokens=False)["input_ids"]
        sm = difflib.SequenceMatcher(a=ids, b=canon, autojunk=False)
        same = sum(b.size for b in sm.get_matching_blocks())
        differ_tokens += len(ids) - same
        differ_rows += ids != canon
        total += len(ids)
    result["student_rows_differing_from_canonical"] = differ_rows
    result["student_tokens_differing_from_canonical"] = differ_tokens
    result["student_tokens_total"] = total

    # 3. the reward: segments vs canonical
    by_mode = {}
    for mode in ("segments", "canonical"):
        reward = RLTReward(student, tok, RLTRewardConfig(student_tokenization=mode),
                           teacher=teacher, teacher_tokenizer=tok)  # fmt: skip
        by_mode[mode] = rewards(reward, tok, tags, rows, prompts)[0]
    diffs = [abs(a - b) for a, b in zip(by_mode["segments"], by_mode["canonical"])]
    result["reward_mean"] = {m: statistics.fmean(v) for m, v in by_mode.items()}
    result["reward_std_segments"] = statistics.pstdev(by_mode["segments"])
    result["reward_abs_diff_mean"] = statistics.fmean(diffs)
    result["reward_abs_diff_max"] = max(diffs)
    result["reward_rows_differing"] = sum(d > 1e-6 for d in diffs)
    if args.json:
        print(json.dumps(result))
        return
    n = len(rows)
    print(f"rows: {n} (seed {args.seed}), Qwen2.5 tokenizer, random-weight tiny Qwen2 at 151,936 rows")
    print(f"close tag merged with the explanation's last token: {merged}/{n} rows; "
          f"the previous split left {fragments} tag-fragment tokens in explanations")  # fmt: skip
    print(f"student sequence (segments) vs canonical tokenisation of the whole text: "
          f"{differ_rows}/{n} rows differ, {differ_tokens}/{total} tokens ({differ_tokens / total:.2%})")  # fmt: skip
    print(f"reward segments vs canonical: {result['reward_rows_differing']}/{n} rows differ; mean |Δr| "
          f"{result['reward_abs_diff_mean']:.4f}, max {result['reward_abs_diff_max']:.4f}; "
          f"std of r across rows {result['reward_std_segments']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
