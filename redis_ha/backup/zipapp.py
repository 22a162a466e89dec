"""Build a zipapp of this package alone: `python3 redis-ha-backup.pyz take --config ...`
in an image with nothing but python3 (3.11+).

    python -m redis_ha.backup.zipapp OUTPUT.pyz
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
_MAIN = "import sys\nfrom redis_ha.backup.__main__ import main\nsys.exit(main())\n"
_TOP = '"""redis-ha: only the backup engine is in this archive."""\n'


def build(output: str | Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__main__.py", _MAIN)
        archive.writestr("redis_ha/__init__.py", _TOP)
        for source in sorted(PACKAGE.glob("*.py")):
            archive.write(source, f"redis_ha/backup/{source.name}")
    with output.open("wb") as out:
        out.write(b"#!/usr/bin/env python3\n")
        out.write(temporary.read_bytes())
    temporary.unlink()
    output.chmod(0o755)
    return output


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m redis_ha.backup.zipapp OUTPUT.pyz")
    print(build(sys.argv[1]))
