"""Progress output: one line updated in place in a notebook (no widget), lines in a log; the
launcher's status line, in place on a terminal."""

import io
import time

import IPython.display
import pytest

from seqseg_lib import engine
from seqseg_lib.experiments import build_config
from seqseg_lib.progress import Progress, StatusLine


class Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, data, raw):
        assert raw
        self.shown[-1].append(data["text/plain"])


def test_a_notebook_gets_lines_updated_in_place_not_widgets(tmp_path, monkeypatch):
    shown = []  # one list of successive texts per display handle

    def display(data, raw, display_id):
        assert raw and display_id is True
        shown.append([data["text/plain"]])
        return Handle(shown)

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setenv("SEQSEG_PROGRESS", "display")
    engine.train(build_config("unet", "smoke", progress=True), tmp_path)
    assert len(shown) == 2  # one line per epoch, each ending with the epoch's summary
    for epoch, texts in enumerate(shown, start=1):
        assert texts[0].startswith(f"[unet] epoch {epoch}/2 step ")
        assert texts[-1].startswith(f"[unet] epoch {epoch}/2 train loss ")


def test_an_unknown_style_is_refused(monkeypatch):
    monkeypatch.setenv("SEQSEG_PROGRESS", "widget")
    config = build_config("unet", "smoke", progress=True)
    with pytest.raises(ValueError, match="valid: bar, display, log, none"):
        Progress(config, {"epoch": 0, "step_in_epoch": 0, "global_step": 0}, 2)


def test_training_says_the_model_size_when_it_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEQSEG_PROGRESS", "log")
    engine.train(build_config("unet", "smoke", progress=True, max_steps=1), tmp_path)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("[unet] 122,258 parameters, cpu (") and "float32" in first


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_status_line_is_rewritten_in_place_on_a_terminal_and_seldom_in_a_log(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    terminal = StatusLine(Terminal())
    for second in range(3):
        clock[0] += 1
        terminal.update(lambda n: f"{n}/3 runs done", second)
    terminal.say("[1/3] finished a")
    terminal.close()
    shown = terminal.stream.getvalue()
    assert shown == (
        "0/3 runs done\r\x1b[2K1/3 runs done\r\x1b[2K2/3 runs done"
        "\r\x1b[2K[1/3] finished a\n2/3 runs done\r\x1b[2K"
    )
    log = StatusLine(io.StringIO(), interval=30)
    made = []
    for _ in range(100):  # a look every second: a line every 30 s, made only then
        clock[0] += 1
        log.update(lambda: made.append(1) or "a line")
    assert log.stream.getvalue() == "a line\n" * 3 and len(made) == 3
