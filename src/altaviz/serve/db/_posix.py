"""Operating-system plumbing for the embedded server: which account runs PostgreSQL, directory permissions.

PostgreSQL refuses to run as root (`initdb: cannot be run as root`). When Altaviz runs as root it therefore
runs initdb, pg_ctl and the server as the unprivileged system account `altaviz_pg` (created with `useradd
--system` if missing) and hands it the cluster directory. That account must be able to traverse every
directory above the cluster and above the PostgreSQL binaries; Altaviz adds `o+x` (traverse, not list) only
to directories it owns: the data root and any parent it had to create. Any other directory that blocks the
way (say `/root`, mode 0700) is reported with a message that names it, instead of being opened up behind the
user's back.

When Altaviz runs as an ordinary user, everything runs as that user and nothing here changes permissions.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from altaviz.errors import AltavizError

SERVER_OS_USER = "altaviz_pg"


class ServerError(AltavizError):
    """The embedded PostgreSQL server could not be set up, started, stopped or reached."""


@dataclass(frozen=True)
class Account:
    """The OS account that owns the cluster and runs the PostgreSQL programs."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]
    switch: bool  # True when we are root and must drop to this account for every PostgreSQL program

    def can_traverse(self, directory: Path) -> bool:
        st = directory.stat()
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid in self.groups:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def _account(entry: pwd.struct_passwd, switch: bool) -> Account:
    groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, switch)


def server_account() -> Account:
    """The current user, or (as root) the `altaviz_pg` system account, created if missing."""
    if os.geteuid() != 0:
        return _account(pwd.getpwuid(os.geteuid()), switch=False)
    try:
        return _account(pwd.getpwnam(SERVER_OS_USER), switch=True)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    cmd += ["--shell", "/usr/sbin/nologin", SERVER_OS_USER]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        raise ServerError(
            f"system user {SERVER_OS_USER!r}: expected to create it (PostgreSQL cannot run as root), "
            f"got {str(detail).strip()}; create it yourself or run Altaviz as an ordinary user"
        ) from exc
    try:
        return _account(pwd.getpwnam(SERVER_OS_USER), switch=True)
    except KeyError:
        raise ServerError(f"system user {SERVER_OS_USER!r}: expected it to exist after useradd, got none") from None


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p, returning the directories that were created (outermost first)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return list(reversed(missing))


def prepare_cluster_dir(data_root: Path, pgdata: Path, account: Account, bin_dir: Path) -> None:
    """Create the data root and the cluster directory, owned by `account` and reachable by it.

    Raises ServerError naming the first directory the account cannot traverse.
    """
    try:
        created = _make_dirs(data_root)
    except OSError as exc:
        raise ServerError(f"data root {data_root}: expected a directory we can create, got {exc}") from exc
    if not data_root.is_dir():
        raise ServerError(f"data root {data_root}: expected a directory, got a file")
    if account.switch:
        for d in {*created, data_root}:
            d.chmod(d.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)
    if not pgdata.exists():
        pgdata.mkdir(mode=0o700, exist_ok=True)
    if account.switch:
        if pgdata.stat().st_uid != account.uid:
            _chown_tree(pgdata, account)
        _check_traversable(pgdata, account, what="cluster directory")
        _check_traversable(bin_dir / "postgres", account, what="PostgreSQL binaries")


def _chown_tree(root: Path, account: Account) -> None:
    os.chown(root, account.uid, account.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), account.uid, account.gid, follow_symlinks=False)


def _check_traversable(target: Path, account: Account, what: str) -> None:
    for d in reversed(target.parents):
        if not account.can_traverse(d):
            mode = stat.S_IMODE(d.stat().st_mode)
            owner = _owner(d)
            raise ServerError(
                f"{what} {target}: PostgreSQL runs as system user {account.name!r} (it refuses root) and "
                f"must traverse every parent directory; expected {d} to allow that (o+x), got mode "
                f"{mode:04o} owned by {owner}. Set ALTAVIZ_DATA_ROOT to a directory outside it "
                f"(e.g. /var/tmp/altaviz) or run `chmod o+x {d}`"
            )


def _owner(path: Path) -> str:
    st = path.stat()
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def _environment() -> dict[str, str]:
    """The caller's environment minus libpq/PostgreSQL variables (PG*), with messages in English."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    return env


def run_as(account: Account, args: list[str], timeout: float) -> tuple[int, str]:
    """Run a PostgreSQL program as `account`; return (exit status, combined output).

    Output goes through a temporary file rather than a pipe: `pg_ctl start` leaves the server running, and a
    server that inherited our pipe would keep it open and block the read forever.
    """
    kwargs: dict[str, object] = {}
    if account.switch:
        kwargs.update(user=account.uid, group=account.gid, extra_groups=[])
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
                env=_environment(),
                timeout=timeout,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
        except OSError as exc:
            raise ServerError(f"program {args[0]}: expected to run it, got {exc}") from exc
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if code == -1:
        text += f"\n(timed out after {timeout:g} s)"
    return code, text


def write_owned(path: Path, text: str, account: Account) -> None:
    """Write a small file atomically, owned by the account (the cluster directory stays all theirs)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    if account.switch:
        os.chown(tmp, account.uid, account.gid)
    os.replace(tmp, path)
