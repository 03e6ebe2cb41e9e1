"""``scratchdl serve`` used as a person would: the real server, in Debian's Chromium.

Playwright drives /usr/bin/chromium (never a browser of its own download: ``playwright
install`` is never run); scripts/test installs the Debian package when it is missing, and
these tests fail, not skip, without it. Screenshots go to the test's temporary folder, and to
$SCRATCHDL_SCREENSHOTS when it names a folder.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from scratchdl.datasets import load_mnist_sample
from tests.browser_helpers import (
    START_SECONDS,
    WAIT_MS,
    blank_canvases,
    expect,
    free_port,
    screenshot,
)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}  # an iPhone 12-14's CSS pixels


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real command, `scratchdl serve`, on a free port; stopped with Ctrl-C (SIGINT)."""
    runs = tmp_path_factory.mktemp("runs")
    done = runs / "simple-cnn-mnist"
    done.mkdir()
    history = {
        "loss": list(np.geomspace(2.3, 0.03, 300)),
        "train_acc": [0.97, 0.985, 0.99],
        "test_acc": [0.972, 0.984, 0.988],
        "epoch_seconds": [14.0, 14.2, 14.1],
        "final_test_acc": 0.988,
    }
    (done / "history.json").write_text(json.dumps(history))
    port = free_port()
    code = "import sys; from scratchdl.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code, "serve", "--port", str(port), "--runs", str(runs)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url + "api/health", timeout=2) as r:
                assert json.load(r)["status"] == "ok"
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {process.communicate()[0]}")
            time.sleep(0.2)
    yield {"url": url, "runs": runs}
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the server did not stop on Ctrl-C")
    assert process.returncode == 0, out
    assert url in out and "stopped" in out and "Traceback" not in out


def open_page(browser, server, **context):
    context.setdefault("locale", "en-US")  # the tests below read the English words
    page = browser.new_context(**context).new_page()
    page.goto(server["url"])
    page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    return page


def stroke(page, points) -> None:
    """One mouse stroke on #pad through ``points``, given as fractions of its size."""
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=3)
    page.mouse.up()


ONE = [(0.52, 0.18), (0.5, 0.5), (0.48, 0.82)]
ZERO = [(0.5 + 0.2 * np.sin(a), 0.5 - 0.32 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 33)]


def expect_prediction(page, digit: str) -> None:
    expect(page.locator("#prediction")).to_have_text(digit, timeout=WAIT_MS)


def expect_count(page, selector: str, count: int) -> None:
    expect(page.locator(selector)).to_have_count(count, timeout=WAIT_MS)


def test_drawing_a_1_and_a_0_shows_them_and_every_layer(browser, server, shots):
    page = open_page(browser, server, viewport={"width": 1280, "height": 1000})
    stroke(page, ONE)
    expect_prediction(page, "1")
    screenshot(page, shots, "draw-1.png", full_page=True)
    page.click("#clear")
    expect_prediction(page, "")
    stroke(page, ZERO)
    expect_prediction(page, "0")
    expect_count(page, "#layers canvas", 7)
    assert blank_canvases(page, "#layers") == (7, 0)  # the input and the six layers
    assert blank_canvases(page, "#filters") == (1, 0)
    top = page.locator("#bars .bar.top .digit").text_content()
    assert top == "0"
    screenshot(page, shots, "draw-0.png", full_page=True)
    screenshot(page, shots, "serve.png")  # the README's picture: the first screen
    page.context.close()


def test_an_uploaded_test_digit_gets_its_label(browser, server, shots, tmp_path):
    _, (x, t) = load_mnist_sample(flatten=False)
    i = 1  # MNIST's second test image, a 2
    path = tmp_path / f"digit-{t[i]}.png"
    Image.fromarray((x[i, 0] * 255).astype(np.uint8)).resize((140, 140)).save(path)
    page = open_page(browser, server, viewport={"width": 1280, "height": 1000})
    page.set_input_files("#file", str(path))
    expect_prediction(page, str(t[i]))
    assert page.locator("#upload-preview").is_visible()
    expect_count(page, "#layers canvas", 7)
    assert blank_canvases(page, "#layers") == (7, 0)
    screenshot(page, shots, "upload.png", full_page=True)
    page.context.close()


