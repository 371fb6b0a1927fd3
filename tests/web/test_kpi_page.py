"""The console's KPI page in a real browser (Debian chromium) against a live ``auxilio serve``:
a month of activity generated into the server's database (``auxilio admin generate-activity``,
as an administrator would), a supervisor of that organisation sees the KPIs with the same
numbers as the REST API, every chart loads under the CSP, the exports download, and the
comparison page shows the two policy versions the month's tickets were decided by."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from auxilio.server.web.session import LANG_COOKIE
from tests.e2e.conftest import AUXILIO
from tests.web.conftest import Person, describe

pytestmark = pytest.mark.e2e

MONTH = "2026-11"
SEED = 14
SLUG = f"demo-{MONTH}-01-seed{SEED}"


@pytest.fixture(scope="module")
def versions(web_data_dir: Path, live_server: str) -> list[str]:
    """A month of generated activity in its own organisation; the policy versions it used."""
    done = subprocess.run(
        [*AUXILIO, "admin", "generate-activity", "--month", MONTH, "--tickets-per-day", "40",
         "--seed", str(SEED), "--data-dir", str(web_data_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert SLUG in done.stdout, done.stdout
    found = re.search(r"policy versions (.+?) \(", done.stdout)
    assert found, done.stdout
    return found.group(1).split(", ")


@pytest.fixture(scope="module")
def supervisor(create_person: Callable[..., Person], versions: list[str]) -> Person:
    return create_person(f"kpis@{SLUG}.example", "supervisor", name="Kira KPI", org=SLUG)


def _api(live_server: str, token: str, path: str, **params: str) -> Any:
    answer = httpx.get(f"{live_server}/api/v1/reports{path}", params=params, timeout=120,
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def _watch_console(page: Page) -> list[str]:
    """Every console message and page error of ``page`` from now on."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: seen.append(f"pageerror: {error}"))
    return seen


