"""Rewrite tests/tasks/golden/renders.json: `python -m tests.tasks.update_goldens`."""

from __future__ import annotations

import json
import sys

from tests.tasks.golden import GOLDEN_PATH, key_name, keys, snapshot


def main() -> int:
    old = json.loads(GOLDEN_PATH.read_text(encoding="utf-8")) if GOLDEN_PATH.exists() else {}
    new = {key_name(*k): snapshot(*k) for k in keys()}
    stale = [
        name for name, snap in new.items()
        if name in old and old[name]["template_version"] == snap["template_version"]
        and {k: v for k, v in old[name].items() if not k.endswith("checksum")}
        != {k: v for k, v in snap.items() if not k.endswith("checksum")}
    ]
    if stale and "--force" not in sys.argv:
        print("renders changed but template_version did not (bump RENDER_VERSION in "
              f"tasks/formats/templates.py, or pass --force for a data-only change): {stale}")
        return 1
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN_PATH.write_text(json.dumps(new, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    changed = sorted(k for k in new if old.get(k) != new[k])
    print(f"wrote {len(new)} goldens to {GOLDEN_PATH} ({len(changed)} changed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
