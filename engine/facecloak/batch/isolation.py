"""Keep ``--ray local`` off the network: this process moves into a private network namespace.

Ray binds its GCS, raylet, object manager and worker gRPC ports on the machine's network
address even when told ``--node-ip-address 127.0.0.1`` (ray-project/ray#26293). The only way
to keep them off the network for sure is to leave Ray no other address: ``isolate()`` moves
this process (before it starts any thread) into a new network namespace that holds only the
loopback interface, brought up here; Ray's processes, started by this one, inherit it and can
only bind 127.0.0.1 and ::1, which nothing outside the namespace can reach.

Nothing else changes: same process, same files and paths (the mount namespace is shared), same
user. As root only the network namespace is new; a normal user gets a user namespace too
(allowed by default on Debian 11 and later, Fedora, Arch) that maps their own uid and gid to
themselves, so files written keep their owner. Standard library only: it must run before
numpy or Ray start threads.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
OPT_OUT = "or pass --ray-allow-network to run Ray on the network anyway"
HOW_TO_ALLOW = (
    "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 and "
    f"user.max_user_namespaces > 0; see docs/batch.md), {OPT_OUT}"
)


class IsolationError(RuntimeError):
    """This process could not be moved into a private network namespace."""


def _interface_up(name: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
    return bool(flags & IFF_UP)


def isolated() -> bool:
    """Whether this process's network namespace has loopback up and no other interface up:
    nothing listening here can be reached from another machine."""
    try:
        names = [name for _index, name in socket.if_nameindex()]
        return "lo" in names and all(_interface_up(n) == (n == "lo") for n in names)
    except OSError:
        return False


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def isolate() -> None:
    """Move this process into a new network namespace with only loopback, up.

    A new namespace is made even when this one looks private already (only loopback up), so
    that other users of the machine cannot reach Ray's ports either. Call it while the process
    is single-threaded (a new user namespace demands it), before anything that starts threads
    is imported. Raises ``IsolationError`` saying why not.
    """
    if not sys.platform.startswith("linux"):
        raise IsolationError(f"a private network namespace needs Linux; {OPT_OUT}")
    threads = _threads()
    if threads > 1:
        if isolated():
            return
        raise IsolationError(
            f"this process already runs {threads} threads, which cannot all be moved into a "
            "new namespace; run the batch as a process of its own (the facecloak command)"
        )
    uid, gid = os.geteuid(), os.getegid()
    try:
        if uid == 0:
            try:
                _unshare(CLONE_NEWNET)  # root: the network namespace alone
            except PermissionError:
                _enter_user_namespace(uid, gid)  # root without CAP_SYS_ADMIN (a container)
        else:
            _enter_user_namespace(uid, gid)
        _bring_up("lo")
    except OSError as error:
        if isolated():
            return  # a namespace of its own already (a container with no network): fine
        why = error.strerror or str(error)
        if error.errno == errno.ENOSPC:
            why = "no user namespace may be created (user.max_user_namespaces is reached or 0)"
        elif error.errno in (errno.EPERM, errno.EACCES, errno.EINVAL, errno.ENOSYS):
            why = f"unprivileged user namespaces are not allowed here ({why})"
        raise IsolationError(
            f"cannot keep the local Ray cluster off the network: {why}; {HOW_TO_ALLOW}"
        ) from None
    if not isolated():
        raise IsolationError("the private network namespace has other interfaces up")


def _enter_user_namespace(uid: int, gid: int) -> None:
    """A user namespace (and the network namespace it owns) mapping our uid and gid to
    themselves: files keep their owner, and the capabilities we get are over the new
    namespaces only (bringing loopback up)."""
    _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _bring_up(name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))
