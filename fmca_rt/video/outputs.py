"""A video run's outputs: opened before capture starts, moved into place when the run ends.

A run that completes (the source ended or `max_frames` was reached) or a live source that was stopped (a
camera or stream has no end: Ctrl-C, a signal or closing the window is how it ends) moves each file into
place. A run that fails, or stops before the end of a file or folder, keeps what it analysed under
`<name>.incomplete<suffix>` beside each destination (`frames.incomplete.jsonl`) and leaves the files of an
earlier run untouched: a reader never takes a partial run for a complete one. The summary says which it was
(`status`: complete, stopped, interrupted or failed), why (`error`), and where each file went (`outputs`).
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import file_state
from ..errors import OutputError
from ..output_paths import incomplete_name
from .sinks import JsonLinesSink, open_frame_sink, write_json_atomically

COMPLETE, STOPPED, INTERRUPTED, FAILED = "complete", "stopped", "interrupted", "failed"
WHOLE_RUN = (COMPLETE, STOPPED)  # what was analysed is the whole run: files go to their own names


class RunOutputs:
    """The annotated video (or window), the JSON Lines and the summary of one run."""

    def __init__(self, output=None, jsonl=None, summary=None, fps: float = 30.0):
        self.frames = self.jsonl = None
        self.summary_path = None if summary is None else Path(summary)
        self._summary_baseline = None if summary is None else file_state(summary)
        self.written: dict[str, str] = {}  # option -> the file it went to
        self.errors: list[str] = []  # outputs that could not be written, one sentence each
        try:
            self.frames = open_frame_sink(output, fps)
            self.jsonl = None if jsonl is None else JsonLinesSink(jsonl)
        except OSError as error:
            self.finish({}, FAILED)
            raise OutputError(f"Cannot write results: {error}.") from None
        except OutputError:
            self.finish({}, FAILED)
            raise

    @property
    def closed_by_user(self) -> bool:
        return getattr(self.frames, "closed_by_user", False)

    def finish(self, summary: dict, status: str) -> None:
        """Close every output for a run that ended with `status`; the summary records where each went.
        Writes that fail are collected in `errors` (and the summary's `output_errors`), never raised."""
        whole = status in WHOLE_RUN
        for option, sink in (("output", self.frames), ("jsonl", self.jsonl)):
            path = getattr(sink, "path", None)
            try:
                where = None if sink is None else sink.close(None if whole or path is None else incomplete_name(path))
            except OutputError as error:
                self.errors.append(str(error))
                continue
            if where is not None:
                self.written[option] = str(where)
        self.frames = self.jsonl = None
        if not summary:
            return
        summary["outputs"], summary["output_errors"] = dict(self.written), list(self.errors)
        if self.summary_path is not None:
            try:
                where = write_json_atomically(self.summary_path, summary, self._summary_baseline) if whole else \
                    write_json_atomically(incomplete_name(self.summary_path), summary)
            except OutputError as error:
                self.errors.append(str(error))
            else:
                self.written["summary"] = str(where)
