"""The query inspectors of notebooks 03 and 04 in JupyterLab, in a real browser.

JupyterLab runs headless on 127.0.0.1 with a token and a temporary root holding copies of the
two notebooks under the ``smoke`` profile; Debian's Chromium (``./run_all.sh --setup``),
driven by Playwright's Python API, opens each, runs all cells, moves the inspector's controls
and checks that the picture and its caption follow, with no error in the browser console.
A screenshot of each inspector is saved beside the test's files, and into the folder named by
``SEQSEG_SCREENSHOTS`` when set (``reports/figures`` for the committed ones), under a line
saying where its model comes from. ``SEQSEG_SCREENSHOT_PROFILE`` and ``SEQSEG_SCREENSHOT_RUNS``
run the notebooks at another profile on existing runs (the committed shots: ``cpu`` and the
repository's ``runs/``, notebook by notebook: ``-k 03``). Without
Chromium or Playwright the test skips and says how to install them, except where
``SEQSEG_REQUIRE_BROWSER`` is set (CI sets it): there it fails.
"""

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, free_port

CHROMIUM = Path(os.environ.get("SEQSEG_CHROMIUM", "/usr/bin/chromium"))
# Chromium as root, headless, without the background connections a closed network refuses
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 150_000  # running all cells of a notebook, training included


def missing(what: str) -> None:
    """Skip (a user's machine) or fail (``SEQSEG_REQUIRE_BROWSER``, CI) for want of ``what``."""
    if os.environ.get("SEQSEG_REQUIRE_BROWSER"):
        pytest.fail(what)
    pytest.skip(what + " (set SEQSEG_REQUIRE_BROWSER=1 to make this a failure)")


PROFILE = os.environ.get("SEQSEG_SCREENSHOT_PROFILE", "smoke")


def lab_copy(name: str, root: Path, runs: Path, reports: Path, **parameters) -> None:
    """``notebooks/name`` into ``root``, its parameters set to ``PROFILE`` and the test's
    folders, run by the server's own Python (kernel ``python3``)."""
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    values = {"profile": PROFILE, "runs_dir": str(runs), "reports_dir": str(reports)}
    cell.source += "".join(f"\n{k} = {v!r}" for k, v in (values | parameters).items())
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, root / name)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on the copies: ``(base url, token, root)``."""
    if not CHROMIUM.exists():
        missing(
            f"Chromium not found at {CHROMIUM}: `./run_all.sh --setup` as root installs it "
            "(Debian's chromium), or point SEQSEG_CHROMIUM at a Chromium binary"
        )
    tmp = tmp_path_factory.mktemp("lab")
    root, runs, reports = tmp / "root", tmp / "runs", tmp / "reports"
    runs = Path(os.environ.get("SEQSEG_SCREENSHOT_RUNS", runs)).resolve()
    root.mkdir()
    lab_copy("03_mnist_instance.ipynb", root, runs, reports, bce_modes=[])
    lab_copy("04_hungarian_unet.ipynb", root, runs, reports, ablation=False)
    # no "Jupyter news?" prompt over the screenshots (the setting of JupyterLab 4's notifications)
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = free_port(), secrets.token_hex(16)
    env = os.environ | {
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "SEQSEG_PROGRESS": "log",
        "OMP_NUM_THREADS": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1"]
        + [f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
        + ["--allow-root", "--LabApp.expose_app_in_browser=True"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"JupyterLab did not start: {(tmp / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url, token, tmp
    server.terminate()
    server.wait(timeout=30)


def with_provenance(shot: Path, target: Path, what: str) -> None:
    """``shot`` under a grey line naming what it shows, its runs (their profile and date),
    the code's commit and the date, as the figures of ``reports/`` have one."""
    from PIL import Image, ImageDraw

    from seqseg_lib.plotting import code_version

    line = f"{what}, code: {code_version()}, date: {time.strftime('%Y-%m-%d')}"
    image = Image.open(shot).convert("RGB")
    framed = Image.new("RGB", (image.width, image.height + 22), "white")
    framed.paste(image, (0, 22))
    ImageDraw.Draw(framed).text((6, 5), line, fill=(100, 100, 100))
    framed.save(target)


def control(page, label: str):
    """The ipywidgets slider whose description is ``label``."""
    return page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label)).last


def changed(page, before: tuple[str, str], picture: bool = True) -> tuple[str, str]:
    """Wait until the inspector's caption (and its picture, unless ``picture=False``) differs
    from ``before``; fail with what the page shows if it does not."""
    try:
        page.wait_for_function(
            """([src, text, picture]) => {
                const img = [...document.querySelectorAll('.widget-image')].pop();
                const cap = [...document.querySelectorAll('.widget-html-content')].pop();
                return img && cap && (img.src !== src || !picture) && cap.innerText !== text;
            }""",
            arg=[*before, picture],
            timeout=30_000,
        )
    except Exception as error:  # Playwright's TimeoutError
        pytest.fail(f"the inspector did not change ({error}); it shows: {state(page)[1]!r}")
    return state(page)


def state(page) -> tuple[str, str]:
    image = page.locator(".widget-image").last.get_attribute("src")
    return image, page.locator(".widget-html-content").last.inner_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["03_mnist_instance.ipynb", "04_hungarian_unet.ipynb"])
def test_inspector_in_jupyterlab(lab, name):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed: ./run_all.sh --setup installs requirements.txt")
    url, token, tmp = lab
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        # a workspace of its own: the other notebook's tab is not in this page
        page.goto(f"{url}/lab/workspaces/{name[:2]}/tree/{name}?token={token}&reset")
        page.wait_for_function(
            "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel"
            "?.status === 'idle'",
            timeout=60_000,
        )
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        caption = page.locator(".widget-html-content", has_text="threshold 0.50")
        caption.last.wait_for(timeout=TIMEOUT_MS)
        first = state(page)
        assert "image 0" in first[1]

        control(page, "image").locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")
        moved = changed(page, first)
        assert "image 1" in moved[1]

        control(page, "threshold").locator(".noUi-handle").focus()
        page.keyboard.press("Home")  # to 0: every query that predicts an object is confident
        lowered = changed(page, moved, picture=False)  # (the same picture if none does)
        assert "threshold 0.00" in lowered[1]

        if name.startswith("03"):  # easy and hard images
            page.locator(".widget-toggle-button", has_text="hard").click()
            assert "hard image" in changed(page, lowered)[1]

        shot = tmp / f"inspector_{name[:2]}.png"
        page.locator(".widget-vbox", has=page.locator(".widget-image")).last.screenshot(path=shot)
        browser.close()
    if os.environ.get("SEQSEG_SCREENSHOTS"):
        suffix = "" if name.startswith("03") else "_04"
        target = Path(os.environ["SEQSEG_SCREENSHOTS"]) / f"inspector_jupyterlab{suffix}.png"
        with_provenance(shot, target, f"notebook {name[:2]} in JupyterLab, profile {PROFILE}")
    assert not errors, "browser console errors:\n" + "\n".join(errors)
