"""A throwaway MariaDB on a free loopback port and its own socket, seeded like the PostgreSQL sandbox.

Started only where ``mariadbd`` is installed (Debian: mariadb-server); never touches the machine's own
server: its own data directory, port and socket, and no option files read (``--no-defaults``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from opsproof.errors import SandboxError
from opsproof.sandbox.processes import free_port, require_binary, wait_for_port

DATABASE = "bankchain"
APP_USER = "bankchain"
ADMIN_USER = "opsproof_admin"
MARIADBD = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")

SEED = [
    "CREATE TABLE transactions (id BIGINT AUTO_INCREMENT PRIMARY KEY, wallet_id BIGINT NOT NULL,"
    " amount DECIMAL(18, 2) NOT NULL, status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL,"
    " KEY ix_status_created (status, created_at))",
    "CREATE TABLE compliance_alerts (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL,"
    " rule VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL)",
    # 1000 completed over ten days, 4 failed in the last 24 hours, 10 failed before that
    "INSERT INTO transactions (wallet_id, amount, status, created_at) SELECT seq % 100, seq % 500, 'completed',"
    " now() - INTERVAL seq * 850 SECOND FROM seq_1_to_1000",
    "INSERT INTO transactions (wallet_id, amount, status, created_at) SELECT seq, 10, 'failed',"
    " now() - INTERVAL seq * 4 HOUR FROM seq_1_to_4",
    "INSERT INTO transactions (wallet_id, amount, status, created_at) SELECT seq, 10, 'failed',"
    " now() - INTERVAL 30 + seq HOUR FROM seq_1_to_10",
    "INSERT INTO compliance_alerts (user_id, rule, status, created_at) SELECT seq, 'velocity',"
    " IF(seq <= 2, 'open', 'closed'), now() - INTERVAL seq DAY FROM seq_1_to_20",
]


def server_binary() -> str | None:
    try:
        return require_binary("mariadbd", "mariadb-server", MARIADBD)
    except SandboxError:
        return None


def _root_option() -> list[str]:
    """mariadbd refuses root unless told to run as root: the data lives in our own state dir anyway."""
    return ["--user=root"] if os.geteuid() == 0 else []


def install(data_dir: Path) -> None:
    installer = require_binary("mariadb-install-db", "mariadb-server")
    data_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [installer, "--no-defaults", f"--datadir={data_dir}", "--auth-root-authentication-method=normal",
         "--skip-test-db", "--skip-name-resolve", *_root_option()],
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise SandboxError(f"mariadb-install-db failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")


def start(state_dir: Path, port: int, server_id: int = 1) -> int:
    """Install (first time) and start mariadbd, writing a binlog replicas can follow; its pid once it listens."""
    base = state_dir / "mariadb"
    data_dir = base / "data"
    if not (data_dir / "mysql").exists():
        install(data_dir)
    process = subprocess.Popen(
        [server_binary() or require_binary("mariadbd", "mariadb-server", MARIADBD), "--no-defaults",
         f"--datadir={data_dir}", f"--port={port}", "--bind-address=127.0.0.1", f"--socket={base / 'mysqld.sock'}",
         f"--pid-file={base / 'mysqld.pid'}", f"--log-error={base / 'error.log'}", "--skip-name-resolve",
         "--max-connections=40", "--innodb-buffer-pool-size=16M", "--innodb-flush-log-at-trx-commit=0",
         f"--server-id={server_id}", f"--log-bin={base / 'binlog'}", "--binlog-format=ROW", *_root_option()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    wait_for_port(port, 60, "mariadbd", process)
    return process.pid


def seed(state_dir: Path, admin_password: str, app_password: str) -> None:
    """Users (a read-mostly application user, an admin for tests) and runbook-shaped tables."""
    import pymysql

    root = pymysql.connect(unix_socket=str(state_dir / "mariadb" / "mysqld.sock"), user="root", autocommit=True,
                           connect_timeout=10)
    with root, root.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {DATABASE}")
        cursor.execute(f"CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY %s", (app_password,))
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {DATABASE}.* TO '{APP_USER}'@'127.0.0.1'")
        cursor.execute(f"GRANT PROCESS, SLAVE MONITOR ON *.* TO '{APP_USER}'@'127.0.0.1'")
        cursor.execute(f"CREATE USER '{ADMIN_USER}'@'127.0.0.1' IDENTIFIED BY %s", (admin_password,))
        cursor.execute(f"GRANT ALL ON *.* TO '{ADMIN_USER}'@'127.0.0.1' WITH GRANT OPTION")
        cursor.execute(f"USE {DATABASE}")
        for statement in SEED:
            cursor.execute(statement)


def component(box) -> None:
    """Sandbox component: a seeded MariaDB where mariadbd is installed; nothing otherwise."""
    if server_binary() is None:
        return
    admin_password, app_password, port = secrets.token_urlsafe(18), secrets.token_urlsafe(18), free_port()
    box.variables.update(SANDBOX_MYSQL_PORT=str(port), SANDBOX_MYSQL_PASSWORD=app_password,
                         SANDBOX_MYSQL_ADMIN_PASSWORD=admin_password)
    state_dir = Path(box.state_dir)
    try:
        pid = start(state_dir, port)
    except BaseException:
        shutil.rmtree(state_dir / "mariadb", ignore_errors=True)
        raise
    box.add_process("mariadb", pid, port, cleanup=[str(state_dir / "mariadb")])
    seed(state_dir, admin_password, app_password)
