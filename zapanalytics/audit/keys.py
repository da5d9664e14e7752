"""Reading meter public keys for the audit: a directory of key files or a JSON map."""

from __future__ import annotations

import json
from pathlib import Path

KEY_SUFFIXES = (".pem", ".der", ".txt", ".key")


class KeyMapError(ValueError):
    """The keys given cannot be read as a key map."""


def read_key_map(path: str | Path) -> dict[str, str]:
    """Keys by charger id or device serial.

    Parameters
    ----------
    path : str or Path
        A directory of ``<id>.pem`` (or ``.der``, ``.txt``, ``.key``) files, as
        ``firmware_ref`` writes them under ``keys/``, or a JSON object ``{id: key}`` where a
        key is PEM, hex or base64 DER.

    Returns
    -------
    dict
        ``{id: key text}``; DER files are returned as hex.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in KEY_SUFFIXES)
        if not files:
            raise KeyMapError(f"{path}: no {'/'.join(KEY_SUFFIXES)} files")
        return {
            p.stem: p.read_bytes().hex() if p.suffix == ".der" else p.read_text("ascii")
            for p in files
        }
    try:
        keys = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise KeyMapError(f"no such file or directory: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyMapError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise KeyMapError(f'{path} must hold a JSON object {{"charger_id": "key", ...}}')
    return keys