def test_the_test_set_its_mistakes_and_the_runs(browser, server, shots):
    page = open_page(browser, server, viewport={"width": 1280, "height": 900})
    page.click("#tabs button[data-view=testset]")
    page.wait_for_selector("#test-grid .sample", timeout=WAIT_MS)
    assert page.locator("#test-grid .sample").count() == 40
    page.click("#test-mistakes")
    expect(page.locator("#test-summary")).to_contain_text("Some of the mistakes", timeout=WAIT_MS)
    assert page.locator("#test-grid .sample.right").count() == 0
    assert page.locator("#test-grid .sample.wrong").count() > 0
    screenshot(page, shots, "testset-mistakes.png", full_page=True)

    page.click("#tabs button[data-view=runs]")
    page.wait_for_selector("#runs-table tbody tr", timeout=WAIT_MS)
    page.wait_for_selector("#run-chart:not([hidden])")
    assert blank_canvases(page, "#view-runs") == (1, 0)
    # a run that starts while the page is open shows up at the next refresh
    late = server["runs"] / "late-run"
    late.mkdir()
    (late / "history.json").write_text(json.dumps({"loss": [2.0], "test_acc": [0.5]}))
    page.wait_for_selector("#runs-table td:text-is('late-run')", timeout=WAIT_MS)
    screenshot(page, shots, "runs.png", full_page=True)
    page.context.close()


