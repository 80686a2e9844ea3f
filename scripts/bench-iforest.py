#!/usr/bin/env python3
"""Isolation forest, side by side in one run: ours against scikit-learn's.

Both fit 100 trees on 256 samples of the same 256 x 8 data, and score one
row. Prints the median times and the ratios. Installs scikit-learn if it is
missing. Usage: scripts/bench-iforest.py
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    from sklearn.ensemble import IsolationForest
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "scikit-learn", "numpy"])
    import numpy as np
    from sklearn.ensemble import IsolationForest

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(7)
data = rng.normal(size=(256, 8))

with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
    for row in data:
        f.write(",".join(repr(float(v)) for v in row) + "\n")
    path = f.name

subprocess.check_call(
    ["cargo", "build", "--release", "-q", "-p", "aegis-detect", "--example", "iforest_timing"], cwd=root
)
ours = json.loads(
    subprocess.check_output([os.path.join(root, "target/release/examples/iforest_timing"), path], cwd=root)
)
os.unlink(path)

fits = []
model = None
for i in range(20):
    start = time.perf_counter()
    model = IsolationForest(n_estimators=100, max_samples=256, random_state=i).fit(data)
    fits.append(time.perf_counter() - start)
row = data[:1]
scores = []
for _ in range(200):
    start = time.perf_counter()
    model.decision_function(row)
    scores.append(time.perf_counter() - start)
sk_fit, sk_score = statistics.median(fits), statistics.median(scores)

import sklearn  # noqa: E402

print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")
print("| operation | aegis | scikit-learn | ratio (scikit-learn / aegis) |")
print("|---|---|---|---|")
print(f"| fit, 100 trees x 256 samples | {ours['fit_seconds'] * 1e3:.3f} ms | {sk_fit * 1e3:.1f} ms | {sk_fit / ours['fit_seconds']:.0f}x |")
print(
    f"| score one row | {ours['score_one_row_seconds'] * 1e6:.2f} us | {sk_score * 1e3:.2f} ms | {sk_score / ours['score_one_row_seconds']:.0f}x |"
)
