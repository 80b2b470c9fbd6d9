"""--review_mm for lmk-predict and lmk-client: mark the landmarks a person should check.

The model's `expected_error_mm` is its predicted radial error; a landmark
expected to be more than --review_mm off gets "review": true in the output,
and one line on stderr says how many.
"""

import sys

from absl import flags

flags.DEFINE_float("review_mm", None,
                   "Mark landmarks whose expected error (the model's expected_error_mm) is above this "
                   "many mm with \"review\": true, and say how many on stderr.", lower_bound=0.0)
FLAGS = flags.FLAGS


def mark_for_review(results, review_mm: float) -> tuple[int, int]:
    """Sets "review" on each landmark whose expected_error_mm is above `review_mm`.

    `results`: one result dict or a list of them. Returns (marked, landmarks
    with a predicted error); a model without one marks nothing.
    """
    marked = total = 0
    for r in [results] if isinstance(results, dict) else results:
        for lm in r["landmarks"]:
            if "expected_error_mm" in lm:
                lm["review"] = bool(lm["expected_error_mm"] > review_mm)
                marked += lm["review"]
                total += 1
    return marked, total


def review_line(marked: int, total: int, review_mm: float) -> str:
    if not total:
        return "--review_mm: this model predicts no error (exported before expected_error_mm); nothing marked"
    return (f"{marked} of {total} landmarks have an expected error above {review_mm:g} mm: "
            "review them (marked \"review\": true)")


def report(results) -> None:
    """Marks `results` for review when --review_mm is given and says how many on stderr."""
    if FLAGS.review_mm is not None:
        print(review_line(*mark_for_review(results, FLAGS.review_mm), FLAGS.review_mm), file=sys.stderr)
