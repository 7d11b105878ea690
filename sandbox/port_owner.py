"""Who holds a local TCP port? For ``./dev up``'s "port already in use" message (Linux /proc).

Only processes of the same user can be seen; elsewhere, or for others' processes, the answer is
``None`` and the message says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"


@dataclass(frozen=True)
class Owner:
    pid: int
    command: str


def listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rpartition(":")[2], 16) == port:
                inodes.add(inode)
    return inodes


def port_owner(port: int) -> Owner | None:
    sockets = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    if not sockets:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        if open_files(entry) & sockets:
            return Owner(int(entry.name), command_line(int(entry.name)))
    return None


def open_files(process: Path) -> set[str]:
    links = set()
    try:
        fds = list((process / "fd").iterdir())
    except OSError:  # gone, or not ours
        return links
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:  # closed meanwhile (the listing's own descriptor, for one)
            continue
    return links


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:120]
