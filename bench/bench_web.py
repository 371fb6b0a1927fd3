"""Web console benchmarks: the queue page against ``GET /healthz``, and the browser terminal's
keystroke round trip against the CLI client's, each pair measured in the same run.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_web.py [--requests 300]``.

Set-up goes through the service layer (as ``_relay_auxilio.py`` does) before ``auxilio serve``
starts in a subprocess on a temporary SQLite data directory: an organisation, a senior
technician (the default policy gives the terminal to that role; TOTP enrolled, trained, on duty
always), an end user, the auditor's key (the default policy records every session) and 1,000
tickets. The client's configuration directory is a temporary one too (nothing is pinned in
``~/.config``).

* ``console``: the technician logs in over httpx the way a browser does (``GET /login`` gives
  the CSRF pre-session cookie and token, ``POST /login`` the session cookie); then ``--requests``
  sequential ``GET /console`` (the queue, 1,000 tickets) and as many ``GET /healthz``, after a
  warm-up. Times are measured at the client on loopback: the server's time plus one local
  round trip, the same for both, so the difference is what rendering the queue costs.
* ``terminal``: one real agent process per session (``auxilio agent join ... --terminal``,
  consenting at its prompt, bash on a pseudo-terminal). First the browser: Debian's chromium
  (Playwright) logged in with the same session cookie starts the session from the ticket page
  and opens the live page, which does the E2E handshake itself; a ``page.evaluate`` loop then
  types one character at a time through xterm's own input path (``Terminal.input``, what a key
  press triggers) and times with ``performance.now()`` until the live page hands the echoed
  character to xterm. Then the CLI client (``auxilio.client.session.TechnicianSession``, the
  code behind ``auxilio connect``) does the same in this process with ``perf_counter``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_relay import VENV_BIN, free_port, started  # noqa: E402

ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
PASSWORD = "bench password 123"
TECH_EMAIL = "tech@bench.test"
ORG = "bench"
TICKETS = 1000
CATEGORIES = ("software", "network", "hardware", "account")
PRIORITIES = ("low", "normal", "high", "critical")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
CHROMIUM = "/usr/bin/chromium"
PROMPT = re.compile(r"[$#] ?$|[$#] ")  # bash's prompt, a user's or root's


@dataclass
class Setup:
    token: str  # the technician's login token, for the CLI client
    totp_secret: str
    ticket_id: str
    ticket_number: int
    data_dir: Path
    database_url: str
    server_key: Any  # the server's Ed25519 public key (the CLI client verifies the grant)


def _system(org_id: Any = None) -> Any:
    from auxilio.server.context import Actor

    return Actor.system(org_id) if org_id is not None else Actor.system()


async def _set_up(data_dir: Path, database_url: str, tickets: int) -> Setup:
    """Organisation, technician, end user, auditor key and ``tickets`` tickets."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from auxilio.policy.roles import Role
    from auxilio.server.app import create_app, prepare
    from auxilio.server.db.base import utcnow
    from auxilio.server.identity import auth, service
    from auxilio.server.identity import secrets as sec
    from auxilio.server.recordings import service as recordings
    from auxilio.server.settings import load_settings
    from auxilio.server.tickets import service as ticket_service

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    prepared = prepare(settings)
    app = create_app(settings, signing_key=prepared.signing_key)
    async with app.router.lifespan_context(app), app.state.sessionmaker() as db, db.begin():
        org = await service.create_organisation(db, slug=ORG, name="Bench", actor=_system())
        tech = await service.create_user(
            db, organisation=org, email=TECH_EMAIL, display_name="Bench Tech",
            role=Role.SENIOR_TECHNICIAN, password=PASSWORD, actor=_system(org.id),
            skills=list(CATEGORIES), working_hours=ALWAYS, timezone="UTC",
        )  # fmt: skip
        for training in ("privacy", "approved-tools"):  # the default policy requires both
            await service.record_training(
                db, user=tech, training_id=training, title=training, completed_at=utcnow(),
                expires_at=None, actor=_system(org.id),
            )  # fmt: skip
        await auth.start_totp_enrolment(db, user=tech, actor=auth.actor_for(tech))
        assert tech.totp_secret is not None
        secret = tech.totp_secret
        step = int(utcnow().timestamp()) // sec.TOTP_PERIOD
        await auth.confirm_totp_enrolment(
            db, user=tech, code=sec.totp_code_at(secret, step), actor=auth.actor_for(tech)
        )
        user = await service.create_user(
            db, organisation=org, email="user@bench.test", display_name="Bench User",
            role=Role.END_USER, password=PASSWORD, actor=_system(org.id),
            skills=[], working_hours={}, timezone="UTC",
        )  # fmt: skip
        token, _ = await auth.issue_token(
            db, user=tech, kind="login", name="bench", ttl=timedelta(hours=2),
            mfa_verified=True, actor=auth.actor_for(tech),
        )  # fmt: skip
        first = None
        for index in range(tickets):
            ticket = await ticket_service.open_ticket(
                db, title=f"Bench ticket {index}", description="Opened by bench_web.py",
                category=CATEGORIES[index % len(CATEGORIES)],
                priority=PRIORITIES[index % len(PRIORITIES)], actor=auth.actor_for(user),
            )  # fmt: skip
            first = first or ticket
        assert first is not None
        await recordings.set_auditor_key(
            db, organisation_id=org.id, public_key=X25519PrivateKey.generate().public_key(),
            actor=_system(org.id),
        )  # fmt: skip
        return Setup(
            token,
            secret,
            str(first.id),
            int(first.number),
            data_dir,
            database_url,
            prepared.signing_key.public_key(),
        )


