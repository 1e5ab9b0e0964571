"""`pds dev new NAME`: a plugin directory to start from (manifest, one pluglet, the header)."""

from __future__ import annotations

from pathlib import Path

from pds_log.core.errors import PdsError
from pds_log.core.names import validate_name
from pds_log.infra.resources import resource

PLUGLET = """#include "pquic.h"

/* {name}: runs after PQUIC updated a path's RTT estimate (protoop update_rtt, anchor post).
 * Keep pluglets loop-free or bound every loop by a constant; write only fields your protoop
 * may write (see the PV's side-effect spec); call only the helpers declared in pquic.h. */
protoop_arg_t {function}(picoquic_cnx_t *cnx)
{{
    picoquic_path_t *path = (picoquic_path_t *) get_cnx(cnx, AK_CNX_INPUT, 0);
    if (get_path(path, AK_PATH_SMOOTHED_RTT, 0) > 0)
        set_cnx(cnx, AK_CNX_LATEST_PROGRESS_TIME, 0, picoquic_current_time());
    return 0;
}}
"""

README = """# {name}

Built with the pinned PDS recipe (`pds dev build .`: clang -target bpf -O2 ..., one object per
`.c` named in the manifest). Check locally with `pds pv check .`, then submit with
`pds dev submit . --repo <PR URL> --key <your SSH key>`.
"""


def new_plugin(name: str, parent: str | Path = ".") -> Path:
    validate_name(name)
    target = Path(parent) / name
    if target.exists():
        raise PdsError(f"{target} already exists")
    target.mkdir(parents=True)
    short = name.split(".")[-1].replace("-", "_")
    function = f"{short}_update_rtt"
    (target / f"{short}.plugin").write_text(f"{name}\nupdate_rtt post {function}.o\n")
    (target / f"{function}.c").write_text(PLUGLET.format(name=name, function=function))
    (target / "pquic.h").write_bytes(resource("data", "pquic", "pquic.h").read_bytes())
    (target / "README.md").write_text(README.format(name=name))
    return target
