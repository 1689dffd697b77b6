"""A progress bar for the CLI: tqdm when installed, a one-line counter on a terminal otherwise."""

from __future__ import annotations

import sys


class _Counter:
    def __init__(self, total: int | None, desc: str, enabled: bool):
        self.total, self.desc, self.count = total, desc, 0
        self.enabled = enabled and sys.stderr.isatty()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.enabled:
            of = f"/{self.total}" if self.total else ""
            print(f"\r{self.desc}: {self.count}{of}", end="", file=sys.stderr, flush=True)

    def write(self, line: str, error: bool = False, quiet: bool = False) -> None:
        if quiet:
            return
        if self.enabled:
            print("\r\033[K", end="", file=sys.stderr)
        print(line, file=sys.stderr if error else sys.stdout, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


class _Tqdm(_Counter):
    def __init__(self, total, desc, enabled, tqdm):
        super().__init__(total, desc, enabled)
        self._bar = tqdm(total=total, desc=desc, disable=not self.enabled, file=sys.stderr, leave=False)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def write(self, line: str, error: bool = False, quiet: bool = False) -> None:
        if not quiet:
            self._bar.write(line, file=sys.stderr if error else sys.stdout)

    def close(self) -> None:
        self._bar.close()


def progress(total: int | None, desc: str, enabled: bool = True):
    try:
        from tqdm import tqdm
    except ImportError:
        return _Counter(total, desc, enabled)
    return _Tqdm(total, desc, enabled, tqdm)
