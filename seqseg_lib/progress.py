"""Training progress that reads well both in JupyterLab and in a headless log.

``SEQSEG_PROGRESS`` picks the style: ``bar`` (a ``tqdm`` text bar, for a terminal),
``display`` (for a notebook: one line of text updated in place through an IPython display
handle, at most twice a second; no widget, so a saved notebook reopens without "model not
found" and keeps the last line), ``log`` (one plain line every ``SEQSEG_PROGRESS_INTERVAL``
seconds and at each epoch end, for papermill and ``nohup`` logs, where a widget would stay
frozen at 0% and a text bar writes a line per refresh) or ``none``. Default: ``display`` in a
notebook kernel, ``bar`` when the standard error is a terminal, else ``log``.
"""

import os
import shutil
import sys
import time
from contextlib import contextmanager
from typing import Any

import torch
from tqdm import tqdm

STYLES = ("bar", "display", "log", "none")


def _style() -> str:
    style = os.environ.get("SEQSEG_PROGRESS")
    if style in STYLES:
        return style
    if style:
        raise ValueError(f"SEQSEG_PROGRESS={style!r}; valid: {', '.join(STYLES)}")
    if "ipykernel" in sys.modules:
        return "display"
    return "bar" if sys.stderr.isatty() else "log"


class Progress:
    """Progress of a run: ``step(running)`` after each step, ``epoch_done(record)``."""

    def __init__(self, config: Any, position: dict, steps_per_epoch: int) -> None:
        self.config, self.position = config, position
        self.style = _style() if config.progress else "none"
        self.steps_per_epoch = steps_per_epoch
        self.interval = float(os.environ.get("SEQSEG_PROGRESS_INTERVAL", "30"))
        self.bar = None
        self.handle = None  # the IPython display handle of the ``display`` style
        self.last_print = self.start = time.monotonic()
        self.start_step = position["global_step"]

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def _rate(self) -> float:
        images = (self.position["global_step"] - self.start_step) * self.config.batch_size
        return images / max(time.monotonic() - self.start, 1e-9)

    def note(self, text: str) -> None:
        """One line about the run (its size, device, ...), printed once, in every style but
        ``none``."""
        if self.style != "none":
            print(f"[{self.config.experiment}] {text}", flush=True)

    def _line(self, loss: float) -> str:
        epoch, step = self.position["epoch"], self.position["step_in_epoch"]
        return (
            f"[{self.config.experiment}] epoch {epoch + 1}/{self.config.epochs} "
            f"step {step}/{self.steps_per_epoch} loss {loss:.4f} {self._rate():.1f} img/s"
        )

    def _show(self, line: str) -> None:
        from IPython.display import display

        if self.handle is None:
            self.handle = display({"text/plain": line}, raw=True, display_id=True)
        else:
            self.handle.update({"text/plain": line}, raw=True)

    def step(self, running: dict) -> None:
        """After each step. The running loss is read from the device only when a line is
        shown (at most every half second, or every ``SEQSEG_PROGRESS_INTERVAL`` seconds in a
        log): reading it costs a host synchronisation."""
        epoch, step = self.position["epoch"], self.position["step_in_epoch"]
        now = time.monotonic()
        if self.style == "display":
            if step == self.steps_per_epoch or now - self.last_print >= 0.5:
                self.last_print = now
                self._show(self._line(self._loss(running)))
            return
        if self.style == "bar":
            if self.bar is None or self.bar.n > step:
                self._new_bar(epoch)
            self.bar.update(step - self.bar.n)
            if step == self.steps_per_epoch or now - self.last_print >= 0.5:
                self.last_print = now
                loss = self._loss(running)
                self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{self._rate():.1f}")
        elif self.style == "log" and now - self.last_print >= self.interval:
            self.last_print = now
            print(self._line(self._loss(running)), flush=True)

    @staticmethod
    def _loss(running: dict) -> float:
        return float(running["loss_sums"].get("loss", 0.0)) / max(running["num_batches"], 1)

    def _new_bar(self, epoch: int) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"{self.config.experiment} epoch {epoch + 1}/{self.config.epochs}",
            leave=False,
        )

    def epoch_done(self, record: dict) -> None:
        if self.style == "none":
            return
        train, val = record["train"], record.get("val", {})
        message = (
            f"[{self.config.experiment}] epoch {record['epoch'] + 1}/{self.config.epochs} "
            f"train loss {train['loss']:.4f}"
        )
        if val:
            message += f" val loss {val['loss']:.4f}"
        for key in ("accuracy", "miou", "dice_loss", "pq"):
            if key in val:
                message += f" val {key} {val[key]:.4f}"
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.style == "display":
            self._show(message)  # the step line gives way to the epoch's
            self.handle = None  # the next epoch's line goes below it
            return
        print(message, flush=True)


class StatusLine:
    """A launcher's one line of state (``launch.train_runs``: runs done, each running run's
    epoch and step, time elapsed and left), rewritten in place on a terminal; elsewhere (a
    CI log, papermill) a plain line at most every ``SEQSEG_PROGRESS_INTERVAL`` seconds
    (default 30). ``say(line)`` prints a line of its own above it."""

    def __init__(self, stream: Any = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        if interval is None:
            interval = float(os.environ.get("SEQSEG_PROGRESS_INTERVAL", "30"))
        self.interval = 0.5 if self.tty else interval
        self.last = time.monotonic()  # (the first plain line comes one interval in)
        self.shown = ""  # the line on the terminal now

    def say(self, line: str) -> None:
        self._clear()
        print(line, file=self.stream, flush=True)
        if self.shown:
            self._write(self.shown)

    def update(self, text: Any, *args: Any) -> None:
        """Show ``text(*args)`` (made only when it is shown) if an interval has passed."""
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        line = text(*args)
        if not self.tty:
            print(line, file=self.stream, flush=True)
            return
        width = shutil.get_terminal_size().columns - 1
        self._clear()
        self.shown = line if len(line) <= width else line[: max(width - 3, 0)] + "..."
        self._write(self.shown)

    def _write(self, line: str) -> None:
        self.stream.write(line)
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[2K")  # carriage return, erase the line

    def close(self) -> None:
        self._clear()
        self.shown = ""
        self.stream.flush()


class PhaseTimer:
    """Seconds spent in each phase of each training step (``data``, ``forward``, ``loss``,
    ``backward``, ``optimizer``, ``metrics``), one dict per step in ``steps``, when enabled.

    On CUDA every phase boundary synchronises the device, which slows training down: enable it
    to measure where time goes, not to train."""

    def __init__(self, enabled: bool = False, device: torch.device | None = None) -> None:
        self.enabled = enabled
        self.cuda = device is not None and device.type == "cuda"
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        if not self.enabled:
            yield
            return
        self._synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            elapsed = time.perf_counter() - start
            self.current[phase] = self.current.get(phase, 0.0) + elapsed

    def end_step(self) -> None:
        if self.enabled:
            self.steps.append(self.current)
            self.current = {}

    def _synchronize(self) -> None:
        # (not while a CUDA graph records the step: a replay's phases are not timed apart)
        if self.cuda and not torch.cuda.is_current_stream_capturing():
            torch.cuda.synchronize()
