"""Run every benchmark in turn; each prints its figures beside a baseline measured in the same run."""
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def main() -> int:
    failed = 0
    for script in sorted(Path(__file__).parent.glob("*.py")):
        if script.stem in ("__init__", "run"):
            continue
        print("== {} ==".format(script.stem), flush=True)
        failed += subprocess.run([sys.executable, "-m", "benchmarks." + script.stem], cwd=REPOSITORY).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
