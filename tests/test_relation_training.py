"""clinical_ner_crf/relation_training.py: examples, links and their scores, and the selection on validation notes."""

import pytest

from clinical_ner_crf.relation_training import adapt_epochs
from conftest import command

run_re = command("run_re")


@pytest.mark.parametrize("candidates, epochs, max_steps, expected", [
    (640, 3, -1, 30),     # 20 steps per epoch: 600 steps need 30 epochs
    (64_000, 3, -1, 3),   # 2000 steps per epoch: --num_train_epochs already gives 6000
    (64, 3, -1, 40),      # 2 steps per epoch: capped at --max_train_epochs
    (640, 3, 50, 3),      # --max_steps wins
])
def test_small_corpora_train_at_least_the_minimum_number_of_steps(candidates, epochs, max_steps, expected):
    from transformers import TrainingArguments

    training_args = TrainingArguments(output_dir="unused", per_device_train_batch_size=32, num_train_epochs=epochs,
                                      max_steps=max_steps, use_cpu=True, report_to="none")
    adapt_epochs(training_args, candidates, min_train_steps=600, max_train_epochs=40)  # run_re.py's defaults
    assert training_args.num_train_epochs == expected
