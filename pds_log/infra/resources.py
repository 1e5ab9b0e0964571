"""Files shipped inside the pds_log package: templates (PR hooks and README, the log README,
gitolite and nginx configurations, the PV site's jinja2 pages), the example plugins and the
PQUIC header. Found through importlib.resources, so they come from wherever pds_log is
installed (a wheel, a git install, an editable checkout), never from a source tree next to it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from pds_log.core.errors import PdsError


def resource(*parts: str) -> Path:
    """The installed file or directory pds_log/<parts...>; a PdsError naming it when the
    installation lacks it (a broken or partial install), instead of a FileNotFoundError later."""
    found = files("pds_log").joinpath(*parts)
    if not isinstance(found, Path):  # zipimport: hooks and copytree need real files
        raise PdsError(f"pds_log is installed as {found!r}, not as files; reinstall it with pip")
    if not found.exists():
        raise PdsError(f"{found}: missing from the pds_log installation (a broken or partial install: "
                       f"reinstall pds from its wheel or git URL, see the deployment docs)")
    return found


def template(*parts: str) -> Path:
    """pds_log/templates/<parts...>."""
    return resource("templates", *parts)
