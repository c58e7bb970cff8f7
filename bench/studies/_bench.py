"""Put ``bench/`` on the import path, so that the studies here can ``import harness``.

Import it first: ``import _bench  # noqa: F401`` (Python puts the script's own
folder, ``bench/studies/``, on the path, so this module is found).
"""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
