"""benchmarks/volumes.py writes what it says: oblique anisotropic volumes whose Slicer files hold the truth."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# In a fresh process: the script defines absl flags that pipeline modules define too.
CHECK = """
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("volumes", "benchmarks/volumes.py")
volumes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(volumes)
from lmk_tf.io import read_image
from lmk_tf.io.landmarks import read_landmarks
from lmk_tf.synthetic import make_sample, sample_seed
paths = volumes.write_volumes(sys.argv[1], 3, 7)
report = []
for i, path in enumerate(paths):
    image = read_image(path)
    _, points, names = make_sample(3, sample_seed(7, i), shape=volumes.SHAPE, spacing=volumes.SPACING)
    marks = path.replace("images", "landmarks").replace(".nii.gz", ".mrk.json")
    back = read_landmarks(marks, image=image).reindex(names)
    system = json.load(open(marks))["markups"][0]["coordinateSystem"]
    report.append({"shape": list(image.shape), "spacing": list(image.spacing), "origin": list(image.origin),
                   "identity": bool(np.allclose(np.abs(image.direction), np.eye(3)[::-1])),
                   "error": float(np.abs(back.points - points).max()), "system": system})
print(json.dumps(report))
"""


def test_written_volumes_and_landmarks(tmp_path):
    p = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": REPO})
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout.splitlines()[-1])
    for volume in report:
        assert volume["shape"] == [48, 120, 120]
        assert volume["spacing"] == [2.0, 0.8, 0.8]
        assert max(abs(o) for o in volume["origin"]) > 1.0 and not volume["identity"]
        # Every landmark, the one outside the field of view included; NIfTI keeps its affine in float32.
        assert volume["error"] < 1e-4
    assert {v["system"] for v in report} <= {"LPS", "RAS"}