def _charts_loaded(page: Page) -> dict[str, int]:
    """Each chart image's natural width (0: it did not load or did not decode)."""
    widths: dict[str, int] = page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('img[id^="chart-"]')].map(i => [i.id, i.naturalWidth]))""")
    return widths


def test_the_kpi_page_shows_the_apis_numbers_with_charts_under_the_csp(
    page: Page, login: Callable[..., None], supervisor: Person, live_server: str,
    api_token: Callable[[Person], str], axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Path],
) -> None:  # fmt: skip
    seen = _watch_console(page)
    login(page, supervisor)
    page.get_by_role("link", name="KPIs").click()
    expect(page.get_by_role("heading", name="KPIs", level=1)).to_be_visible()
    page.get_by_label("Month").fill(MONTH)
    page.get_by_label("Slice by").select_option("policy_version")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#kpi-slices")).to_be_visible()

    report = _api(live_server, api_token(supervisor), "/kpis", start="2026-11-01",
                  end="2026-12-01", slice_by="policy_version")  # fmt: skip
    assert report["overall"]["kpis"]["tickets_created"]["value"] == 30 * 40
    shown = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        '#kpi-table tbody tr')].map(r => [r.dataset.kpi, [r.cells[1].dataset.value,
        r.cells[2].dataset.n, r.querySelector('summary').textContent.trim()]]))""")
    wanted = {kpi: ["" if v["value"] is None else _number(v["value"]), str(v["n"]), v["definition"]]
              for kpi, v in report["overall"]["kpis"].items()}  # fmt: skip
    assert {k: [_number(float(a)) if a else "", n, d] for k, (a, n, d) in shown.items()} == wanted
    keys = page.locator("#kpi-slices tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == [row["key"] for row in report["rows"]]

    page.wait_for_load_state("networkidle")
    widths = _charts_loaded(page)
    assert len(widths) == 5 and all(w > 0 for w in widths.values()), widths
    summary = page.locator("#kpi-table tr[data-kpi='csat'] details summary")
    summary.click()
    expect(page.locator("#kpi-table tr[data-kpi='csat'] details")).to_contain_text("top 40 %")
    violations = axe(page)
    assert not violations, describe(violations)
    screenshot(page, "web-console-kpis")

    with page.expect_download() as download:
        page.locator("#export-csv").click()
    assert download.value.suggested_filename == "kpis-20261101-20261201.csv"
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("key,label,kpi,definition,unit,value,n,note\n")
    with page.expect_download() as monthly:
        page.locator("#monthly-pdf").click()
    assert Path(monthly.value.path()).read_bytes().startswith(b"%PDF-")
    csp = [line for line in seen if "Content Security Policy" in line or "pageerror" in line]
    assert not csp, csp


def _number(value: float) -> str:
    """A value as both sides can print it (the page's attribute and the JSON differ in form)."""
    return f"{value:.6g}"


def test_the_comparison_page_shows_both_policy_versions(
    page: Page, login: Callable[..., None], supervisor: Person, versions: list[str],
    live_server: str, api_token: Callable[[Person], str], axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Path],
) -> None:  # fmt: skip
    seen = _watch_console(page)
    login(page, supervisor)
    page.goto("/console/kpis")
    page.get_by_role("link", name="Compare two policy versions").click()
    first, second = versions
    page.get_by_label("Policy version A").select_option(first)
    page.get_by_label("Policy version B").select_option(second)
    page.get_by_role("button", name="Compare").click()
    table = page.locator("#comparison")
    expect(table.locator("th[data-side='a']")).to_have_text(first)
    expect(table.locator("th[data-side='b']")).to_have_text(second)
    compared = _api(live_server, api_token(supervisor), "/kpis/compare", a=first, b=second)
    row = table.locator("tr[data-kpi='resolution_time_mean'] td")
    for index, side in ((0, "a"), (1, "b")):
        value = compared[side]["row"]["kpis"]["resolution_time_mean"]["value"]
        attribute = row.nth(index).get_attribute("data-value")
        assert attribute and _number(float(attribute)) == _number(value)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => document.getElementById('chart-comparison').naturalWidth") > 0
    violations = axe(page)
    assert not violations, describe(violations)
    screenshot(page, "web-console-kpis-compare")
    csp = [line for line in seen if "Content Security Policy" in line or "pageerror" in line]
    assert not csp, csp


def test_a_technician_has_no_kpi_link_and_is_refused_the_page(
    page: Page, login: Callable[..., None], create_person: Callable[..., Person],
    versions: list[str],
) -> None:  # fmt: skip
    technician = create_person(f"tech@{SLUG}.example", "technician", name="Teo Tech", org=SLUG)
    login(page, technician)
    page.goto("/console")
    expect(page.locator("nav.subnav")).to_be_visible()
    expect(page.locator("nav.subnav").get_by_role("link", name="KPIs")).to_have_count(0)
    answer = page.goto("/console/kpis")
    assert answer is not None and answer.status == 403


def test_a_bad_period_is_shown_with_its_code_in_spanish_and_charts_are_words_in_spanish(
    page: Page, login: Callable[..., None], supervisor: Person, live_server: str,
) -> None:  # fmt: skip
    login(page, supervisor)
    # The language switch's cookie, as the header's "Español" button sets it.
    page.context.add_cookies([{"name": LANG_COOKIE, "value": "es", "url": live_server}])
    answer = page.goto("/console/kpis?from=2026-11-10&to=2026-11-01")
    assert answer is not None and answer.status == 422
    expect(page.locator("#kpi-error code")).to_have_text("report.period_invalid")
    expect(page.get_by_role("heading", name="KPI", level=1)).to_be_visible()
    chart = page.request.get(f"/console/kpis/charts/resolution-trend.svg?month={MONTH}")
    assert chart.status == 200
    assert chart.headers["content-type"] == "image/svg+xml"
    assert "Tiempo de resolución" in chart.text() and "Horas" in chart.text()
    assert page.request.get("/console/kpis/charts/nonsense.svg").status == 404
