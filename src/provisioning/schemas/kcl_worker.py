"""Worker process that runs the official KCL engine (``kcl-lib``) on one file: the
native library may hold the GIL and has no timeout, so the bridge runs it here,
bounded, and kills it if it hangs.

Reads ``{"path": ..., "parse": bool}`` as JSON on stdin; writes ``{"ok": true,
"json": ..., "ast": ...}`` or ``{"ok": false, "error": ...}`` on stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> int:
    request = json.load(sys.stdin)
    answer: dict[str, Any] = {"ok": True}
    try:
        from kcl_lib import api

        engine = api.API()
        result = engine.exec_program(api.ExecProgramArgs(k_filename_list=[request["path"]]))
        if result.err_message:
            raise RuntimeError(result.err_message)
        answer["json"] = result.json_result
        if request.get("parse"):
            parsed = engine.parse_file(api.ParseFileArgs(path=request["path"]))
            answer["ast"] = parsed.ast_json
    except Exception as exc:  # the engine raises plain Exception with KCL's own report
        answer = {"ok": False, "error": str(exc)}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
