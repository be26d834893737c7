"""jsonable: strict JSON values from numpy arrays, scalars and nested lists, fast paths included."""

from __future__ import annotations

import json

import numpy as np

from sinklab.measure.analysis import jsonable


def test_jsonable_replaces_non_finite_and_keeps_types():
    value = {
        "floats": np.array([[1.5, np.nan], [np.inf, -2.0]]),
        "ints": np.array([1, 2, 3]),
        "nested": [[0.25, 0.5], [1.0, float("nan")]],
        "ragged": [[1, 2], [3]],
        "mixed": [1, None, "a"],
        "scalars": (np.float32(0.5), np.int64(7), np.bool_(True)),
        "bools": [True, False],
    }
    out = jsonable(value)
    assert out["floats"] == [[1.5, None], [None, -2.0]]
    assert out["ints"] == [1, 2, 3] and all(type(v) is int for v in out["ints"])
    assert out["nested"] == [[0.25, 0.5], [1.0, None]]
    assert out["ragged"] == [[1, 2], [3]]
    assert out["mixed"] == [1, None, "a"]
    assert out["scalars"] == [0.5, 7, True]
    assert out["bools"] == [True, False]
    json.dumps(out, allow_nan=False)  # strict JSON: raises on NaN / inf or numpy types


def test_jsonable_large_table_is_plain_python():
    table = np.random.default_rng(0).random((12, 8, 1024))
    out = jsonable(table.tolist())
    assert isinstance(out[0][0][0], float) and out == table.tolist()


def test_massive_activation_ratio_uses_the_papers_mean_and_reports_the_median_too():
    """Hand-worked: ||h_1|| = 10, others 1, 1, 4: mean 2 -> ratio 5 (the paper's); median 1 -> 10."""
    import numpy as np

    from sinklab.measure.analysis import first_to_mean, first_to_median

    table = np.array([[10.0, 1.0, 1.0, 4.0]])
    assert first_to_mean(table)[0] == 5.0 and first_to_median(table)[0] == 10.0