def test_the_page_works_at_a_phones_width(browser, server, shots):
    page = open_page(browser, server, viewport=PHONE, device_scale_factor=2, has_touch=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"
    box = page.locator("#pad").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert box["width"] >= 200  # big enough to draw on with a finger
    stroke(page, ONE)
    expect_prediction(page, "1")
    expect_count(page, "#layers canvas", 7)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"with the layers shown, the page is {overflow} px too wide"
    screenshot(page, shots, "phone.png", full_page=True)
    page.context.close()


def test_a_run_of_300_000_epochs_is_drawn(browser, server, shots):
    long = server["runs"] / "long-run"  # Math.min(...accs) overflowed the call stack here
    long.mkdir()
    acc = np.round(np.linspace(0.5, 0.99, 300_000), 3).tolist()
    history = {"loss": [2.0, 1.0], "train_acc": acc, "test_acc": acc, "final_test_acc": 0.99}
    (long / "history.json").write_text(json.dumps(history))
    page = open_page(browser, server, viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.click("#tabs button[data-view=runs]")
    page.click("#runs-table td:text-is('long-run')", timeout=WAIT_MS)
    expect(page.locator("#run-title")).to_contain_text("long-run: finished", timeout=WAIT_MS)
    expect(page.locator("#runs-summary")).not_to_contain_text("stack", timeout=WAIT_MS)
    assert blank_canvases(page, "#view-runs") == (1, 0) and not errors, errors
    screenshot(page, shots, "runs-long.png", full_page=True)
    page.context.close()


def test_a_runs_new_model_joins_the_menu_without_a_reload(browser, server):
    from scratchdl import TwoLayerNet
    from scratchdl.files import save

    page = open_page(browser, server, viewport={"width": 1280, "height": 900})
    folder = server["runs"] / "new-model"
    folder.mkdir()
    save(TwoLayerNet(784, 20, 10, rng=0), folder / "model.safetensors")
    page.focus("#model")  # the menu asks the server again as it is about to open
    expect(page.locator("#model option[value=run-new-model]")).to_have_count(1, timeout=WAIT_MS)
    page.select_option("#model", "run-new-model")
    stroke(page, ONE)
    expect(page.locator("#prediction")).not_to_have_text("", timeout=WAIT_MS)
    page.context.close()


JAPANESE = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")
VISIBLE_TEXTS = """(selector) => {
    const texts = [];
    const walk = document.createTreeWalker(document.querySelector(selector), NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) {
        const text = walk.currentNode.textContent.trim();
        if (text && walk.currentNode.parentElement.checkVisibility()) texts.push(text);
    }
    return texts;
}"""


def ascii_words(texts) -> set[str]:
    return {word for text in texts for word in re.findall(r"[A-Za-z]{2,}", text)}


def server_words(server) -> list[str]:
    """What the server names, shown as it says it (model titles, the runs folder and its run
    names, the test set)."""

    def get(path):
        with urllib.request.urlopen(server["url"] + path, timeout=10) as response:
            return json.load(response)

    return (
        [m["title"] for m in get("api/models")["models"]]
        + [get("api/runs")["root"]]
        + [run["name"] for run in get("api/runs")["runs"]]
        + [get("api/testset?count=1")["source"]]
    )


def words_left(page, server, view: str, wrong) -> list[str]:
    """The visible texts of the header and ``view`` that ``wrong`` finds words of the other
    language in, once the server's own words are taken out."""
    found = []
    for selector in ("header", f"#view-{view}"):
        for text in page.evaluate(VISIBLE_TEXTS, selector):
            for name in server_words(server):
                text = text.replace(name, "")
            if wrong(text):
                found.append(text)
    return found


def test_every_tab_in_japanese_then_english_at_the_switch(browser, server, shots):
    page = open_page(browser, server, viewport={"width": 1280, "height": 1000}, locale="ja-JP")
    words = page.evaluate("async () => (await import('/static/i18n.js')).WORDS")
    english_only = ascii_words(words["en"].values()) - ascii_words(words["ja"].values())
    assert {"Clear", "Mistakes", "accuracy", "run"} <= english_only  # the check can fail

    def english(text):
        return ascii_words([text]) & english_only

    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("#clear")).to_have_text("消す")
    stroke(page, ZERO)
    expect_prediction(page, "0")
    expect_count(page, "#layers canvas", 7)
    expect(page.locator("#layers figcaption small").first).to_have_text("中心に寄せた後")
    screenshot(page, shots, "serve.ja.png")  # README.ja.md's picture
    assert words_left(page, server, "inside", english) == []

    page.click("#tabs button[data-view=testset]")
    page.click("#test-mistakes")
    expect(page.locator("#test-summary")).to_contain_text("誤認識の一部", timeout=WAIT_MS)
    expect(page.locator("#test-mistakes")).to_have_text("誤認識")
    assert words_left(page, server, "testset", english) == []

    page.click("#tabs button[data-view=runs]")
    page.click("#runs-table td:text-is('simple-cnn-mnist')", timeout=WAIT_MS)
    expect(page.locator("#run-title")).to_contain_text("simple-cnn-mnist：完了", timeout=WAIT_MS)
    expect(page.locator("#runs-table th").first).to_have_text("名前")
    expect(page.locator("#runs-summary")).to_contain_text("学習の記録")
    assert words_left(page, server, "runs", english) == []

    page.click("#tabs button[data-view=train]")
    page.wait_for_selector("body[data-train-ready=true]", timeout=WAIT_MS)
    assert words_left(page, server, "train", english) == []
    page.click("#tabs button[data-view=runs]")

    page.click("#lang")  # every tab at once, without a reload
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#runs-table th").first).to_have_text("run")
    expect(page.locator("#runs-summary")).to_contain_text("Run folders in", timeout=WAIT_MS)
    title = page.locator("#run-title")
    expect(title).to_contain_text("simple-cnn-mnist: finished", timeout=WAIT_MS)

    def japanese(text):  # the switch names the other language: 日本語
        return text != "日本語" and JAPANESE.search(text)

    assert words_left(page, server, "runs", japanese) == []
    page.click("#tabs button[data-view=testset]")  # shown as it was, in the new words
    expect(page.locator("#test-summary")).to_contain_text("Some of the mistakes")
    assert words_left(page, server, "testset", japanese) == []
    page.click("#tabs button[data-view=inside]")
    expect(page.locator("#clear")).to_have_text("Clear")
    expect(page.locator("#layers figcaption small").first).to_have_text("after centring")
    assert words_left(page, server, "inside", japanese) == []
    page.click("#tabs button[data-view=train]")
    assert words_left(page, server, "train", japanese) == []
    assert page.title() == "scratchdl serve: look inside the network"
    page.context.close()
