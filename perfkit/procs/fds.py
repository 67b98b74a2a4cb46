"""What a process's file descriptors point to: /proc/PID/fd and the socket tables.

* ``fd_links``: fd number → readlink target; ``fd_kind``: file / socket / pipe / other
* ``socket_table``: socket inode → proto, state, local and remote address
  (/proc/PID/net/tcp, tcp6, udp, udp6, unix); ``SocketCache`` re-reads it only when
  unknown sockets appear (reading the TCP table walks the kernel's whole hash)
* ``describe_fds``: fds described for leak attribution (path, or socket peer)
"""

from __future__ import annotations

import os
import time

from perfkit.procs.proc import Gone

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}
UNIX_STATES = {"01": "UNCONNECTED", "02": "CONNECTING", "03": "CONNECTED", "04": "DISCONNECTING"}
FD_KINDS = ("file", "socket", "pipe", "other")


def fd_links(pid: int) -> dict[int, str]:
    """fd number -> readlink target; raises PermissionError / Gone."""
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        raise Gone(pid) from None
    out = {}
    for n in names:
        try:
            out[int(n)] = os.readlink(f"{base}/{n}")
        except FileNotFoundError:
            continue  # closed between listdir and readlink
        except ValueError:
            continue
    return out


def fd_kind(link: str) -> str:
    if link.startswith("socket:["):
        return "socket"
    if link.startswith("pipe:["):
        return "pipe"
    if link.startswith("/"):
        return "file"
    return "other"


def inode(link: str) -> str:
    return link[link.find("[") + 1:-1]


def socket_table(pid: int) -> dict[str, dict]:
    """socket inode -> {proto, state, local, remote} from /proc/PID/net/{tcp,tcp6,udp,udp6,unix}."""
    table: dict[str, dict] = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for parts in _net_rows(pid, proto, 10):
            state = TCP_STATES.get(parts[3], parts[3]) if proto.startswith("tcp") else (
                "ESTABLISHED" if parts[3] == "01" else "UNCONNECTED")
            table[parts[9]] = {"proto": proto, "state": state, "local": _addr(parts[1]), "remote": _addr(parts[2])}
    for parts in _net_rows(pid, "unix", 7):
        table[parts[6]] = {"proto": "unix", "state": UNIX_STATES.get(parts[5], parts[5]),
                           "local": parts[7] if len(parts) > 7 else "", "remote": ""}
    return table


def _net_rows(pid: int, table: str, min_fields: int):
    """The rows of /proc/PID/net/TABLE (header skipped), split; nothing when unreadable."""
    try:
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f, None)
            rows = [line.split() for line in f]
    except OSError:
        return []
    return [r for r in rows if len(r) >= min_fields]


def _addr(hexaddr: str) -> str:
    ip, _, port = hexaddr.partition(":")
    try:
        p = int(port, 16)
        if len(ip) == 8:
            b = bytes.fromhex(ip)[::-1]
            return f"{'.'.join(str(x) for x in b)}:{p}"
        raw = bytes.fromhex(ip)
        words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
        import ipaddress

        return f"[{ipaddress.IPv6Address(b''.join(words))}]:{p}"
    except ValueError:
        return hexaddr


class SocketCache:
    """The socket table, re-read only when unknown sockets appear, at most every ``refresh`` s.

    Reading /proc/PID/net/tcp walks the kernel's whole TCP hash (~4 ms here even when
    nearly empty), so a sampler must not do it on every tick.
    """

    def __init__(self, refresh: float = 2.0) -> None:
        self.refresh = refresh
        self.table: dict[str, dict] = {}
        self.read_at = -1e9

    def lookup(self, pid: int, inodes: list[str]) -> dict[str, dict]:
        now = time.monotonic()
        if any(i not in self.table for i in inodes) and now - self.read_at >= self.refresh:
            self.table = socket_table(pid)
            self.read_at = now
        return self.table


def describe_fds(pid: int, fds: dict[int, str]) -> list[dict]:
    """What each fd points to: path, or socket proto/state/peer; for leak attribution."""
    table = socket_table(pid) if any(v.startswith("socket:[") for v in fds.values()) else {}
    out = []
    for fd, link in sorted(fds.items()):
        kind = fd_kind(link)
        item = {"fd": fd, "kind": kind, "target": link}
        if kind == "socket":
            info = table.get(inode(link))
            if info:
                item.update({"proto": info["proto"], "state": info["state"], "local": info["local"],
                             "remote": info["remote"]})
        out.append(item)
    return out
