"""Which sockets a process tree listens on (TCP LISTEN, bound UDP), read from /proc (Linux)."""
from __future__ import annotations

import os
import socket
import struct
from pathlib import Path


def process_tree(pid: int) -> set[int]:
    """pid and all its descendants, from /proc."""
    return _children(pid)


def _children(pid: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo += kids.get(p, [])
    return out


def _ip(hexip: str, fam: int) -> str:
    raw = bytes.fromhex(hexip)
    if fam == socket.AF_INET:
        return socket.inet_ntop(fam, raw[::-1])
    return socket.inet_ntop(fam, b"".join(struct.pack("<I", w) for w in struct.unpack(">4I", raw)))


def _listen_inodes() -> dict[str, tuple[str, int]]:
    """inode -> (ip, port) of every socket on the machine that waits for others: TCP in
    LISTEN, and UDP bound to a port with no peer (UDP has no LISTEN state)."""
    found = {}
    for name, fam in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6),
                      ("udp", socket.AF_INET), ("udp6", socket.AF_INET6)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            hexip, hexport = f[1].split(":")
            if name.startswith("tcp") and f[3] != "0A":  # LISTEN
                continue
            if name.startswith("udp") and (int(hexport, 16) == 0 or int(f[2].split(":")[1], 16) != 0):
                continue  # unbound, or connected to one peer
            found[f[9]] = (_ip(hexip, fam), int(hexport, 16))
    return found


def listeners_on_ports(ports) -> set[tuple[str, int]]:
    """(ip, port) of every listening socket on the machine, whatever process holds it,
    whose port is one of `ports`."""
    ports = set(ports)
    return {(ip, port) for ip, port in _listen_inodes().values() if port in ports}


def listeners_with_owner(root_pid: int) -> set[tuple[str, int, str]]:
    """(ip, port, owning command line) of every listening socket of root_pid's tree."""
    inodes, out = _listen_inodes(), set()
    for pid in _children(root_pid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
            comm = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120].strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                out.add((*inodes[target[8:-1]], comm))
    return out


def listening_sockets_of_tree(root_pid: int) -> list[tuple[str, int]]:
    """(ip, port) of every listening socket held by root_pid or its descendants."""
    return sorted({(ip, port) for ip, port, _ in listeners_with_owner(root_pid)})


def is_loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback
