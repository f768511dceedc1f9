"""A network namespace whose loopback loses packets, for the link's loss
scenarios (benchmarks/bench_link.py, tests/test_link_netns.py).

The kernel drops the packets, not our relay: tc netem where the kernel has it
(i.i.d. loss), else an nftables rule `numgen random` that drops the same share
of UDP packets (kernels without sch_netem, like this project's CI VMs, often
still have nf_tables). Needs root (CAP_NET_ADMIN) and iproute2; nftables for
the fallback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from types import TracebackType

# socket buffers the link asks for (docs/link.md); a fresh namespace has the defaults
SYSCTLS = {"net.core.rmem_max": "134217728", "net.core.wmem_max": "134217728"}


class NamespaceError(RuntimeError):
    """The machine does not allow a lossy namespace (not root, no netns, no netem nor nftables)."""


def _run(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as e:
        raise NamespaceError(f"{args[0]}: not installed") from e
    except subprocess.CalledProcessError as e:
        raise NamespaceError(f"{' '.join(args)}: {e.stderr.strip() or e.returncode}") from e


class LossyNamespace:
    """`with LossyNamespace(2.0) as ns:` run programs with `ns.prefix + argv`.

    `how` says which mechanism drops: "netem" or "nftables".
    """

    def __init__(self, loss_pct: float, name: str | None = None) -> None:
        if not 0 <= loss_pct < 100:
            raise ValueError(f"loss_pct must be in [0, 100), got {loss_pct}")
        self.loss_pct = loss_pct
        self.name = name or f"tgloss{os.getpid()}"
        self.how = ""

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> LossyNamespace:
        if os.geteuid() != 0:
            raise NamespaceError("network namespaces need root")
        if shutil.which("ip") is None:
            raise NamespaceError("ip (iproute2): not installed")
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "link", "set", "lo", "up", ns=self.name)
            for k, v in SYSCTLS.items():
                _run("sysctl", "-q", "-w", f"{k}={v}", ns=self.name)
            self._add_loss()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _add_loss(self) -> None:
        if self.loss_pct == 0:
            self.how = "none"
            return
        try:
            _run("tc", "qdisc", "add", "dev", "lo", "root", "netem", "loss", f"{self.loss_pct}%",
                 "limit", "100000", ns=self.name)
            self.how = "netem"
            return
        except NamespaceError as netem:
            why = str(netem)
        per_10k = round(self.loss_pct * 100)
        try:
            _run("nft", "add", "table", "inet", "tgloss", ns=self.name)
            _run("nft", "add", "chain", "inet", "tgloss", "out",
                 "{ type filter hook output priority 0; }", ns=self.name)
            _run("nft", "add", "rule", "inet", "tgloss", "out", "meta", "l4proto", "udp",
                 "numgen", "random", "mod", "10000", "<", str(per_10k), "drop", ns=self.name)
        except NamespaceError as e:
            raise NamespaceError(f"no packet loss in a namespace: netem ({why}), nftables ({e})") from None
        self.how = "nftables"

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
