"""What the browser tests share: Debian's Chromium driven by Playwright (never its own
download), screenshots, and waits sized for a busy 2-core machine."""

from __future__ import annotations

import socket
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_SECONDS = 60  # the server loads its model and test images first
WAIT_MS = 15_000  # for a prediction on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(page, shots: list[Path], name: str, **options) -> None:
    data = page.screenshot(**options)
    for folder in shots:
        (folder / name).write_bytes(data)


def expect(locator):
    # the page's Content-Security-Policy forbids eval, so no wait_for_function: locators only
    from playwright.sync_api import expect

    return expect(locator)


def blank_canvases(page, selector: str) -> tuple[int, int]:
    """(canvases under ``selector``, how many of them hold a single colour)."""
    counts = page.evaluate(
        """(selector) => {
            const canvases = [...document.querySelectorAll(selector + " canvas")];
            const blank = canvases.filter((c) => {
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                for (let i = 4; i < d.length; i += 4) {
                    if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return false;
                }
                return true;
            });
            return [canvases.length, blank.length];
        }""",
        selector,
    )
    return tuple(counts)
