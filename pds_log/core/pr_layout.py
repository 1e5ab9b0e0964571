"""Where a plugin's files sit in the PR's tree (the PR layout), apart from git.

The layout is set by the PR's policy (``layout:`` in ``pds/policy.yaml``; absent = 1):

* **layout 1** (flat): ``plugins/<name>/<file>``. ``plugins/`` is one git tree with an entry
  per plugin, rewritten by every push (4.4 MB at 100k plugins).
* **layout 2** (labels): one directory per label of the name, and the plugin's own files in a
  ``+`` directory below the last one: ``be.example.hello`` is ``plugins/be/example/hello/+/``.
  ``+`` cannot be a label (labels are ``[A-Za-z0-9_-]+``), so a name that is a prefix of
  another (``be.example`` and ``be.example.hello``) is unambiguous: ``plugins/be/example/+/``
  and ``plugins/be/example/hello/+/``. A namespace ``be.example.*`` is the subtree
  ``plugins/be/example/`` (without its own ``+``). A push rewrites the trees on the path of
  each plugin it changes: one per label, each as large as that directory's fan-out.

The plugin's files below its directory are the same in both layouts, so the git tree of a
plugin's directory (``plugins/<name>`` in layout 1, ``plugins/<labels>/+`` in layout 2) has the
same object id: moving to layout 2 changes no plugin's bytes.

Every path maps to at most one plugin, and every plugin to exactly one directory: a label
directory must be a single label (``plugins/be.example/hello/+/`` is not
``be.example.hello``), so names and directories are in one-to-one correspondence.
"""

from __future__ import annotations

import re

from .errors import FormatError
from .names import is_valid_name, validate_name

PLUGINS_DIR = "plugins"
FILES_DIR = "+"  # layout 2: the directory of a plugin's own files, below its last label
LAYOUT_FLAT = 1
LAYOUT_LABELS = 2
LAYOUTS = (LAYOUT_FLAT, LAYOUT_LABELS)
DEFAULT_LAYOUT = LAYOUT_FLAT  # a policy without `layout:`
_LABEL_RE = re.compile(r"[A-Za-z0-9_-]+")


def validate_layout(value: object, where: str) -> int:
    if isinstance(value, bool) or value not in LAYOUTS:
        raise FormatError(f"{where}: layout must be one of {', '.join(map(str, LAYOUTS))}, got {value!r}")
    assert isinstance(value, int)
    return value


def is_label(part: str) -> bool:
    return _LABEL_RE.fullmatch(part) is not None


def plugin_dir(name: str, layout: int) -> str:
    """The directory of plugin `name`'s files (no trailing slash)."""
    validate_name(name)
    if layout == LAYOUT_LABELS:
        return "/".join((PLUGINS_DIR, *name.split("."), FILES_DIR))
    return f"{PLUGINS_DIR}/{name}"


def plugin_of(path: str, layout: int) -> tuple[str | None, str | None]:
    """(plugin name, None) when `path` is a file of a plugin's directory in `layout`;
    (None, why not) for any other path under ``plugins/``; (None, None) outside ``plugins/``."""
    parts = path.split("/")
    if parts[0] != PLUGINS_DIR:
        return None, None
    if layout == LAYOUT_LABELS:
        return _plugin_of_labels(path, parts)
    if len(parts) < 3:
        return None, f"{path}: files directly under plugins/ are not allowed (use plugins/<name>/...)"
    if not is_valid_name(parts[1]):
        return None, f"{path}: invalid plugin name {parts[1]!r}"
    return parts[1], None


def _plugin_of_labels(path: str, parts: list[str]) -> tuple[str | None, str | None]:
    if FILES_DIR not in parts[1:]:
        return None, (f"{path}: not in a plugin's files directory (layout 2: "
                      f"plugins/<label>/.../<label>/{FILES_DIR}/<file>)")
    cut = parts.index(FILES_DIR, 1)
    labels = parts[1:cut]
    bad = next((p for p in labels if not is_label(p)), None)
    if bad is not None:
        return None, f"{path}: {bad!r} is not a name label (layout 2: one directory per label of [A-Za-z0-9_-])"
    name = ".".join(labels)
    if not is_valid_name(name):
        return None, f"{path}: invalid plugin name {name!r} (need >= 2 labels, <= 128 characters)"
    if cut == len(parts) - 1:
        return None, f"{path}: a plugin's {FILES_DIR} must be a directory"
    return name, None
