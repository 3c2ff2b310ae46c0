"""Password hashes in the crypt(3) SHA-512 form that Linux guests keep in /etc/shadow."""

from __future__ import annotations

import subprocess


def sha512_crypt(password: str) -> str:
    """A ``$6$<salt>$<hash>`` string for ``password`` with a random salt.

    The password goes to ``openssl passwd`` on standard input, never on the command line,
    so it cannot be seen in the process list.
    """
    if "\n" in password or "\r" in password:
        raise ValueError("A password cannot contain line breaks.")
    out = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    hashed = out.stdout.strip()
    if not hashed.startswith("$6$"):
        raise RuntimeError("openssl did not produce a SHA-512 crypt hash.")
    return hashed
