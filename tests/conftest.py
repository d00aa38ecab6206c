import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # figures render off-screen in tests
sys.path.insert(0, str(Path(__file__).parent))  # tests import their helpers from notebooks.py
