"""README code stays true: every ```python block of README.md runs as written.

How the blocks are run — what a reader does after "Trying the examples":

- Each block is saved as its own script in one working directory and run with this interpreter,
  in README order. Found automatically: a new block is run without touching this file.
- A simulator is served over HTTPS on a free port with ``--auto-orders`` and the TLS files of
  ``paykit simulator serve --tls-dir simtls`` in ``simtls/`` of the working directory (CA, PEM
  files and ``apiclient_cert.p12`` whose password is the demo ``mch_id``). Its root URL is in
  ``PAYKIT_SIMULATOR_URL``; blocks read it with the default ``https://127.0.0.1:8000``. Blocks
  that need no served simulator run one in process instead.
- A block whose first line is ``# test_NAME.py ...`` is a pytest module: it is saved under that
  name and run with ``python -m pytest``.
- A block right after ``<!-- readme-test: not run: REASON -->`` is only parsed; it shows up as a
  skipped test with its reason. Keep these to the bare minimum (today: none).
- Nothing beyond this machine is reachable: a ``sitecustomize`` refuses to resolve any name but
  the loopback ones, so a block pointed at a real provider fails instead of going online.

A block passes when it exits 0 without a traceback and no request it made was refused by the
simulator as misconfigured (bad signature, no certificate, unknown merchant, bad parameters).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from paykit_async.simulator import Simulator, SimulatorConfig
from paykit_async.simulator.serve import ensure_tls_material, serve_in_thread

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")

#: Simulator outcomes that mean the example itself is wrong (not a business refusal it handles).
MISCONFIGURED = frozenset(
    {
        "SIGNERROR",
        "SIGN_ERROR",
        "NOCERT",
        "BAD_MCHID",
        "MCHID_NOT_EXIST",
        "MERCHANT_ERROR",
        "PARAM_ERROR",
        "XML_FORMAT_ERROR",
        "BAD_FORM",
        "REQUIRE_POST_METHOD",
        "TIME_ERROR",
    }
)
NOT_RUN = re.compile(r"<!--\s*readme-test:\s*not run:\s*(?P<reason>[^>]*?)\s*-->\s*\n\s*\Z")
PYTEST_MODULE = re.compile(r"\A#\s*(?P<name>test_\w+\.py)\b")

#: Refuses every name but the loopback ones, in each block's interpreter.
NO_NETWORK = textwrap.dedent(
    """
    import ipaddress
    import socket

    _getaddrinfo = socket.getaddrinfo
    _LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


    def _loopback(host):
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if host is None or host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            return False


    def getaddrinfo(host, *args, **kwargs):
        if not _loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"README test: no network beyond this machine ({host})")
        return _getaddrinfo(host, *args, **kwargs)


    socket.getaddrinfo = getaddrinfo
    """
)


@attrs.frozen(kw_only=True)
class Block:
    """One ```python block: where it is, its code, and how it is run."""

    line: int
    heading: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")[:40]
        return f"L{self.line}-{slug}"

    @property
    def pytest_module(self) -> str | None:
        match = PYTEST_MODULE.match(self.code)
        return match.group("name") if match else None


def find_blocks(text: str) -> list[Block]:
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        before = text[: match.start()]
        headings = re.findall(r"^#+ (.+)$", before, flags=re.MULTILINE)
        not_run = NOT_RUN.search(before)
        blocks.append(
            Block(
                line=before.count("\n") + 1,
                heading=headings[-1] if headings else "top",
                code=match.group(1),
                not_run=not_run.group("reason") if not_run else None,
            )
        )
    return blocks


BLOCKS = find_blocks(TEXT)


@attrs.frozen(kw_only=True)
class Served:
    """The simulator the blocks talk to, and the working directory they run in."""

    simulator: Simulator
    root: str
    workdir: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("readme")
    guard = tmp_path_factory.mktemp("readme-guard")
    (guard / "sitecustomize.py").write_text(NO_NETWORK, encoding="utf-8")
    tls = ensure_tls_material(workdir / "simtls")  # as `paykit simulator serve --tls-dir simtls`
    # As `paykit simulator serve --auto-orders`, but its notification sender never runs: a block's
    # notify_url may name a real host. Examples that show notifications deliver them in process.
    simulator = Simulator(SimulatorConfig(auto_orders=True, notify_poll_interval=3600.0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYKIT_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(guard), env.get("PYTHONPATH")]))
    with serve_in_thread(simulator, tls=tls) as root:
        env["PAYKIT_SIMULATOR_URL"] = root
        yield Served(simulator=simulator, root=root, workdir=workdir, env=env)
    assert simulator.deliveries() == () or all(not d.attempts for d in simulator.deliveries())


def run_block(block: Block, served: Served) -> subprocess.CompletedProcess[str]:
    name = block.pytest_module or f"readme_block_{block.line}.py"
    script = served.workdir / name
    script.write_text(block.code, encoding="utf-8")
    command = [sys.executable, str(script)]
    if block.pytest_module:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    return subprocess.run(
        command, cwd=served.workdir, env=served.env, capture_output=True, text=True, timeout=120, check=False
    )


def test_readme_has_an_example_per_provider_and_the_two_commands() -> None:
    assert 'pip install ".[cli]" && paykit demo' in TEXT
    assert 'pip install -e ".[test]" && python -m pytest' in TEXT
    for name in ("WeChatPayClient(", "PayJSClient(", "EftPayClient("):
        assert any(name in block.code for block in BLOCKS), name


def test_every_python_block_parses() -> None:
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        ast.parse(block.code, filename=block.id)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_the_block_runs_as_written(block: Block, served: Served) -> None:
    if block.not_run is not None:
        pytest.skip(f"README block {block.id} is marked not run: {block.not_run}")
    seen = len(served.simulator.requests())
    done = run_block(block, served)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    refused = [r for r in served.simulator.requests()[seen:] if r.outcome in MISCONFIGURED]
    assert not refused, refused


#: What some blocks say they print (a marker found in the block → a line its output must contain).
PROMISED_OUTPUT = {
    "Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))\n    async with WeChatPayClient(\n": (
        "SUCCESS\n0\n"
    ),
    "print(refunds)  # {'R2001': 'SUCCESS'}": "{'R2001': 'SUCCESS'}\n",
    "print(on_payment_notification(notification.body))": "body=b'success')\n",
    "again.out_refund_no == result.out_refund_no, again.replayed)": " True True\n",
    "print(reply.status_code, reply.text, handled)": (
        "200 success ['paid P1001 300', 'refund R1001 SUCCESS']\n"
    ),
    "print(span.name, dict(span.attributes or {}))": "'paykit.outcome': 'success', 'paykit.attempts': 2}\n",
}


@pytest.mark.parametrize("marker", PROMISED_OUTPUT)
def test_blocks_print_what_they_promise(marker: str, served: Served) -> None:
    (block,) = [block for block in BLOCKS if marker in block.code]
    done = run_block(block, served)
    assert done.returncode == 0, done.stderr
    assert PROMISED_OUTPUT[marker] in done.stdout


def test_blocks_cannot_reach_beyond_this_machine(served: Served) -> None:
    probe = Block(
        line=0,
        heading="probe",
        code=(
            "import httpx\n"
            "try:\n"
            "    httpx.get('https://api.mch.weixin.qq.com/', timeout=5)\n"
            "except httpx.ConnectError as error:\n"
            "    print('refused:', error)\n"
        ),
        not_run=None,
    )
    done = run_block(probe, served)
    assert done.returncode == 0, done.stderr
    assert "README test: no network beyond this machine (api.mch.weixin.qq.com)" in done.stdout


def test_blocks_are_found_with_their_markers() -> None:
    text = (
        "# Title\n\n```python\nprint(1)\n```\n\n## Later\n\n<!-- readme-test: not run: needs a bank -->\n"
        "```python\nprint(2)\n```\n\n```python\n# test_x.py — run with pytest\n```\n"
    )
    first, second, third = find_blocks(text)
    assert (first.line, first.heading, first.not_run, first.pytest_module) == (3, "Title", None, None)
    assert (second.heading, second.not_run) == ("Later", "needs a bank")
    assert third.not_run is None
    assert third.pytest_module == "test_x.py"
