"""``paykit simulator serve`` and ``sample-config``: one-line errors, bind before the banner, the .p12."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from paykit_async import ClientCertificate, WeChatPayClient
from paykit_async.simulator import DEMO_WECHATPAY, SimulatorConfig, load_config
from paykit_async.simulator.config import CONFIG_SECTIONS
from paykit_async.simulator.sample_config import SAMPLE_CONFIG
from paykit_async.simulator.serve import ensure_tls_material

from ..cli.helpers import paykit_command, run_paykit
from ..cli.test_errors import assert_one_error_line


def test_sample_config_is_every_key_at_its_default(tmp_path: Path) -> None:
    done = run_paykit("simulator", "sample-config")
    assert done.returncode == 0, done.stderr
    assert done.stdout == SAMPLE_CONFIG
    path = tmp_path / "sim.toml"
    path.write_text(done.stdout, encoding="utf-8")
    assert load_config(path) == SimulatorConfig()
    # Complete: every key of every section appears (the fault rule's keys as a commented example).
    for section, keys in CONFIG_SECTIONS.items():
        shown = "[[faults.rules]]" if section == "faults.rules" else f"[{section}]"
        assert shown in SAMPLE_CONFIG, shown
        for key in keys if section != "faults" else ("seed",):  # rules: the [[faults.rules]] tables
            assert re.search(rf"^(# )?{key} = ", SAMPLE_CONFIG, flags=re.MULTILINE), (section, key)


def test_the_readme_lists_every_simulator_key() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for section, keys in CONFIG_SECTIONS.items():
        for key in keys if section != "faults" else ("seed",):  # rules: the [[faults.rules]] tables
            assert f"`{key}`" in readme, (section, key)
    assert "`[[faults.rules]]`" in readme
    assert "paykit simulator sample-config" in readme


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ("[simulator]\nbogus = 1\n", ["unknown key(s) bogus in [simulator]; expected auto_orders"]),
        ("[simulator\n", ["is not valid TOML"]),
        ("[wechat]\n", ["unknown section(s) [wechat]"]),
        ('[simulator]\nauto_orders = "yes"\n', ["[simulator] auto_orders must be true or false"]),
        ("[simulator]\ncompletion_delay = -1\n", ["completion_delay: must not be negative"]),
        ('[payjs]\nmchid = "1"\n', ["[payjs] is missing key"]),
        ("[[faults.rules]]\ndrop_after = 2\n", ["drop_after: must be between 0 and 1"]),
        ("[faults]\n[[faults.rules]]\nspeed = 1\n", ["unknown key(s) speed in [[faults.rules]]"]),
    ],
)
def test_a_bad_config_is_one_line_and_no_banner(tmp_path: Path, content: str, parts: list[str]) -> None:
    config = tmp_path / "sim.toml"
    config.write_text(content, encoding="utf-8")
    done = run_paykit("simulator", "serve", "--port", "0", "--config", config, timeout=60)
    assert_one_error_line(done, "sim.toml", *parts)
    assert done.stdout == ""


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    done = run_paykit("simulator", "serve", "--port", "0", "--config", tmp_path / "nope.toml", timeout=60)
    assert_one_error_line(done, "cannot read", "nope.toml", "No such file or directory")


def test_a_busy_port_is_one_line_before_any_banner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_paykit("simulator", "serve", "--port", str(port), timeout=60)
    assert_one_error_line(done, f"cannot listen on 127.0.0.1:{port}: address already in use")
    # Nothing announced: no "listening", no credentials.
    assert done.stdout == ""
    assert DEMO_WECHATPAY.api_key not in done.stderr


@contextlib.contextmanager
def served(
    *args: str | os.PathLike[str], cwd: Path, last: str = "Merchant credentials"
) -> Iterator[tuple[str, str]]:
    """``paykit simulator serve --port 0 ARGS``: its root URL and its banner (up to the line
    starting with ``last``)."""
    process = subprocess.Popen(
        paykit_command("simulator", "serve", "--port", "0", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
    )
    assert process.stdout is not None
    try:
        banner = [process.stdout.readline()]
        match = re.match(r"paykit simulator listening on (\S+)", banner[0])
        assert match, banner[0] + (process.stdout.read() if process.poll() is not None else "")
        while not banner[-1].lstrip().startswith(last):
            assert banner[-1], "".join(banner)
            banner.append(process.stdout.readline())
        yield match.group(1), "".join(banner)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_port_0_announces_the_bound_port_and_serves_at_once(tmp_path: Path) -> None:
    with served(cwd=tmp_path) as (root, banner):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", root)
        assert not root.endswith(":0")
        # The banner came after binding: the first request needs no retry loop.
        response = httpx.post(f"{root}/payjs/api/check", content=b"mchid=1&sign=x", timeout=10)
        assert response.status_code == 200
        assert f"base_url={root}/wechatpay" in banner


def test_tls_dir_writes_a_p12_whose_password_is_the_mch_id(tmp_path: Path) -> None:
    # An existing directory without the .p12 (made by an earlier version) gets one, same CA.
    material = ensure_tls_material(tmp_path / "simtls")
    os.unlink(str(material.client_p12_file))
    ca_before = Path(material.ca_file).read_bytes()
    with served("--auto-orders", "--tls-dir", "simtls", cwd=tmp_path, last="or the same as p12") as (
        root,
        banner,
    ):
        p12 = tmp_path / "simtls" / "apiclient_cert.p12"
        assert Path(material.ca_file).read_bytes() == ca_before
        assert "p12=simtls/apiclient_cert.p12 (password: the WeChat Pay mch_id)" in banner
        assert (p12.stat().st_mode & 0o777) == 0o600
        cert = ClientCertificate.from_pkcs12(p12, DEMO_WECHATPAY.mch_id)

        async def refund() -> int:
            async with WeChatPayClient(
                DEMO_WECHATPAY.appid,
                DEMO_WECHATPAY.mch_id,
                DEMO_WECHATPAY.api_key,
                cert=cert,
                base_url=f"{root}/wechatpay",
                ca_file=material.ca_file,
            ) as client:
                result = await client.refund(out_trade_no="T1", total_fee=100, refund_fee=100)
                return result.refund_fee

        assert anyio.run(refund) == 100


def test_a_p12_under_another_password_is_rewritten(tmp_path: Path) -> None:
    first = ensure_tls_material(tmp_path, p12_password=DEMO_WECHATPAY.mch_id)
    again = ensure_tls_material(tmp_path, p12_password="1230000109")
    assert again.client_p12_file == first.client_p12_file
    assert again.ca_file == first.ca_file
    ClientCertificate.from_pkcs12(str(again.client_p12_file), "1230000109")
    assert "1230000109" not in repr(again)


def test_serve_takes_its_p12_password_from_the_configured_mch_id(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text('[wechatpay]\nappid = "wx1"\nmch_id = 1230000109\napi_key = "k"\n', encoding="utf-8")
    with served("--config", config, "--tls-dir", tmp_path / "tls", cwd=tmp_path):
        ClientCertificate.from_pkcs12(tmp_path / "tls" / "apiclient_cert.p12", "1230000109")


def test_the_serve_process_exits_cleanly_on_ctrl_c() -> None:
    process = subprocess.Popen(
        paykit_command("simulator", "serve", "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("paykit simulator listening on")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "simulator stopped" in out
    assert "Traceback" not in err


def test_a_signal_before_uvicorn_takes_over_asks_the_server_to_stop() -> None:
    # The window between the banner and uvicorn installing its own handlers: a Ctrl-C there must
    # neither be lost nor raise KeyboardInterrupt into uvicorn's start-up (which could hang it).
    import types

    from paykit_async.simulator.cli import _stop_on_signals

    server = types.SimpleNamespace(should_exit=False, force_exit=False)
    before = signal.getsignal(signal.SIGINT)
    with _stop_on_signals(server):
        signal.raise_signal(signal.SIGINT)
        assert server.should_exit
        assert not server.force_exit
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C forces the exit, as in uvicorn
        assert server.force_exit
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is before
