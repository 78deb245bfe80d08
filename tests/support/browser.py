"""Helpers of the browser tests (Playwright with Debian's Chromium): the browser, logging in, the axe-core
accessibility check and page screenshots for the test artefacts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from cryoplan.service.app import NIIVUE_BUNDLE
from support.service import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWER_DIR = Path(__file__).resolve().parents[2] / "src" / "cryoplan" / "service" / "viewer"
AXE = VIEWER_DIR / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def require(condition: bool, reason: str) -> None:
    """Skip when a browser-test prerequisite is missing; fail under CI=true, where it must be present."""
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def launch_browser():
    """Yield a headless Chromium (skips when Debian's chromium or NiiVue is not installed)."""
    require(shutil.which(CHROMIUM) is not None, "Debian's chromium is not installed (make system-deps)")
    require(NIIVUE_BUNDLE.exists(), "NiiVue is not installed (npm ci --prefix src/cryoplan/service/viewer)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def log_in(page, server_url: str, username: str) -> None:
    page.goto(server_url + "/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(server_url + "/")


def artefacts_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $CRYOPLAN_ARTEFACTS when set (kept after the run), else the test's tmp folder."""
    root = Path(os.environ.get("CRYOPLAN_ARTEFACTS") or tmp_path / "artefacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


def axe_violations(page) -> list[dict]:
    """Run axe-core (WCAG 2.0/2.1 A and AA rules) on the page; returns the serious and critical violations."""
    require(AXE.exists(), "axe-core is not installed (npm ci --prefix src/cryoplan/service/viewer)")
    # Added through the DevTools protocol, so the page's Content-Security-Policy does not apply to it.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate(
        """async () => {
            const tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
            const r = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


# The innermost elements that reach past the right edge of the window (what makes a page scroll sideways).
WIDE_ELEMENTS = """() => [...document.querySelectorAll("body *")].filter(e => {
    if (e.getBoundingClientRect().right <= window.innerWidth + 1) return false;
    for (let x = e.parentElement; x; x = x.parentElement) {
        if (["auto", "hidden", "scroll"].includes(getComputedStyle(x).overflowX)) return false;  // scrolls itself
    }
    return true;
}).slice(0, 8).map(e => e.tagName + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : ""))"""


def check_page(page, name: str, out_dir: Path) -> None:
    """Screenshot the page at 1366×768 and 390×844 (full page) and assert it has no serious or critical
    accessibility violation and no horizontal scrolling on a phone."""
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.wait_for_timeout(150)
        page.screenshot(path=str(out_dir / f"{name}-{label}.png"), full_page=True)
        if label == "phone":
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            wide = page.evaluate(WIDE_ELEMENTS) if overflow > 1 else []
            assert overflow <= 1, f"{name} scrolls sideways by {overflow} px at 390 px: {wide}"
    page.set_viewport_size(DESKTOP)
    violations = axe_violations(page)
    assert not violations, f"{name}: " + json.dumps(violations, indent=1)
