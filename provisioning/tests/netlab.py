"""Private network namespaces for DHCP/TFTP tests.

``NetLab`` makes a server namespace and a client namespace joined by a veth pair, runs daemons in
the server namespace and ``probe.py`` (a firmware-like DHCP/TFTP client) in the client namespace.
Nothing is ever started, bound or sent outside the two namespaces, and tearing the lab down stops
every process it started and deletes both namespaces, also when the test failed.

    def test_something():
        require_root_netns()
        with NetLab(client_cidr="192.0.2.50/24") as lab:
            lab.start_dnsmasq([...])
            reply = lab.probe_dhcp(mac="dc:a6:32:01:02:03", profile="pi4", request=True)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import secrets
import shutil
import signal as signals
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from provisioning.lab.netns import SBIN_PATH, netns_add, netns_delete, netns_names
from provisioning.lab.netns import ip_binary as _ip_binary
from tests.tools import need, need_program

PROBE = Path(__file__).resolve().parents[1] / "lab" / "probe.py"
STOP_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 15.0
__all__ = ["PROBE", "SBIN_PATH", "NetLab", "netlab", "netns_names", "require_root_netns"]


@functools.cache
def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "network-namespace tests need root"
    ip = _ip_binary()
    if ip is None:
        return "ip is not installed (apt-get install iproute2)"
    # Only creating one proves it: containers without CAP_SYS_ADMIN have `ip` but cannot do this.
    name = f"pinet-{secrets.token_hex(4)}-chk"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns does not work here: {made.stderr.strip()}"
    subprocess.run([ip, "netns", "delete", name], capture_output=True)
    return None


def require_root_netns() -> None:
    """Skip (or fail with PINET_REQUIRE_TOOLS=1) unless this process may create network namespaces."""
    problem = _netns_problem()
    need(problem is None, problem or "")


class NetLab:
    """A server and a client namespace joined by one veth pair; a context manager."""

    def __init__(
        self,
        *,
        server_cidr: str = "192.0.2.1/24",
        client_cidr: str | None = None,
        client_mac: str | None = None,
        client_extra_cidrs: Sequence[str] = (),
    ):
        self.tag = secrets.token_hex(4)
        self.server_ns = f"pinet-{self.tag}-srv"
        self.client_ns = f"pinet-{self.tag}-cli"
        # Interface names are limited to 15 characters (IFNAMSIZ - 1).
        self.server_if = f"pn{self.tag}s"
        self.client_if = f"pn{self.tag}c"
        self.server_cidr = server_cidr
        self.server_ip = server_cidr.split("/")[0]
        self.client_cidr = client_cidr
        self.client_ip = client_cidr.split("/")[0] if client_cidr else None
        self.client_mac = client_mac
        self.client_extra_cidrs = list(client_extra_cidrs)
        self.workdir: Path | None = None
        self.processes: list[subprocess.Popen] = []
        self._namespaces: list[str] = []
        self._logs: list[Path] = []
        self._ip = _ip_binary() or "ip"

    # --- lifetime -----------------------------------------------------------------------------

    def __enter__(self) -> NetLab:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is not None:
                self.dump_logs()
        finally:
            self.close()
        return False

    def setup(self) -> None:
        # World-readable, because dnsmasq drops root for "nobody" before it serves TFTP files.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pinet-netlab-{self.tag}-"))
        self.workdir.chmod(0o755)
        for ns in (self.server_ns, self.client_ns):
            self._add_netns(ns)
        # Create the pair directly inside the namespaces: the host namespace never sees it.
        self._run_ip(
            "link", "add", self.server_if, "netns", self.server_ns,
            "type", "veth", "peer", "name", self.client_if, "netns", self.client_ns,
        )  # fmt: skip
        for ns in (self.server_ns, self.client_ns):
            self._run_ip("-n", ns, "link", "set", "lo", "up")
        self._run_ip("-n", self.server_ns, "addr", "add", self.server_cidr, "dev", self.server_if)
        if self.client_mac:
            self._run_ip("-n", self.client_ns, "link", "set", "dev", self.client_if, "address", self.client_mac)
        else:
            self.client_mac = self._link_info(self.client_ns, self.client_if)["address"]
        for cidr in ([self.client_cidr] if self.client_cidr else []) + self.client_extra_cidrs:
            self._run_ip("-n", self.client_ns, "addr", "add", cidr, "dev", self.client_if)
        self._run_ip("-n", self.server_ns, "link", "set", self.server_if, "up")
        self._run_ip("-n", self.client_ns, "link", "set", self.client_if, "up")

    def close(self) -> None:
        """Stop every started process, then delete both namespaces (and with them the veth pair)."""
        errors: list[str] = []
        for proc in reversed(self.processes):
            try:
                self.stop(proc)
            except Exception as exc:  # keep tearing down; report at the end
                errors.append(f"stopping pid {proc.pid}: {exc}")
        for ns in reversed(self._namespaces):
            try:
                self._delete_netns(ns)
            except Exception as exc:
                errors.append(f"deleting {ns}: {exc}")
        self._namespaces.clear()
        if self.workdir is not None and not os.environ.get("PINET_KEEP_NETLAB"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise RuntimeError("NetLab teardown: " + "; ".join(errors))

    def _add_netns(self, ns: str) -> None:
        netns_add(ns)
        self._namespaces.append(ns)

    def _delete_netns(self, ns: str) -> None:
        # Everything in these uniquely named namespaces was started by this lab (e.g. a
        # daemon's forked helper), so netns_delete may kill what is left, by pid.
        netns_delete(ns)

    # --- commands and daemons -----------------------------------------------------------------

    def _run_ip(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([self._ip, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
        return done

    def _link_info(self, ns: str, dev: str) -> dict:
        return json.loads(self._run_ip("-n", ns, "-j", "link", "show", "dev", dev).stdout)[0]

    def run_in(self, ns: str, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        """subprocess.run(argv) inside namespace ns (keyword arguments go to subprocess.run)."""
        self._check_ns(ns)
        return subprocess.run([self._ip, "netns", "exec", ns, *map(str, argv)], **kw)

    def start_daemon(
        self, ns: str, argv: Sequence[str], log_path: str | os.PathLike, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Start a long-running process in ns with stdout and stderr appended to log_path.

        The process must stay in the foreground (dnsmasq: -k): `ip netns exec` execs it, so the
        Popen pid is the daemon itself, which is what teardown stops.
        """
        self._check_ns(ns)
        log_path = Path(log_path)
        full_env = {**os.environ, **(env or {})}
        # Never leave a daemon's stdio on a pipe or terminal: dnsmasq dies of SIGHUP once its
        # stdout closes. Its own session keeps a Ctrl-C meant for pytest away from it, too.
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [self._ip, "netns", "exec", ns, *map(str, argv)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
        self.processes.append(proc)
        self._logs.append(log_path)
        return proc

    def signal(self, proc: subprocess.Popen, sig: int) -> None:
        if proc not in self.processes:
            raise ValueError("not a process this lab started")
        if proc.poll() is None:
            proc.send_signal(sig)

    def stop(self, proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL to the process and its session (its pid is the group id)."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signals.SIGKILL)
                proc.kill()
                proc.wait(timeout)
        return proc.returncode

    def _check_ns(self, ns: str) -> None:
        if ns not in self._namespaces:
            raise ValueError(f"{ns!r} is not a namespace of this lab")

    def path(self, name: str) -> Path:
        assert self.workdir is not None, "use the lab inside `with`"
        return self.workdir / name

    def wait_for_text(
        self, path: str | os.PathLike, text: str, timeout: float = READY_TIMEOUT_S, proc: subprocess.Popen | None = None
    ) -> str:
        """Poll a file until it contains text; fail early if proc exits meanwhile."""
        path = Path(path)
        deadline = time.monotonic() + timeout
        content = ""
        while True:
            content = path.read_text(errors="replace") if path.exists() else ""
            if text in content:
                return content
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"pid {proc.pid} exited ({proc.returncode}) before {text!r}:\n{content[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in {path} after {timeout}s:\n{content[-3000:]}")
            time.sleep(0.05)

    def dump_logs(self) -> None:
        """Print the tail of every daemon log to stderr (done automatically when `with` fails)."""
        for log in self._logs:
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace")[-4000:]
                print(f"----- {log} -----\n{tail}", file=sys.stderr)

    # --- dnsmasq and Kea ----------------------------------------------------------------------

    def start_dnsmasq(self, conf_lines: Sequence[str], name: str = "dnsmasq") -> subprocess.Popen:
        """Write conf_lines to <workdir>/<name>.conf and run dnsmasq on it in the server namespace.

        Returns once dnsmasq has logged that it started. Adds a lease file and a log file in the
        work directory unless the lines name their own, so nothing is written outside it.
        """
        binary = need_program("dnsmasq", "dnsmasq-base")
        lines = list(conf_lines)
        keys = {line.split("=", 1)[0].strip() for line in lines}
        if "dhcp-leasefile" not in keys and "leasefile-ro" not in keys:
            lines.append(f"dhcp-leasefile={self.path(name + '.leases')}")
        if "log-facility" not in keys:
            lines.append(f"log-facility={self.path(name + '.log')}")
        facility = next(line.split("=", 1)[1].strip() for line in lines if line.startswith("log-facility="))
        out = self.path(name + ".out")
        # Readiness is read from the log, so it must be a file (or "-": stderr, which goes to out).
        if facility != "-" and not facility.startswith("/"):
            raise ValueError(f"log-facility must be an absolute file path or '-', not {facility!r}")
        log_file = out if facility == "-" else Path(facility)
        conf = self.path(name + ".conf")
        conf.write_text("\n".join(lines) + "\n")
        proc = self.start_daemon(
            self.server_ns,
            # -C: read only this file, not /etc/dnsmasq.conf and its conf-dir.
            [binary, "--keep-in-foreground", f"--conf-file={conf}", f"--pid-file={self.path(name + '.pid')}"],
            out,
        )
        if log_file != out:
            self._logs.append(log_file)
        self.wait_for_text(log_file, "started, version", proc=proc)
        return proc

    def kea_config(self, subnets: list[dict], extra: dict | None = None) -> dict:
        """A minimal {"Dhcp4": ...} serving subnets on the server veth; extra adds or overrides Dhcp4 keys."""
        config = {
            "interfaces-config": {"interfaces": [self.server_if]},
            "lease-database": {
                "type": "memfile",
                "persist": True,
                "name": str(self.path("kea-leases.csv")),
                "lfc-interval": 0,
            },
            "subnet4": subnets,
            "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "INFO"}],
        }
        config.update(extra or {})
        return {"Dhcp4": config}

    def start_kea(self, config: dict, name: str = "kea") -> subprocess.Popen:
        """Run kea-dhcp4 on config ({"Dhcp4": ...}) in the server namespace, after `kea-dhcp4 -t`.

        Kea writes pid and lock files under /run/kea unless told otherwise; both go to the work
        directory here. A missing lease-database is set to a memfile in the work directory.
        """
        binary = need_program("kea-dhcp4", "kea-dhcp4-server")
        config = copy.deepcopy(config)
        dhcp4 = config.setdefault("Dhcp4", {})
        dhcp4.setdefault(
            "lease-database",
            {"type": "memfile", "persist": True, "name": str(self.path(name + "-leases.csv")), "lfc-interval": 0},
        )
        run_dir = self.path(name + "-run")
        run_dir.mkdir(exist_ok=True)
        env = {"KEA_PIDFILE_DIR": str(run_dir), "KEA_LOCKFILE_DIR": str(run_dir)}
        conf = self.path(name + ".json")
        conf.write_text(json.dumps(config, indent=2))
        # Validate inside the namespace: -t fails on interface names the host does not have.
        checked = self.run_in(
            self.server_ns, [binary, "-t", conf], capture_output=True, text=True, env={**os.environ, **env}, timeout=30
        )
        if checked.returncode != 0:
            raise RuntimeError(f"kea-dhcp4 -t {conf} failed:\n{checked.stdout}{checked.stderr}")
        log = self.path(name + ".log")
        proc = self.start_daemon(self.server_ns, [binary, "-c", conf], log, env=env)
        self.wait_for_text(log, "DHCP4_STARTED", proc=proc)
        return proc

    # --- client side --------------------------------------------------------------------------

    def set_client_mac(self, mac: str) -> None:
        self._run_ip("-n", self.client_ns, "link", "set", "dev", self.client_if, "address", mac)
        self.client_mac = mac

    def add_client_address(self, cidr: str) -> None:
        self._run_ip("-n", self.client_ns, "addr", "add", cidr, "dev", self.client_if)

    def add_server_address(self, cidr: str) -> None:
        self._run_ip("-n", self.server_ns, "addr", "add", cidr, "dev", self.server_if)

    def probe(self, command: str, **kwargs: object) -> dict:
        """Run probe.py <command> in the client namespace; keyword foo_bar=V becomes --foo-bar V."""
        # probe.py bounds its own run time; this limit only catches a hung probe.
        limit = float(kwargs.get("timeout") or 10) * 3 + float(kwargs.get("seconds") or 0) + 30
        argv: list[str] = [sys.executable, str(PROBE), command]
        for key, value in kwargs.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not None and value is not False:
                argv += [flag, str(value)]
        done = self.run_in(self.client_ns, argv, capture_output=True, text=True, timeout=limit)
        try:
            result = json.loads(done.stdout)
        except json.JSONDecodeError:
            result = None
        if done.returncode != 0 or not isinstance(result, dict):
            raise RuntimeError(f"probe {command} exited {done.returncode}: {done.stdout}{done.stderr}")
        return result

    def probe_dhcp(self, **kwargs: object) -> dict:
        """probe.py dhcp; iface and mac default to the client veth, server_ip (when relaying) to the server."""
        kwargs.setdefault("iface", self.client_if)
        kwargs.setdefault("mac", self.client_mac)
        kwargs.setdefault("profile", "pi4")
        if kwargs.get("giaddr"):
            kwargs.setdefault("server_ip", self.server_ip)
        return self.probe("dhcp", **kwargs)

    def dhcp_watch(self, **kwargs: object) -> dict:
        kwargs.setdefault("iface", self.client_if)
        kwargs.setdefault("mac", self.client_mac)
        kwargs.setdefault("profile", "pi4")
        return self.probe("dhcp-watch", **kwargs)

    def probe_tftp(self, **kwargs: object) -> dict:
        kwargs.setdefault("server", self.server_ip)
        return self.probe("tftp", **kwargs)


@contextlib.contextmanager
def netlab(**kwargs: object) -> Iterator[NetLab]:
    """require_root_netns() and then a NetLab; for fixtures: ``with netlab(...) as lab: yield lab``."""
    require_root_netns()
    with NetLab(**kwargs) as lab:
        yield lab
