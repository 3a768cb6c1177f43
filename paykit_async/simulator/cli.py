"""The ``simulator`` click group; the main ``paykit`` command attaches it as ``paykit simulator``."""

from __future__ import annotations

import contextlib
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import click

from ..errors import ValidationError
from .config import DEMO_EFTPAY, DEMO_PAYJS, DEMO_WECHATPAY, DEMO_WECHATPAY_V3, SimulatorConfig, load_config
from .core import Simulator
from .sample_config import SAMPLE_CONFIG
from .serve import TLSMaterial, bind_socket, build_server, ensure_tls_material

__all__ = ["SimulatorCommandError", "simulator"]


class SimulatorCommandError(click.ClickException):
    """A problem the operator can fix (config, TLS files, busy port): one line, exit status 2."""

    exit_code = 2


@click.group("simulator")
def simulator() -> None:
    """Run the local PAYJS / WeChat Pay v2 and v3 / eftPay simulator."""


@simulator.command("sample-config")
def sample_config_command() -> None:
    """Print a configuration file with every key at its default (for serve --config)."""
    click.echo(SAMPLE_CONFIG, nl=False)


@simulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, shown in the banner).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file with [wechatpay], [payjs], [eftpay], [simulator] and [faults] sections "
    "(paykit simulator sample-config prints one with every key).",
)
@click.option("--auto-orders", is_flag=True, help="Create unknown orders on first sight as paid.")
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve HTTPS with client certificates from this directory (created when missing).",
)
@click.option(
    "--mtls-all",
    is_flag=True,
    help="With --tls-dir: demand a client certificate on every connection, not only for WeChat refunds.",
)
@click.option(
    "--v3-keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the WeChat Pay v3 merchant key and WeChat Pay public key (PEM files) into this directory.",
)
def serve_command(
    host: str,
    port: int,
    config_file: Path | None,
    auto_orders: bool,
    tls_dir: Path | None,
    mtls_all: bool,
    v3_keys_dir: Path | None = None,
) -> None:
    """Serve the simulator until Ctrl-C.

    Everything that can fail — the config file, the TLS files, the port — is checked before the
    banner: a problem is one line on stderr and exit status 2, and a banner means it is serving.
    """
    try:
        config = load_config(config_file) if config_file else SimulatorConfig()
        if auto_orders:
            config = attrs.evolve(config, auto_orders=True)
    except ValidationError as exc:
        raise SimulatorCommandError(exc.message.removeprefix("config: ")) from None
    try:
        import uvicorn  # noqa: F401 - checked here for a clear message

        tls = None
        if tls_dir is not None:
            tls = ensure_tls_material(tls_dir, p12_password=config.wechatpay.mch_id)
    except ImportError as exc:
        raise SimulatorCommandError(
            f'the simulator server needs {exc.name}: pip install "paykit_async[simulator]"'
        ) from None
    except (OSError, ValueError) as exc:
        raise SimulatorCommandError(f"cannot prepare the TLS files in {tls_dir}: {_reason(exc)}") from None
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise SimulatorCommandError(f"cannot listen on {host}:{port}: {_reason(exc)}") from None
    with sock:
        simulator = Simulator(config)
        server = build_server(
            simulator,
            host=host,
            port=port,
            tls=tls,
            client_certs="all" if mtls_all else "wechatpay-refunds",
            log_level="warning",
        )
        try:
            server.config.load()  # reads the TLS files: a bad one fails here, not after the banner
        except (OSError, ssl.SSLError) as exc:
            raise SimulatorCommandError(f"cannot use the TLS files in {tls_dir}: {_reason(exc)}") from None
        # From the first banner line on, Ctrl-C (or SIGTERM) means "stop", whenever it comes: our
        # handler only asks the server to exit, as uvicorn's own does once it takes over, so a
        # signal during start-up is never lost nor turned into an exception that cancels uvicorn
        # half-started (which could leave it serving). uvicorn re-raises the signal at the end.
        with _stop_on_signals(server), contextlib.suppress(KeyboardInterrupt):
            _banner(config, host, sock.getsockname()[1], tls, mtls_all)
            _v3_banner(simulator, v3_keys_dir)
            server.run(sockets=[sock])
    click.echo("simulator stopped")


@contextlib.contextmanager
def _stop_on_signals(server: Any) -> Iterator[None]:
    """While in the block, SIGINT and SIGTERM set ``server.should_exit`` (a second SIGINT forces
    the exit), as uvicorn's handlers do; the previous handlers are restored afterwards."""

    def stop(signum: int, _frame: object) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reason(exc: BaseException) -> str:
    """An OS or SSL error as the short reason a person reads (no errno tuple)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _v3_banner(simulator: Simulator, directory: Path | None) -> None:
    merchant = simulator.config.wechatpay_v3
    if directory is None:
        click.echo(
            "  WeChat Pay v3: --v3-keys-dir DIR writes the merchant key and WeChat Pay public key files"
        )
        return
    files = simulator.wechatpay_v3_keys().write(directory)
    click.echo(
        f"  [wechatpay-v3] mchid={merchant.mchid} certificate_serial_no={merchant.certificate_serial_no} "
        f"wechatpay_public_key_id={merchant.wechatpay_public_key_id}"
    )
    click.echo(f"                private_key={files['private_key']}")
    click.echo(f"                wechatpay_public_key={files['wechatpay_public_key']}")
    if merchant.apiv3_key == DEMO_WECHATPAY_V3.apiv3_key:
        click.echo(f"                apiv3_key={merchant.apiv3_key} (SIMULATOR DEMO KEY)")


def _banner(config: SimulatorConfig, host: str, port: int, tls: TLSMaterial | None, mtls_all: bool) -> None:
    scheme = "https" if tls is not None else "http"
    shown_host = f"[{host}]" if ":" in host else host
    root = f"{scheme}://{shown_host}:{port}"
    echo = click.echo
    echo(f"paykit simulator listening on {root}  (Ctrl-C to stop)")
    echo(f"  WeChat Pay v2  base_url={root}/wechatpay")
    echo(f"  WeChat Pay v3  base_url={root}/wechatpay-v3")
    echo(f"  PAYJS          base_url={root}/payjs")
    echo(f"  eftPay         base_url={root}/eftpay")
    if config.uses_demo_credentials:
        echo("Credentials (SIMULATOR DEMO CREDENTIALS — public, accepted only by this simulator):")
        if config.wechatpay.api_key == DEMO_WECHATPAY.api_key:
            w = config.wechatpay
            echo(f"  [wechatpay] appid={w.appid} mch_id={w.mch_id} api_key={w.api_key}")
        if config.payjs.key == DEMO_PAYJS.key:
            echo(f"  [payjs]     mchid={config.payjs.mchid} key={config.payjs.key}")
        if config.eftpay.secret == DEMO_EFTPAY.secret:
            e = config.eftpay
            echo(f"  [eftpay]    user_confirm_key={e.user_confirm_key} secret={e.secret}")
    echo("Merchant credentials from your config file are in use where no demo credentials are shown.")
    if config.auto_orders:
        echo("Auto orders: unknown orders are created as paid on first sight.")
    if tls is not None:
        who = "every client" if mtls_all else "WeChat Pay refunds"
        echo(f"TLS: trust ca_file={tls.ca_file}")
        echo(f"     {who} must present cert={tls.client_cert_file} key={tls.client_key_file}")
        echo(f"     or the same as p12={tls.client_p12_file} (password: the WeChat Pay mch_id)")
