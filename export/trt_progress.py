"""Build progress from TensorRT's own progress monitor, so a first build on a Jetson (minutes) is not silent.

`progress_monitor(trt)` returns a `trt.IProgressMonitor` (TensorRT 10.0 and later) that logs each top-level
phase as it starts and ends, and the steps of long phases at most every `interval` seconds, with the elapsed time.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("fmca_rt.export")


def progress_monitor(trt, interval: float = 10.0, clock=time.monotonic):
    class BuildProgress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.started = clock()
            self.last_report = self.started
            self.steps: dict[str, int] = {}
            self.depth: dict[str, int] = {}

        def _elapsed(self) -> str:
            return f"{clock() - self.started:.0f} s"

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.depth[phase_name] = 0 if parent_phase is None else self.depth.get(parent_phase, 0) + 1
            self.steps[phase_name] = num_steps
            if self.depth[phase_name] == 0:
                log.info("TensorRT build: %s (%d steps) at %s", phase_name, num_steps, self._elapsed())

        def step_complete(self, phase_name, step):
            now = clock()
            if now - self.last_report >= interval:
                self.last_report = now
                log.info("TensorRT build: %s, step %d of %d, at %s", phase_name, step + 1,
                         self.steps.get(phase_name, 0), self._elapsed())
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            if self.depth.pop(phase_name, 1) == 0:
                log.info("TensorRT build: %s done at %s", phase_name, self._elapsed())
            self.steps.pop(phase_name, None)

    return BuildProgress()
