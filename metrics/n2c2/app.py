"""The metric Space's page: evaluate's widget for this module (the card, README.md, below it)."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load(str(Path(__file__).with_name("n2c2.py")))
launch_gradio_widget(module)
