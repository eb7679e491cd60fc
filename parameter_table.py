#!/usr/bin/env python
"""Print the paper's Table I (parameter counts) as Markdown for any set of encoder configs.

    python parameter_table.py --config_names configs/architectures/*.json
    python parameter_table.py --config_names path/to/saved_crf_model/config.json --num_labels 19

Each JSON is an encoder's `config.json` (as on the Hub; `_name_or_path` names the Hub id) or a
saved `CRFForTokenClassification` config (its encoder sub-config and labels are used). Models are
built on torch's meta device: exact counts, no weights, no memory.

What is counted (every parameter once, tied ones once):
- CRF = `modeling_crf.CRFForTokenClassification`: encoder WITHOUT pooler + Linear(hidden, labels)
  + CRF (labels^2 + 2 * labels).
- Apt = the encoder's stock `AutoModelForTokenClassification` (BERT's leaves the pooler out too).
The paper's BERT-family figures include BERT's unused pooler (hidden^2 + hidden = 590,592 for
BERT-base), so for those rows the table shows "ours + pooler", which matches the paper exactly.
"% to BERT" is the CRF count over our BERT-CRF (bert-base-cased) count; "paper %" uses the
paper's figures (pooler included), which is why the two differ slightly.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from clinical_ner_crf.command_line import parse_command, run_main
from clinical_ner_crf.console import configure_output
from clinical_ner_crf.parameter_counts import build_rows, format_table

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class TableArguments:
    """Arguments of ``parameter_table.py``."""

    config_names: list[str] = field(metadata={
        "help": "Encoder config.json files, or saved CRF model configs (e.g. configs/architectures/*.json)."})
    num_labels: Optional[int] = field(default=None, metadata={
        "help": "Number of tags (default: the config's labels, else the paper's 19)."})
    json: bool = field(default=False, metadata={"help": "Print the rows as JSON instead of Markdown."})


def main(argv=None) -> int:
    (args,) = parse_command("parameter_table.py", (TableArguments,), argv, description=__doc__.split("\n\n")[0])
    configure_output(logging.getLogger(__name__))
    rows = build_rows(args.config_names, args.num_labels)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    run_main(main, "parameter_table.py")
