"""Keep MLflow's basic-auth users equal to a mounted Secret: one file per user, its content the password.

    python sync_users.py --users-dir /run/secrets/mlflow-users --tracking-uri http://127.0.0.1:5000 --every 60

Runs as the `users` sidecar of the MLflow pods (infra/base/mlflow) as the admin:
MLFLOW_TRACKING_USERNAME, and the password from --admin-password-file (or MLFLOW_TRACKING_PASSWORD). A user missing from MLflow is created; a user
whose file changed since the last pass (External Secrets rotated it) gets the new password. Users
MLflow has that the folder does not list are left alone (an operator's own accounts). After each
successful pass it touches --ready-file, which the sidecar's readiness probe tests.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Protocol


class UserAdmin(Protocol):
    """The part of MLflow's AuthServiceClient this uses."""

    def get_user(self, username: str) -> object: ...

    def create_user(self, username: str, password: str) -> object: ...

    def update_user_password(self, username: str, password: str) -> object: ...


def read_users(directory: Path) -> dict[str, str]:
    """user -> password from a Secret volume (Kubernetes' `..data` links and dot files skipped)."""
    users: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        password = path.read_text().strip()
        if not password:
            raise ValueError(f"{path}: empty password for user {path.name!r}")
        users[path.name] = password
    return users


def fingerprint(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def user_exists(admin: UserAdmin, username: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        admin.get_user(username)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def sync(admin: UserAdmin, users: dict[str, str], applied: dict[str, str]) -> list[str]:
    """Create missing users, update passwords that changed since `applied` (updated in place)."""
    changed: list[str] = []
    for username, password in users.items():
        if applied.get(username) == fingerprint(password):
            continue
        if user_exists(admin, username):
            admin.update_user_password(username, password)
            changed.append(f"{username}: password set")
        else:
            admin.create_user(username, password)
            changed.append(f"{username}: created")
        applied[username] = fingerprint(password)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users-dir", type=Path, required=True, help="mounted Secret, one file per user")
    parser.add_argument("--tracking-uri", default="http://127.0.0.1:5000", help="the MLflow server")
    parser.add_argument("--every", type=float, default=0, help="seconds between passes (0: one pass)")
    parser.add_argument("--ready-file", type=Path, help="touched after each successful pass")
    parser.add_argument(
        "--admin-password-file", type=Path, help="the admin's password (else MLFLOW_TRACKING_PASSWORD)"
    )
    args = parser.parse_args(argv)

    from mlflow.server import get_app_client

    if args.admin_password_file:
        # MLflow's client reads the password from its environment; the pod spec holds only the path
        os.environ["MLFLOW_TRACKING_PASSWORD"] = args.admin_password_file.read_text().strip()

    admin = get_app_client("basic-auth", tracking_uri=args.tracking_uri)
    applied: dict[str, str] = {}
    while True:
        try:
            for line in sync(admin, read_users(args.users_dir), applied):
                print(line, flush=True)
            if args.ready_file:
                args.ready_file.touch()
            wait = args.every
        except Exception as exc:  # the server is still starting, or refused: try again soon
            print(f"sync failed: {exc}", file=sys.stderr, flush=True)
            if not args.every:
                return 1
            wait = min(args.every, 5.0)
        if not args.every:
            return 0
        time.sleep(wait)


if __name__ == "__main__":
    sys.exit(main())
