"""The explorer page in a real browser: ``postfusion-bayes explore`` served on 127.0.0.1, driven by Playwright with the system Chromium.

Skipped, with the reason, where Chromium (``/usr/bin/chromium`` or ``chromium`` on
the PATH) or Playwright is missing; with ``POSTFUSION_REQUIRE_BROWSER=1`` (set by
``.ci/run``) a missing browser fails instead. Screenshots go to ``artifacts/browser/``
(git-ignored). One server for every check (module fixture), stopped by Ctrl-C
(SIGINT) in the teardown, which must exit 130 and leave no process behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import postfusion_bayes as pfb
from postfusion_bayes.explorer import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Seconds the page may take to start (voila starts a kernel, which imports the library) and to answer a click.
START_TIMEOUT, UPDATE_TIMEOUT = 90, 20


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _missing() -> str:
    """Why the browser test cannot run here, or ""."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'Playwright is not installed (pip install -e ".[test]")'
    if _chromium() is None:
        return "no Chromium: apt-get install -y chromium (Playwright's own browser download is not used)"
    for module in ("voila", "ipywidgets"):
        try:
            __import__(module)
        except ImportError:
            return f'{module} is not installed (pip install -e ".[test]")'
    return ""


@pytest.fixture(scope="module")
def server():
    """Serve the explorer with the command line, as a user would; yield its address; stop it with Ctrl-C."""
    missing = _missing()
    if missing:
        if os.environ.get("POSTFUSION_REQUIRE_BROWSER") == "1":
            pytest.fail(f"POSTFUSION_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"browser test skipped: {missing}")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    # Ctrl-C as a terminal's foreground command gets it: SIGINT at its default (pytest-xdist's workers ignore
    # SIGINT, and a child inherits an ignored signal, so Python would install no KeyboardInterrupt handler)
    process = subprocess.Popen(
        [sys.executable, "-m", "postfusion_bayes", "explore", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        assert first and first[0].startswith(f"serving the explorer at {url}"), (first, process.poll())
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # the voila server and its kernel run in sessions of their own and hold the pipes: kill them as well,
            # or reading the pipes to the end would wait for ever
            for pid in [*_descendants(process.pid), process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.communicate(timeout=30)
            raise
        status = process.returncode
        assert status == 130 and "interrupted" in err, (status, err[-2000:])
        leftover = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert not leftover, f"processes left in the server's session: {leftover}"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first."""
    found: list[int] = []
    parents = [pid]
    while parents:
        children = [int(c) for p in parents for c in subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout.split()]
        found += children
        parents = children
    return found


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, timeout=START_TIMEOUT * 1000)
            page.wait_for_selector(".pfb-posterior .pfb-row", timeout=START_TIMEOUT * 1000)
            yield page
        finally:
            browser.close()


def shown(page) -> dict[str, tuple[float, str]]:
    """Cause -> (posterior, the text beside its bar), as the page shows them, in display order."""
    rows = page.eval_on_selector_all(".pfb-posterior .pfb-row", "rows => rows.map(r => [r.dataset.cause, r.dataset.posterior, r.querySelector('.pfb-number').textContent])")
    return {cause: (float(p), text) for cause, p, text in rows}


def wait_for(page, dx) -> None:
    """Wait until the page shows the posterior of ``dx`` (the top cause's number, to every digit), then check every cause."""
    top = dx.top
    expected = repr(float(dx.posterior[top]))
    page.wait_for_function(
        "([cause, value]) => { const r = document.querySelector(`.pfb-posterior .pfb-row[data-cause='${cause}']`); return r && r.dataset.posterior === value; }",
        arg=[top, expected], timeout=UPDATE_TIMEOUT * 1000,
    )  # fmt: skip
    page.wait_for_timeout(200)  # the other widgets of the same update
    rows = shown(page)
    assert list(rows) == dx.posterior.index.tolist()
    for cause, (value, text) in rows.items():
        assert value == dx.posterior[cause], cause
        assert text.startswith(f"{100 * dx.posterior[cause]:.1f}%"), (cause, text)


def screenshot(page, name: str) -> None:
    """Save the page from its top (a click scrolls it) to ``artifacts/browser/NAME.png``."""
    page.eval_on_selector(".pfb-explorer", "e => e.scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def click(page, name: str, state: str) -> None:
    page.click(f".pfb-var-{name} button[data-value='{state}']")


def test_the_page_follows_clicks_red_flags_and_sliders_as_the_model_says(page):
    model = pfb.load_model()
    wait_for(page, model.diagnose({}))
    screenshot(page, "01_no_evidence")

    evidence = {"time_since_surgery": "over_2_years"}
    page.select_option(".pfb-var-time_since_surgery select", label="over_2_years")
    wait_for(page, model.diagnose(evidence))
    for name, state in [("neurogenic_claudication", "yes"), ("radicular_pain", "no")]:
        click(page, name, state)
        evidence[name] = state
        wait_for(page, model.diagnose(evidence))
    expected = model.diagnose(evidence).next_tests().head(3).index.tolist()  # computed in the kernel's background thread
    page.wait_for_function(
        "tests => JSON.stringify([...document.querySelectorAll('.pfb-next-tests tr[data-test]')].map(r => r.dataset.test)) === JSON.stringify(tests)",
        arg=expected, timeout=UPDATE_TIMEOUT * 1000,
    )  # fmt: skip
    screenshot(page, "02_findings")

    banner = page.locator(".pfb-banner")
    assert not banner.is_visible()
    click(page, "saddle_anesthesia", "yes")
    banner.wait_for(state="visible", timeout=UPDATE_TIMEOUT * 1000)
    assert model.spec.variables["saddle_anesthesia"].advice in banner.inner_text()
    # the dimmed class is its own widget message of the same update: it may reach the page just after the banner
    page.wait_for_function("() => document.querySelector('.pfb-differential').classList.contains('pfb-dimmed')", timeout=UPDATE_TIMEOUT * 1000)
    wait_for(page, model.diagnose({**evidence, "saddle_anesthesia": "yes"}))  # still there, dimmed, for teaching
    screenshot(page, "03_red_flag")
    click(page, "saddle_anesthesia", "unknown")
    banner.wait_for(state="hidden", timeout=UPDATE_TIMEOUT * 1000)
    page.wait_for_function("() => !document.querySelector('.pfb-differential').classList.contains('pfb-dimmed')", timeout=UPDATE_TIMEOUT * 1000)
    wait_for(page, model.diagnose(evidence))

    name = "findings.neurogenic_claudication.leak"
    high = model.spec.parameters[name].high
    page.select_option(".pfb-parameter-choice select", label=name)
    page.wait_for_function("n => document.querySelector('.pfb-parameter-source span')?.title === n", arg=name, timeout=UPDATE_TIMEOUT * 1000)
    readout = page.locator(".pfb-parameter-slider .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(repr(high))
    page.keyboard.press("Enter")
    wait_for(page, model.with_parameters({name: high}).diagnose(evidence))
    screenshot(page, "04_prior_slider")
