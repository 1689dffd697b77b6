"""A training run's records: per-epoch history as CSV and JSON, TensorBoard scalars, and the plots.

Only the main process writes. TensorBoard is optional: without the `tensorboard` package the run goes on
with CSV/JSON logs and says so once.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .plots import plot_history


class RunLogger:
    def __init__(self, out_dir: Path, enabled: bool = True, history: list[dict] | None = None):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.history = list(history or [])
        self._writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("TensorBoard logging is off: the 'tensorboard' package is not installed "
                      "(pip install 'fmca-rt[train]').")
            else:
                self._writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(f"step/{name}", value, step)

    def log_epoch(self, row: dict) -> None:
        """Append one epoch's numbers (None for a metric that could not be computed) and rewrite the files."""
        self.history.append(row)
        if not self.enabled:
            return
        if self._writer is not None:
            for name, value in row.items():
                if name != "epoch" and isinstance(value, (int, float)) and not math.isnan(value):
                    self._writer.add_scalar(f"epoch/{name}", value, row["epoch"])
            self._writer.flush()
        (self.out_dir / "history.json").write_text(json.dumps(self.history, indent=2) + "\n")
        columns = list(dict.fromkeys(key for r in self.history for key in r))
        with open(self.out_dir / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.history)
        plot_history(self.history, self.out_dir / "curves.png")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