def _totp_next(secret: str) -> str:
    """The next step's code (within the server's one-step window): the current step's may be
    the one the enrolment just used, and a used step never matches again."""
    from auxilio.server.identity import secrets as sec

    return sec.totp_code_at(secret, int(time.time()) // sec.TOTP_PERIOD + 1)


async def web_login(base: str, setup: Setup) -> str:
    """The session cookie, obtained as the login form does: the pre-session cookie and the
    CSRF token of ``GET /login``, then ``POST /login`` with the password and a TOTP code."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        page = await client.get("/login")
        match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
        if match is None:
            raise RuntimeError("no CSRF token on /login")
        answer = await client.post("/login", data={
            "email": TECH_EMAIL, "password": PASSWORD, "organisation": ORG,
            "code": _totp_next(setup.totp_secret), "csrf_token": match.group(1), "next": "",
        })  # fmt: skip
        cookie = client.cookies.get("auxilio_session")
        if answer.status_code >= 400 or not cookie:
            raise RuntimeError(f"login refused: {answer.status_code} {answer.text[:300]}")
        return cookie


# -- statistics --------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(samples: list[float], unit: str = "ms") -> dict[str, Any]:
    return {
        "samples": len(samples),
        f"p50_{unit}": round(statistics.median(samples), 3),
        f"p99_{unit}": round(percentile(samples, 0.99), 3),
        f"mean_{unit}": round(statistics.fmean(samples), 3),
    }


# -- (1) the console queue against /healthz ----------------------------------------------------


async def _timed_gets(
    client: httpx.AsyncClient, path: str, count: int, check: Callable[[httpx.Response], None]
) -> list[float]:
    samples = []
    for _ in range(count):
        started_at = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - started_at) * 1000)
        check(response)
    return samples


async def console_render(base: str, cookie: str, requests: int) -> dict[str, Any]:
    def queue_ok(response: httpx.Response) -> None:
        if response.status_code != 200 or 'id="queue-count"' not in response.text:
            raise RuntimeError(f"GET /console: {response.status_code} {response.text[:300]}")

    def health_ok(response: httpx.Response) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"GET /healthz: {response.status_code}")

    cookies = {"auxilio_session": cookie}
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=60) as client:
        first = await client.get("/console")
        queue_ok(first)
        count = re.search(r'id="queue-count"[^>]*>([^<]+)<', first.text)
        shown = first.text.count("<tr data-ticket=")
        await _timed_gets(client, "/console", 20, queue_ok)  # warm-up
        await _timed_gets(client, "/healthz", 20, health_ok)
        # Alternated halves: a drift of the shared machine falls on both alike.
        queue, health = [], []
        for _ in range(2):
            queue += await _timed_gets(client, "/console", requests // 2, queue_ok)
            health += await _timed_gets(client, "/healthz", requests // 2, health_ok)
    console, healthz = summary(queue), summary(health)
    return {
        "tickets_in_organisation": TICKETS,
        "queue_count_text": count.group(1).strip() if count else None,
        "rows_rendered": shown,
        "page_bytes": len(first.content),
        "console": console,
        "healthz": healthz,
        "p50_ratio_to_healthz": round(console["p50_ms"] / healthz["p50_ms"], 1),
        "p99_ratio_to_healthz": round(console["p99_ms"] / healthz["p99_ms"], 1),
    }


# -- (2) keystroke round trips -----------------------------------------------------------------


class Agent:
    """``auxilio agent join CODE --terminal`` on a pseudo-terminal, saying yes to each prompt;
    a thread keeps reading its output so the agent never blocks on a full terminal."""

    def __init__(self, server: str, code: str, state_dir: Path) -> None:
        import pexpect

        auxilio = VENV_BIN / "auxilio"
        command = [str(auxilio)] if auxilio.exists() else [sys.executable, "-m", "auxilio"]
        self.child = pexpect.spawn(
            command[0],
            [*command[1:], "agent", "join", code, "--server", server,
             "--state-dir", str(state_dir), "--terminal"],
            encoding="utf-8", timeout=60, dimensions=(50, 160),
        )  # fmt: skip
        self._drain: threading.Thread | None = None

    def consent(self, prompts: int = 2) -> None:
        import pexpect

        for _ in range(prompts):  # one question per capability: chat, terminal
            self.child.expect(r"Allow \w+\? \[y/n\]")
            self.child.sendline("y")

        def drain() -> None:
            with contextlib.suppress(Exception):
                self.child.expect(pexpect.EOF, timeout=None)

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()

    def close(self) -> None:
        self.child.terminate(force=True)
        self.child.close()


BROWSER_LOOP = """
async ({count, warmup, letters}) => {
  const panel = window.auxilioLiveSession.terminal;
  const original = panel.output.bind(panel);
  const decoder = new TextDecoder();
  let waiting = null;
  panel.output = (data) => {
    original(data);
    if (!waiting) return;
    const text = typeof data === "string" ? data : decoder.decode(data);
    if (text.includes(waiting.ch)) {
      const done = waiting;
      waiting = null;
      done.resolve(performance.now());
    }
  };
  const viaXterm = typeof panel.term.terminal.input === "function";
  const type = (ch) => {
    if (viaXterm) panel.term.terminal.input(ch, true);  // onData, as a key press
    else panel.input(new TextEncoder().encode(ch));
  };
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const samples = [];
  try {
    for (let i = 0; i < warmup + count; i++) {
      if (i > 0 && i % 40 === 0) {  // clear the line (Ctrl-U) now and then, untimed
        type("\\u0015");
        await pause(150);
      }
      const ch = letters[i % letters.length];
      const echoed = new Promise((resolve, reject) => {
        waiting = {ch, resolve};
        setTimeout(() => reject(new Error("no echo of " + ch)), 10000);
      });
      const started = performance.now();
      type(ch);
      const ended = await echoed;
      if (i >= warmup) samples.push(ended - started);
    }
  } finally {
    panel.output = original;
  }
  const path = viaXterm ? "Terminal.input (xterm onData)" : "TerminalPanel.input";
  return {samples, path};
}
"""


async def browser_round_trips(
    base: str, cookie: str, setup: Setup, state_dir: Path, count: int, warmup: int
) -> dict[str, Any]:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = await browser.new_context(base_url=base, locale="en-GB", timezone_id="UTC")
            await context.add_cookies([{"name": "auxilio_session", "value": cookie, "url": base}])
            page = await context.new_page()
            await page.goto(f"/console/tickets/{setup.ticket_number}")
            await page.get_by_label("Terminal", exact=True).check()
            await page.get_by_label("Terminal shell").select_option("bash")
            await page.get_by_role("button", name="Start the session").click()
            code_element = page.locator("#start-join-code")
            await expect(code_element).to_have_text(re.compile(r"^[A-Z0-9-]{11}$"))
            code = await code_element.inner_text()
            await page.get_by_role("link", name="Open the live session").click()
            await expect(page.locator("#session-state")).to_contain_text(
                "Waiting for the person to join", timeout=30_000
            )
            agent = Agent(base, code, state_dir)
            try:
                await asyncio.to_thread(agent.consent)
                await expect(page.locator("#session-state")).to_have_text(
                    "Active, end-to-end encrypted", timeout=30_000
                )
                await expect(page.locator("#terminal")).to_contain_text(PROMPT, timeout=20_000)
                await asyncio.sleep(1.0)  # the prompt and its start-up output settle
                measured = await page.evaluate(
                    BROWSER_LOOP, {"count": count, "warmup": warmup, "letters": LETTERS}
                )
            finally:
                agent.close()
        finally:
            await browser.close()
    return {
        "client": "chromium live page (xterm.js, WebCrypto E2E)",
        "input_path": measured["path"],
        "timer": "performance.now()",
        **summary(measured["samples"]),
    }


class _EchoOutput:
    """A ``SessionOutput`` that wakes the timing loop when the awaited character arrives."""

    def __init__(self) -> None:
        self.waiting: tuple[str, asyncio.Future[float]] | None = None
        self.seen = ""

    def term(self, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        self.seen = (self.seen + text)[-4000:]
        if self.waiting is not None and self.waiting[0] in text:
            _, future = self.waiting
            self.waiting = None
            if not future.done():
                future.set_result(time.perf_counter())

    def state(self, text: str) -> None: ...
    def chat(self, text: str) -> None: ...
    def flush_term(self) -> None: ...
    def info(self, text: str) -> None: ...
    def error(self, text: str) -> None:
        print(f"cli client: {text}", file=sys.stderr)


async def cli_round_trips(
    base: str, setup: Setup, state_dir: Path, count: int, warmup: int
) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from auxilio.client.api import ApiClient
    from auxilio.client.session import TechnicianSession
    from auxilio.crypto.keys import encode_public_key

    output = _EchoOutput()
    samples: list[float] = []
    agents: list[Agent] = []
    async with ApiClient(base, setup.token) as api:
        key = X25519PrivateKey.generate()
        answer = await api.request_support_session(
            ticket_id=setup.ticket_id, mode="attended", capabilities=["chat", "terminal"],
            technician_e2e_key=encode_public_key(key.public_key()), record=True,
            terminal_shell="bash",
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        joining: list[asyncio.Task[None]] = []

        def attached() -> None:
            # The join code works only while the technician is attached: start the agent now.
            agent = Agent(base, str(answer["join_code"]), state_dir)
            agents.append(agent)
            joining.append(loop.create_task(asyncio.to_thread(agent.consent)))

        async def settle(seconds: float) -> None:
            seen = output.seen
            while True:
                await asyncio.sleep(seconds)
                if output.seen == seen:
                    return
                seen = output.seen

        async def driver(session: TechnicianSession) -> None:
            await joining[0]
            await session.open_terminal(80, 24)
            for _ in range(200):
                if PROMPT.search(output.seen):
                    break
                await asyncio.sleep(0.1)
            await settle(1.0)
            for i in range(warmup + count):
                if i > 0 and i % 40 == 0:
                    await session.terminal_input(b"\x15")
                    await asyncio.sleep(0.15)
                ch = LETTERS[i % len(LETTERS)]
                future: asyncio.Future[float] = loop.create_future()
                output.waiting = (ch, future)
                started_at = time.perf_counter()
                await session.terminal_input(ch.encode())
                ended = await asyncio.wait_for(future, 10)
                if i >= warmup:
                    samples.append((ended - started_at) * 1000)
            await session.end(wait=False)

        session = TechnicianSession(
            api=api, token=setup.token, support_session_id=str(answer["id"]),
            technician_key=key, server_key=setup.server_key, output=output,
            on_attached=attached,
        )  # fmt: skip
        try:
            await asyncio.wait_for(session.run(driver), 120 + count)
        finally:
            for agent in agents:
                agent.close()
    if len(samples) < count:
        raise RuntimeError(f"the CLI session ended after {len(samples)} of {count} keystrokes")
    return {
        "client": "auxilio.client.session.TechnicianSession (Python)",
        "timer": "time.perf_counter()",
        **summary(samples),
    }


# -- the run -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(tickets: int) -> AsyncIterator[tuple[str, Setup]]:
    with tempfile.TemporaryDirectory(prefix="auxilio-bench-web-") as tmp:
        data_dir = Path(tmp) / "data"
        database_url = f"sqlite+aiosqlite:///{data_dir}/auxilio.db"
        setup = await _set_up(data_dir, database_url, tickets)
        port = free_port()
        auxilio = VENV_BIN / "auxilio"
        command = [
            str(auxilio), "serve", "--data-dir", str(data_dir), "--database-url", database_url,
            "--port", str(port), "--host", "127.0.0.1",
        ]  # fmt: skip
        with started(command, port):
            base = f"http://127.0.0.1:{port}"
            async with asyncio.timeout(30), httpx.AsyncClient(base_url=base) as client:
                while True:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
            yield base, setup


async def _guarded(run: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    try:
        return await run()
    except Exception as exc:  # one broken case must not hide the others' figures
        return {"error": f"{type(exc).__name__}: {exc}"}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    config = tempfile.TemporaryDirectory(prefix="auxilio-bench-config-")
    os.environ["AUXILIO_CONFIG_DIR"] = config.name  # the agents and the client inherit it
    async with serving(TICKETS) as (base, setup):
        cookie = await web_login(base, setup)
        if "console" in args.cases:
            results["console_render"] = await _guarded(
                lambda: console_render(base, cookie, args.requests)
            )
        if "terminal" in args.cases:
            with tempfile.TemporaryDirectory(prefix="auxilio-bench-agent-") as state:
                browser = await _guarded(lambda: browser_round_trips(
                    base, cookie, setup, Path(state) / "browser", args.keystrokes, args.warmup
                ))  # fmt: skip
                cli = await _guarded(lambda: cli_round_trips(
                    base, setup, Path(state) / "cli", args.keystrokes, args.warmup
                ))  # fmt: skip
            terminal: dict[str, Any] = {"browser": browser, "cli": cli}
            if "error" not in browser and "error" not in cli:
                terminal["p50_ratio_browser_to_cli"] = round(browser["p50_ms"] / cli["p50_ms"], 2)
            results["keystroke_round_trip"] = terminal
    config.cleanup()
    return {
        "benchmark": "web",
        "database": "sqlite",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "requests": args.requests,
        "keystrokes": args.keystrokes,
        "results": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300, help="GETs per page, sequential")
    parser.add_argument("--keystrokes", type=int, default=200, help="timed keystrokes per client")
    parser.add_argument("--warmup", type=int, default=10, help="untimed keystrokes first")
    parser.add_argument("--cases", nargs="*", default=["console", "terminal"])
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
