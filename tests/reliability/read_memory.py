"""Peak memory of reading files, measured by the kernel: `python -m tests.reliability.read_memory`.

tracemalloc sees only Python's allocator, not what SimpleITK, pydicom's
decoders or Pillow allocate in C; the process's resident set (VmHWM, its
high-water mark, reset per file through /proc/self/clear_refs) and address
space (VmPeak) see everything. Run in a fresh process so no earlier test's
memory hides a peak. Reads warm-up files first, so that the libraries' own
start-up (imports, thread pools, arenas) is not counted.

Usage: python -m tests.reliability.read_memory WARMUP_JSON CASES_JSON
(lists of paths / of [name, path]); prints one JSON object: name -> {"error":
the message (prefixed by the exception type unless an ImageReadError) or None,
"peak_mb": VmHWM growth, "vm_mb": VmPeak growth}.
"""

import json
import sys
import warnings

from lmk_tf.errors import ImageReadError
from lmk_tf.io import read_image


def status_kb():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) for k in ("VmHWM", "VmRSS", "VmPeak")}


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set


def main(warmup, cases):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a PNG states no spacing
        for path in warmup:
            read_image(path)
    results = {}
    for name, path in cases:
        reset_peak()
        before = status_kb()
        error = None
        try:
            read_image(path)
        except ImageReadError as e:
            error = str(e)
        except Exception as e:  # a library's own error escaped the reader: recorded, not hidden
            error = f"{type(e).__name__}: {e}"
        after = status_kb()
        results[name] = {
            "error": error,
            "peak_mb": (after["VmHWM"] - before["VmRSS"]) / 1024,
            "vm_mb": (after["VmPeak"] - before["VmPeak"]) / 1024,
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), json.loads(sys.argv[2]))
