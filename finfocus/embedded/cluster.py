"""Where the embedded PostgreSQL cluster lives and how a stale or running one is handled.

As root the server runs as another user, which cannot enter a 0700 FINFOCUS_HOME; the cluster
then lives under /var/lib/finfocus, and no directory's mode is ever opened for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
from pathlib import Path

from finfocus.embedded.state import ProcessRef, wait_gone

logger = logging.getLogger(__name__)

#: where the cluster lives when `up` runs as root: PostgreSQL runs as another user there,
#: which cannot enter a 0700 FINFOCUS_HOME, and no directory's mode is ever opened for it
ROOT_CLUSTERS = Path("/var/lib/finfocus/postgres")


def postgres_dir(home: Path) -> Path:
    """The cluster's data directory: under FINFOCUS_HOME, or under /var/lib/finfocus as root."""
    if os.geteuid() == 0:
        digest = hashlib.sha256(str(home).encode()).hexdigest()[:16]
        return ROOT_CLUSTERS / digest / "data"
    return home / "postgres" / "data"


def postgres_log(home: Path) -> Path:
    """The server writes its own log, so as root it lies beside its cluster."""
    if os.geteuid() == 0:
        return postgres_dir(home).parent / "postgres.log"
    return home / "logs" / "postgres.log"


def admin_password_file(home: Path) -> Path:
    return home / "secrets" / "postgres" / "postgres.password"


def prune_root_clusters(clusters: Path = ROOT_CLUSTERS) -> list[Path]:
    """Remove the root clusters whose FINFOCUS_HOME is gone (a deleted temporary home, e.g.
    a test's) and whose server is not running; returns what was removed. A cluster whose
    home still exists, or that does not say whose it is, is kept."""
    import shutil

    removed = []
    for cluster in clusters.glob("*"):
        try:
            home = Path((cluster / "home").read_text().strip())
        except (FileNotFoundError, NotADirectoryError, OSError):
            continue
        data = cluster / "data"
        if home.exists() or _is_our_postmaster(_postmaster_ref(data), data):
            continue
        shutil.rmtree(cluster, ignore_errors=True)
        removed.append(cluster)
    return removed


def root_cluster_parent() -> None:
    """/var/lib/finfocus/postgres, made 0755 by us when missing (an existing one is left as
    it is: `start_postgres` refuses with a clear message if it is closed)."""
    for directory in (ROOT_CLUSTERS.parent, ROOT_CLUSTERS):
        if not directory.exists():
            directory.mkdir(mode=0o755)
            directory.chmod(0o755)


def _postmaster_ref(data_dir: Path) -> ProcessRef | None:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return ProcessRef.of(pid)


def _is_our_postmaster(ref: ProcessRef | None, data_dir: Path) -> bool:
    """Is `ref` a live PostgreSQL server running on `data_dir` (not a reused pid)?"""
    proc = ref.process() if ref else None
    if proc is None:
        return False
    try:
        cmdline = proc.cmdline()
    except Exception:  # noqa: BLE001 - psutil access errors
        return False
    return (
        bool(cmdline) and "postgres" in Path(cmdline[0]).name and str(data_dir) in " ".join(cmdline)
    )


def clear_stale_postmaster(data_dir: Path) -> None:
    """Remove `postmaster.pid` left by a crashed server whose pid now names another process."""
    pid_file = data_dir / "postmaster.pid"
    if pid_file.exists() and not _is_our_postmaster(_postmaster_ref(data_dir), data_dir):
        logger.warning("removing stale %s", pid_file)
        pid_file.unlink(missing_ok=True)


def stop_postgres(data_dir: Path, port: int, ref: ProcessRef | None) -> None:
    """`pg_ctl stop -m fast`; if the server is still there (pg_ctl could not reach the data
    directory, e.g. its parent lost the permissions the server's user needs), a fast
    shutdown by signal (SIGINT), and SIGKILL as the last resort."""
    from finfocus.embedded.postgres import EmbeddedPostgres

    EmbeddedPostgres(data_dir, port).stop()
    if ref is None or wait_gone(ref, 2):
        return
    proc = ref.process()
    if proc is not None:
        logger.warning("pg_ctl did not stop PostgreSQL (pid %d); signalling it", ref.pid)
        try:
            proc.send_signal(signal.SIGINT)
        except Exception:  # noqa: BLE001 - already gone
            return
        if not wait_gone(ref, 20):
            with contextlib.suppress(Exception):  # already gone, or not ours to kill any more
                proc.kill()
