"""Worker process that evaluates one Nickel expression: py-nickel holds the GIL and
has no timeout, so the loader runs it here, bounded, and kills it if it hangs.

Reads ``{"expr": ..., "import_paths": [...]}`` as JSON on stdin; writes
``{"ok": true, "json": ...}`` or ``{"ok": false, "error": ...}`` on stdout.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    request = json.load(sys.stdin)
    try:
        import nickel

        output = nickel.run(request["expr"], request.get("import_paths") or None)
    except Exception as exc:  # NickelException, or anything the binding raises
        json.dump({"ok": False, "error": str(exc)}, sys.stdout)
        return 0
    json.dump({"ok": True, "json": output}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
